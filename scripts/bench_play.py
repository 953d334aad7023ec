#!/usr/bin/env python
"""Play benchmark (issue 5): Play-LMP vs Play-GCBC vs BESO vs GCBC on OGBench play data.

For each dataset and method: train through the CLI at one reduced CPU config, evaluate on the
env's 5 tasks, then again with perturbations (`autodidact eval --perturb`, when this autodidact
has it), and print per-task success as markdown tables (and optionally write everything as JSON).
Methods that `autodidact methods` does not list are skipped with a message.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_play.py \\
        data/cube-single-play-v0.npz data/scene-play-v0.npz data/puzzle-3x3-play-v0.npz \\
        --steps 20000 --episodes 20 --perturb object --out-dir runs/bench_play --json bench_play.json

    # smoke test: tiny budget, short episodes (numbers meaningless)
    .venv/bin/python scripts/bench_play.py /tmp/coll/cube-single-play-v0.npz --steps 50 --episodes 1 --max-steps 50

The CPU budget (state it next to any number): every method gets the same number of gradient steps
(`--steps`), or, with `--budget-minutes M`, as many steps as it makes in M minutes of training
(throughput measured first with `autodidact bench`). Networks are reduced from the published
3x512 to 3x256 for every method, and batches to what one CPU core turns over in a few ms to tens
of ms per step:

  gcbc       batch 256 transitions, actor 3x256                         (published: 1024, 3x512)
  beso       batch 256 transitions, score MLP 3x256                     (published: 1024, 3x512 here)
  play-gcbc  batch 32 windows of 16-32 steps (~770 decoded steps), decoder 3x256
  play-lmp   as play-gcbc, plus proposal 3x256, recognizer 2x128 biGRU, latent 64
             (paper: 2048-unit networks, latent 256)

`--set METHOD:key=value` changes any of these (repeatable); `--full-size` uses every method's
default config instead. Runs live in OUT_DIR/<dataset>/<method>; an existing run is resumed to
`--steps` rather than retrained, so an interrupted benchmark continues where it stopped.

Play-LMP's paper reports 85.5% success over 18 tasks against 70.3% for BC on expert demos; here
the comparison is Play-LMP against Play-GCBC and BESO (and OGBench's GCBC) trained on the same
play data.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

METHODS = ("play-lmp", "play-gcbc", "beso", "gcbc")
REDUCED = {
    "gcbc": ("batch_size=256", "actor_hidden_dims=256,256,256"),
    "beso": ("batch_size=256", "hidden_dims=256,256,256"),
    "play-gcbc": ("batch_size=32", "actor_hidden_dims=256,256,256"),
    "play-lmp": ("batch_size=32", "actor_hidden_dims=256,256,256", "proposal_hidden_dims=256,256,256",
                 "recognizer_hidden=128", "recognizer_layers=2", "latent_dim=64"),
}


def _cli(*args):
    return [sys.executable, "-m", "autodidact", *args]


def _run(cmd, dry_run=False, capture=True):
    """Run a command; returns (returncode, combined output tail)."""
    print("$ " + " ".join(cmd), flush=True)
    if dry_run:
        return 0, ""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    proc = subprocess.run(cmd, env=env, capture_output=capture, text=True)
    out = ((proc.stdout or "") + (proc.stderr or "")).strip()
    if proc.returncode != 0:
        print(f"  failed (exit {proc.returncode}):\n  " + "\n  ".join(out.splitlines()[-10:]), flush=True)
    return proc.returncode, out


def listed_methods():
    proc = subprocess.run(_cli("methods"), capture_output=True, text=True, check=True)
    return {line.split()[0] for line in proc.stdout.splitlines() if line.strip() and not line.startswith(" ")}


def eval_has_perturb():
    proc = subprocess.run(_cli("eval", "--help"), capture_output=True, text=True)
    return "--perturb" in proc.stdout


def measured_steps_per_s(method, dataset, overrides, dry_run):
    """Training throughput from `autodidact bench` (used by --budget-minutes)."""
    cmd = _cli("bench", "--method", method, "--dataset", str(dataset), "--steps", "20", "--warmup", "5")
    for o in overrides:
        cmd += ["--set", o]
    rc, out = _run(cmd, dry_run)
    if dry_run:
        return 1.0
    for line in out.splitlines():
        if line.startswith("training steps/s"):
            return float(line.split()[-1])
    raise RuntimeError(f"could not read the throughput of {method} from `autodidact bench`")


def train(method, dataset, run_dir, steps, overrides, seed, dry_run):
    if (run_dir / "run.json").exists():
        cmd = _cli("train", "--resume", str(run_dir), "--steps", str(steps), "--no-progress")
    else:
        cmd = _cli("train", "--method", method, "--dataset", str(dataset), "--out", str(run_dir),
                   "--steps", str(steps), "--eval-episodes", "0", "--seed", str(seed), "--no-progress")
        for o in overrides:
            cmd += ["--set", o]
    t0 = time.monotonic()
    rc, _ = _run(cmd, dry_run)
    return rc, time.monotonic() - t0


def evaluate(run_dir, episodes, max_steps, perturb, dry_run):
    """Per-task results of one evaluation (plain when perturb is None), or None if it failed."""
    cmd = _cli("eval", str(run_dir), "--episodes", str(episodes), "--no-progress")
    if max_steps:
        cmd += ["--max-steps", str(max_steps)]
    if perturb:
        cmd += ["--perturb", perturb]
    rc, _ = _run(cmd, dry_run)
    if rc != 0 or dry_run:
        return None
    result = json.loads((run_dir / "eval" / ("final_perturbed.json" if perturb else "final.json")).read_text())
    if perturb:
        # Each perturbation mode writes the same file; keep a copy per mode.
        safe = perturb.replace("@", "_at_").replace("/", "_")
        (run_dir / "eval" / f"final_perturbed_{safe}.json").write_text(json.dumps(result, indent=2))
    return result


def _fmt(x):
    return "-" if x is None or x != x else f"{100 * x:.0f}"


def markdown(results, perturb_modes):
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        rows = [r for r in results if r["dataset"] == dataset]
        tasks = next((r["eval"]["tasks"] for r in rows if r.get("eval")), [])
        names = [t["task_name"] for t in tasks]
        head = ["method", *names, "overall", *[f"overall ({m})" for m in perturb_modes], "steps", "train min"]
        lines += [f"\n### {dataset} (success %)\n", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        for r in rows:
            ev = r.get("eval")
            per_task = [_fmt(t["success"]) for t in ev["tasks"]] if ev else ["-"] * len(names)
            overall = _fmt(ev["overall_success"]) if ev else "-"
            pert = [_fmt((r["perturbed"].get(m) or {}).get("overall_success")) for m in perturb_modes]
            status = "" if not r.get("error") else f" ({r['error']})"
            lines.append("| " + " | ".join([r["method"] + status, *per_task, overall, *pert, str(r["steps"]),
                                            f"{r['train_seconds'] / 60:.1f}"]) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datasets", nargs="+", help="play dataset .npz files named like OGBench's (they pick the env)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated (default {','.join(METHODS)})")
    p.add_argument("--steps", type=int, default=20_000, help="gradient steps per run (default 20000)")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="instead of --steps: train each method for about this many minutes (throughput measured first)")
    p.add_argument("--episodes", type=int, default=20, help="evaluation episodes per task (default 20)")
    p.add_argument("--max-steps", type=int, default=None, help="cap episode length (smoke tests only)")
    p.add_argument("--perturb", action="append", default=None, metavar="TARGET[@WHEN]",
                   help="also evaluate with this perturbation (repeatable; default: object). 'none' disables")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="METHOD:KEY=VALUE",
                   help="extra config override for one method (repeatable)")
    p.add_argument("--full-size", action="store_true", help="use each method's default config, not the reduced one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default="runs/bench_play", help="where the runs go (default runs/bench_play)")
    p.add_argument("--json", default=None, help="also write all results here")
    p.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    args = p.parse_args(argv)

    listed = listed_methods()
    methods = []
    for m in (m.strip() for m in args.methods.split(",") if m.strip()):
        if m in listed:
            methods.append(m)
        else:
            print(f"skipping method '{m}': `autodidact methods` does not list it", flush=True)
    perturb_modes = [m for m in (args.perturb or ["object"]) if m.lower() != "none"]
    if perturb_modes and not eval_has_perturb():
        print("skipping perturbed evaluations: `autodidact eval --help` has no --perturb", flush=True)
        perturb_modes = []
    extra = {}
    for item in args.overrides:
        if ":" not in item or "=" not in item:
            p.error(f"--set {item}: expected METHOD:KEY=VALUE")
        m, kv = item.split(":", 1)
        extra.setdefault(m, []).append(kv)

    results = []
    for dataset in map(Path, args.datasets):
        if not dataset.exists():
            print(f"skipping {dataset}: no such file", flush=True)
            continue
        name = dataset.name.removesuffix(".npz")
        for method in methods:
            overrides = [*(() if args.full_size else REDUCED.get(method, ())), *extra.get(method, [])]
            run_dir = Path(args.out_dir) / name / method
            steps = args.steps
            if args.budget_minutes:
                rate = measured_steps_per_s(method, dataset, overrides, args.dry_run)
                steps = max(1, int(rate * args.budget_minutes * 60))
            row = {"dataset": name, "method": method, "steps": steps, "overrides": overrides,
                   "run_dir": str(run_dir), "train_seconds": 0.0, "eval": None, "perturbed": {}}
            results.append(row)
            rc, secs = train(method, dataset, run_dir, steps, overrides, args.seed, args.dry_run)
            row["train_seconds"] = secs
            if rc != 0:
                row["error"] = f"train exit {rc}"
                continue
            row["eval"] = evaluate(run_dir, args.episodes, args.max_steps, None, args.dry_run)
            for mode in perturb_modes:
                row["perturbed"][mode] = evaluate(run_dir, args.episodes, args.max_steps, mode, args.dry_run)
            if row["eval"] is None and not args.dry_run:
                row["error"] = "eval failed"

    setup = {"steps": args.steps, "budget_minutes": args.budget_minutes, "episodes": args.episodes,
             "max_steps": args.max_steps, "perturb": perturb_modes, "seed": args.seed,
             "reduced": not args.full_size, "threads": os.environ.get("OMP_NUM_THREADS", "1")}
    print(f"\nCPU budget: {setup}")
    print(markdown(results, perturb_modes))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(args.json).with_suffix(".tmp")
        tmp.write_text(json.dumps({"setup": setup, "results": results}, indent=2))
        tmp.replace(args.json)  # atomic: a reader never sees half a file
        print(f"\nwrote {args.json}")
    return 1 if any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
