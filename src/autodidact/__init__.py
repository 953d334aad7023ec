"""autodidact: teach agents to act from unlabeled interaction data."""

import os

# OpenMP threads that spin while waiting collapse when another process shares the cores: on 2
# busy cores a GCBC update (batch 256, 3x256) ran at 7 steps/s spinning and 82 steps/s with a
# passive wait (docs/BENCHMARKS.md). Must be set before torch loads OpenMP; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
