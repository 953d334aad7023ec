"""How autodidact sets OpenMP's wait policy at import (src/autodidact/__init__.py)."""

import os
import subprocess
import sys


def _spin_setting(**env):
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "LOCAL_WORLD_SIZE")}
    out = subprocess.run([sys.executable, "-c", "import os, autodidact; print(os.environ.get('GOMP_SPINCOUNT'))"],
                         env={**clean, **env}, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_openmp_spin_is_short_when_training_processes_share_the_machine():
    assert _spin_setting(LOCAL_WORLD_SIZE="2") == "1000"
    assert _spin_setting(LOCAL_WORLD_SIZE="2", GOMP_SPINCOUNT="7") == "7"       # the user's setting wins
    assert _spin_setting(LOCAL_WORLD_SIZE="2", OMP_WAIT_POLICY="PASSIVE") == "None"
