"""The house rules that hold the package together: layers import in one direction, and importing
autodidact has no side effects."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_layers_import_in_one_direction():
    """The import-linter contracts in pyproject.toml: cli -> workflows -> kernels -> methods ->
    nn | data | envs -> core, and no method or network imports the CPU kernels."""
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


_PROBE = r"""
import json, os, sys
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
before = dict(os.environ)
import autodidact
print(json.dumps({"env_changed": dict(os.environ) != before,
                  "proc": [p for p in opened if p.startswith("/proc")],
                  "heavy": sorted(m for m in ("torch", "numpy", "mujoco", "ogbench") if m in sys.modules)}))
"""


def test_importing_autodidact_has_no_side_effects():
    """No environment variable written, no /proc read, and nothing heavy imported (torch loads
    only when a command or `autodidact.load` needs it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout)
    assert probe == {"env_changed": False, "proc": [], "heavy": []}
