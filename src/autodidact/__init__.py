"""autodidact: teach agents to act from unlabeled interaction data."""

import os

# OpenMP threads that spin while they wait collapse when another process shares the cores, and
# sleeping at once costs ~10% on an idle machine. A short spin keeps both: see docs/BENCHMARKS.md
# ("Shared cores"). libgomp reads GOMP_SPINCOUNT only when OMP_WAIT_POLICY is unset, and only
# when it first loads (with torch), so this must run before torch is imported; a user's own
# setting of either variable wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")

__version__ = "0.1.0"


def load(run_dir, checkpoint=None):
    """The pretrained model of a run, ready to prompt: `autodidact.load(run).prompt(goal=g).act(obs)`.
    (Imports torch and the method only when called, so `import autodidact` stays fast.)"""
    from autodidact.prompt import load as _load
    return _load(run_dir, checkpoint)
