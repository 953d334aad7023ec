#!/usr/bin/env bash
# Install time of the core and of each extra, one after another into a fresh virtual environment
# (docs/REPORT.md). Pip's cache and the machine's wheel mirror are as they are: warm caches are the
# common case on a developer's machine.
#   bash scripts/install_times.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-/tmp/autodidact-install-times}
rm -rf "$venv"
seconds() { local t0=$(date +%s.%N); "$@" >/dev/null 2>&1; echo "$(date +%s.%N) - $t0" | bc; }
echo "core (venv, pip upgrade, '.'): $(seconds bash -c "python3 -m venv $venv && $venv/bin/python -m pip install -q --upgrade pip && $venv/bin/python -m pip install -q -c constraints.txt .") s"
for extra in export wandb test; do
    echo "+ [$extra]: $(seconds "$venv/bin/python" -m pip install -q -c constraints.txt ".[$extra]") s"
done
"$venv/bin/python" -c "import autodidact, onnxruntime, onnxscript, wandb, playwright"
rm -rf "$venv"
