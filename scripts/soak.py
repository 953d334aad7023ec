#!/usr/bin/env python
"""Reliability soak: the fuzzers of tests/test_fuzz_loaders.py with many more examples, and the
SIGKILL tests of tests/test_reliability.py with many more kills. Prints (and optionally writes)
the measured counts that docs/RELIABILITY.md quotes.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/soak.py                       # defaults below
    OMP_NUM_THREADS=1 .venv/bin/python scripts/soak.py --examples 2000 --kills-collect 40 \\
        --kills-train 100 --seed 7 --out soak.json
    .venv/bin/python scripts/soak.py --fuzz-only        # or --kills-only

Exit status is non-zero if any fuzz example or kill check failed.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pytest(test_file, env_extra, select=None):
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), **env_extra)
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "tests" / test_file), "-q", "-p", "no:cacheprovider"]
    if select:
        cmd += ["-k", select]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
    return proc.returncode, time.monotonic() - t0, tail


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=1000, help="hypothesis examples per fuzzer (default 1000)")
    p.add_argument("--kills-collect", type=int, default=30, help="SIGKILLs during collect (default 30)")
    p.add_argument("--kills-train", type=int, default=60, help="SIGKILLs during train/resume (default 60)")
    p.add_argument("--seed", type=int, default=None,
                   help="kill seed, and fuzz seed (default: the suite's fixed kill seed, derandomized fuzzing)")
    p.add_argument("--time-bound", type=float, default=10.0, help="seconds allowed per fuzzed load (default 10)")
    p.add_argument("--fuzz-only", action="store_true")
    p.add_argument("--kills-only", action="store_true")
    p.add_argument("--out", help="also write the report as JSON here")
    args = p.parse_args(argv)

    report, failed = {}, False
    with tempfile.TemporaryDirectory() as tmp:
        if not args.kills_only:
            env = {"AUTODIDACT_FUZZ_EXAMPLES": str(args.examples), "AUTODIDACT_FUZZ_REPORT": f"{tmp}/fuzz.json",
                   "AUTODIDACT_FUZZ_TIME_BOUND": str(args.time_bound)}
            if args.seed is not None:
                env["AUTODIDACT_FUZZ_SEED"] = str(args.seed)
            rc, secs, tail = _pytest("test_fuzz_loaders.py", env)
            fuzz = json.loads(Path(f"{tmp}/fuzz.json").read_text()) if Path(f"{tmp}/fuzz.json").exists() else {}
            report["fuzz"] = {"exit_code": rc, "seconds": round(secs, 1), "fuzzers": fuzz,
                              "total_examples": sum(v["examples"] for v in fuzz.values())}
            if rc:
                failed = True
                report["fuzz"]["pytest_tail"] = tail
        if not args.fuzz_only:
            env = {"AUTODIDACT_KILL_COLLECT": str(args.kills_collect), "AUTODIDACT_KILL_TRAIN": str(args.kills_train),
                   "AUTODIDACT_RELIABILITY_REPORT": f"{tmp}/kills.json"}
            if args.seed is not None:
                env["AUTODIDACT_KILL_SEED"] = str(args.seed)
            rc, secs, tail = _pytest("test_reliability.py", env, select="sigkill")
            kills = json.loads(Path(f"{tmp}/kills.json").read_text()) if Path(f"{tmp}/kills.json").exists() else {}
            report["kills"] = {"exit_code": rc, "seconds": round(secs, 1), **kills}
            if rc:
                failed = True
                report["kills"]["pytest_tail"] = tail
    text = json.dumps(report, indent=2, sort_keys=True)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
