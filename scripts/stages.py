"""A small runner for benchmark scripts made of autodidact commands: each stage is one command
with the file it writes and the stages it needs; stages whose output exists are skipped, so a
killed benchmark resumes by running it again; `jobs` run at once, one thread each, with a log per
stage under WORK/logs. Used by label_efficiency.py and encoder_value.py."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent / "autodidact"


class Stage:
    """`argv` writes `output`; `deps` name the stages that must finish first; `clean`, a directory
    removed before the command (re)starts (a run directory a killed command left half-written)."""

    def __init__(self, name, argv, output, deps=(), clean=None):
        self.name, self.argv, self.output, self.deps = name, [str(a) for a in argv], Path(output), list(deps)
        self.clean = Path(clean) if clean else None


def final_checkpoint(run, steps):
    """What a finished `train` / `pretrain` run of `steps` has and a killed one has not."""
    return Path(run) / "checkpoints" / f"step_{steps:08d}"


def execute(stages, work, jobs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    done = {n for n, s in stages.items() if s.output.exists()}
    pending, running, failed = [n for n in stages if n not in done], {}, set()
    logs = Path(work) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    while pending or running:
        for n in list(pending):
            s = stages[n]
            if any(d in failed for d in s.deps):
                pending.remove(n)
                failed.add(n)
                print(f"{time.strftime('%T')} skip {n}: a stage it needs failed", flush=True)
            elif len(running) < jobs and all(d in done for d in s.deps):
                pending.remove(n)
                if s.clean is not None and s.clean.exists():
                    shutil.rmtree(s.clean)
                (s.clean or s.output).parent.mkdir(parents=True, exist_ok=True)
                log = open(logs / (n.replace(" ", "_") + ".log"), "w")
                running[n] = (subprocess.Popen(s.argv, stdout=log, stderr=subprocess.STDOUT, env=env), time.time())
                print(f"{time.strftime('%T')} start {n}", flush=True)
        time.sleep(0.5)
        for n, (proc, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[n]
            if proc.returncode == 0:
                done.add(n)
                print(f"{time.strftime('%T')} done {n} ({time.time() - t0:.0f} s)", flush=True)
            else:
                failed.add(n)
                print(f"{time.strftime('%T')} FAILED {n}: see {logs / (n.replace(' ', '_') + '.log')}", flush=True)
    return not failed
