"""The value of each pretrained encoder (docs/PRETRAIN.md): goal-reaching success of methods trained
from scratch and from each `autodidact pretrain` objective's encoder, frozen and fine-tuned, on one
OGBench-named file, at the same steps, batch, widths and seed, scored by `autodidact eval` on
OGBench's 5 tasks; beside each encoder its RankMe and qpos probe R^2 (RUN/encoder_health.json).

    python scripts/encoder_value.py data/cube-single-play-v0.npz --work /tmp/encval/cube \\
        --pretrain-steps 20000 --steps 20000 --methods gcbc,gcivl --episodes 10 --jobs 2

Variants per method: `scratch` (the method's own encoders: flat states or IMPALA early fusion;
on states also `scratch-mlp`, the pretrained encoders' StateEncoder architecture from a random
start), then `OBJECTIVE-frozen` and `OBJECTIVE-finetuned` for each objective. Every stage is
skipped when its output exists, so a killed benchmark resumes by running the same command.
Writes WORK/results.json and WORK/table.md.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

from stages import BIN, Stage, execute, final_checkpoint

OBJECTIVES = "spr,dynamo,byol,barlow,vicreg,idm"


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", help="OGBench-named .npz (states or frames; frames should keep qpos for the probe)")
    p.add_argument("--work", required=True)
    p.add_argument("--objectives", default=OBJECTIVES)
    p.add_argument("--methods", default="gcbc,gcivl")
    p.add_argument("--seeds", default="0")
    p.add_argument("--pretrain-steps", type=int, default=20000)
    p.add_argument("--steps", type=int, default=20000, help="gradient steps of every method run")
    p.add_argument("--batch", type=int, default=256, help="batch of every run (pretraining and methods)")
    p.add_argument("--hidden", default="256,256,256", help="actor and value MLP widths (empty: published)")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per task")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--summary-only", action="store_true")
    return p.parse_args()


def is_frames(dataset):
    import numpy as np
    with np.load(dataset, mmap_mode="r") as f:
        return f["observations"].ndim == 4


def plan(a):
    work, data = Path(a.work), Path(a.dataset).resolve()
    frames = is_frames(data)
    objectives, methods = a.objectives.split(","), a.methods.split(",")
    stages, results = {}, []

    def add(stage):
        stages.setdefault(stage.name, stage)
        return stage.name

    for seed in [int(s) for s in a.seeds.split(",")]:
        for obj in objectives:
            run = work / "pretrain" / f"{obj}_s{seed}"
            add(Stage(f"pretrain {obj} s{seed}", [BIN, "pretrain", "--objective", obj, "--dataset", data, "--out", run,
                                                   "--steps", a.pretrain_steps, "--seed", seed, "--no-progress",
                                                   "--set", f"batch_size={a.batch}"], run / "encoder.safetensors",
                      clean=run))
        for m in methods:
            sizes = ["--set", f"batch_size={a.batch}"]
            if a.hidden:
                sizes += ["--set", f"actor_hidden_dims={a.hidden}"] + (["--set", f"value_hidden_dims={a.hidden}"]
                                                                       if m != "gcbc" else [])
            variants = [("scratch", [], [])]
            if not frames:
                variants.append(("scratch-mlp", ["--set", "state_encoder_dims=256,256"], []))
            for obj in objectives:
                enc = work / "pretrain" / f"{obj}_s{seed}"
                for mode, flag in (("frozen", ["--freeze"]), ("finetuned", [])):
                    variants.append((f"{obj}-{mode}", ["--encoder", enc, *flag], [f"pretrain {obj} s{seed}"]))
            for variant, extra, deps in variants:
                run = work / "runs" / f"{m}_{variant}_s{seed}"
                trained = add(Stage(f"train {run.name}", [BIN, "train", "--method", m, "--dataset", data, "--out", run,
                                                          "--steps", a.steps, "--seed", seed, "--eval-episodes", "0",
                                                          "--no-progress", *sizes, *extra],
                                    final_checkpoint(run, a.steps), deps, clean=run))
                add(Stage(f"eval {run.name}", [BIN, "eval", run, "--episodes", a.episodes, "--seed", seed, "--no-progress"],
                          run / "eval" / "final.json", [trained]))
                results.append((m, variant, seed, run))
    return stages, results


def summarize(a, results):
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    methods = a.methods.split(",")
    variants = list(dict.fromkeys(v for _, v, _, _ in results))
    success = {}
    for m, v, seed, run in results:
        path = run / "eval" / "final.json"
        if path.exists():
            r = json.load(open(path))
            success.setdefault((m, v), []).append(r)
    health = {}
    for obj in a.objectives.split(","):
        rows = [json.load(open(p)) for s in a.seeds.split(",")
                if (p := work / "pretrain" / f"{obj}_s{s}" / "encoder_health.json").exists()]
        if rows:
            health[obj] = {k: statistics.mean(r[k] for r in rows) for k in
                           ("rankme", "rankme_random_init", "probe_r2", "probe_r2_random_init") if k in rows[0]}
    head = (f"{Path(a.dataset).name}: overall success (%) and per task, mean over seeds {a.seeds}; pretraining "
            f"{a.pretrain_steps} steps, methods {a.steps} steps, batch {a.batch}, widths {a.hidden or 'published'}, "
            f"{a.episodes} episodes per task")
    lines = [head, "", "| variant | RankMe (init) | qpos probe R^2 (init) | "
             + " | ".join(f"{m} overall | {m} per task" for m in methods) + " |",
             "|---|---|---|" + "---|---|" * len(methods)]
    for v in variants:
        obj = v.rsplit("-", 1)[0]
        h = health.get(obj, {})
        rank = f"{h['rankme']:.1f} ({h['rankme_random_init']:.1f})" if h else ""
        probe = f"{h['probe_r2']:.2f} ({h['probe_r2_random_init']:.2f})" if "probe_r2" in h else ""
        cells = []
        for m in methods:
            rs = success.get((m, v))
            if not rs:
                cells += ["-", "-"]
                continue
            tasks = [statistics.mean(r["tasks"][i]["success"] for r in rs) for i in range(len(rs[0]["tasks"]))]
            cells += [f"**{100 * statistics.mean(r['overall_success'] for r in rs):.1f}**",
                      " ".join(f"{100 * t:.0f}" for t in tasks)]
        lines.append(f"| {v} | {rank} | {probe} | " + " | ".join(cells) + " |")
    (work / "table.md").write_text("\n".join(lines) + "\n")
    json.dump({"args": vars(a), "health": health,
               "success": {f"{m}/{v}": [r["overall_success"] for r in rs] for (m, v), rs in success.items()}},
              open(work / "results.json", "w"), indent=1)
    print("\n".join(lines))


def main():
    a = parse()
    stages, results = plan(a)
    ok = True
    if not a.summary_only:
        ok = execute(stages, a.work, a.jobs)
    summarize(a, results)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
