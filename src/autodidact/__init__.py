"""autodidact: teach agents to act from unlabeled interaction data."""

import os
import time

# How long OpenMP threads spin before they sleep between parallel regions (docs/BENCHMARKS.md,
# "Shared cores"). On cores of its own, libgomp's default spin made GCBC's published-size update
# 7-24% faster than a short spin: an update is hundreds of short parallel regions, and waking a
# sleeping thread for each costs more than the spin. When another process runs on the same cores,
# the spinning threads take time from the one doing the work: 12.8 steps/s beside one busy
# process, against 19-21 with a short spin. So the default spin stays unless, when autodidact is
# imported, other processes are already runnable or several training processes share this
# machine (torchrun). libgomp reads these variables only when it first loads (with torch), so
# this runs before torch is imported; a user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.


def _cores_shared():
    if int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1) > 1:
        return True
    try:
        # Runnable tasks right now (field 4 of /proc/loadavg, "running/total"), this process
        # included. The least of three reads, so a task that happens to be running for a moment
        # does not count.
        counts = []
        for i in range(3):
            if i:
                time.sleep(0.002)
            with open("/proc/loadavg") as fh:
                counts.append(int(fh.read().split()[3].split("/")[0]))
        return min(counts) > 1
    except (OSError, ValueError, IndexError):
        return False


if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ and _cores_shared():
    os.environ["GOMP_SPINCOUNT"] = "1000"

__version__ = "0.1.0"


def load(run_dir, checkpoint=None):
    """The pretrained model of a run, ready to prompt: `autodidact.load(run).prompt(goal=g).act(obs)`.
    (Imports torch and the method only when called, so `import autodidact` stays fast.)"""
    from autodidact.prompt import load as _load
    return _load(run_dir, checkpoint)
