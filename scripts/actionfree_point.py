"""A small label-efficiency check on the tests' point world (tests/pointenv.py, no simulator):
goal-reaching success of GCBC with every action labeled, with 10% of the episodes labeled (the
labeled part alone), on the file `autodidact label` completes from those 10%, and of LAPO on the
10% file; same steps, batch and network width, 3 seeds (docs/ACTIONFREE.md).

    PYTHONPATH=src .venv/bin/python scripts/actionfree_point.py [--out DIR]
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pointenv import point_play_dataset, rollout_success  # noqa: E402

from autodidact import cli  # noqa: E402
from autodidact.workflows.runs import load_run  # noqa: E402

STEPS, FRACTION, SEEDS = 1000, 0.1, (0, 1, 2)
COMMON = ["--steps", str(STEPS), "--eval-episodes", "0", "--no-progress", "--set", "batch_size=256"]
GCBC = ["--method", "gcbc", "--set", "actor_hidden_dims=128,128"]
LAPO = ["--method", "lapo", "--set", "actor_hidden_dims=128,128", "--set", "idm_hidden_dims=128,128",
        "--set", "fdm_hidden_dims=128,128", "--set", "decoder_hidden_dims=64,64", "--set", "lr=1e-3"]


def run(*argv):
    code = cli.main([str(a) for a in argv])
    if code:
        raise SystemExit(f"failed: autodidact {' '.join(map(str, argv))}")


def success(run_dir):
    _, method, _, _ = load_run(run_dir)
    return rollout_success(method.make_policy(temperature=0.0, seed=0).act)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=None, help="working directory (default: a temporary one)")
    out = Path(p.parse_args().out or tempfile.mkdtemp(prefix="actionfree-"))
    full = point_play_dataset(out / "point.npz")
    rows = {"gcbc, every action labeled": [], f"gcbc, {FRACTION:.0%} labeled alone": [],
            f"gcbc, {FRACTION:.0%} labeled + autodidact label": [], f"lapo, {FRACTION:.0%} labeled": []}
    for seed in SEEDS:
        part, idm = out / f"part-{seed}.npz", out / f"idm-{seed}.npz"
        run("convert", full, part, "--label-fraction", FRACTION, "--seed", seed, "--no-progress")
        run("label", part, "--out", idm, "--steps", 2000, "--seed", seed, "--set", "hidden_dims=256,256",
            "--no-progress")
        for (name, data, method) in zip(rows, (full, part, idm, part), (GCBC, GCBC, GCBC, LAPO)):
            run_dir = out / f"{name.split(',')[0]}-{list(rows).index(name)}-{seed}"
            run("train", *method, "--dataset", data, "--out", run_dir, "--seed", seed, *COMMON)
            rows[name].append(success(run_dir))
    print(f"\ngoal-reaching success on the point world ({STEPS} steps, seeds {', '.join(map(str, SEEDS))}):")
    for name, values in rows.items():
        print(f"  {name:<38} {np.mean(values):.2f}  ({', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
