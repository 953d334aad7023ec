"""OGBench label-efficiency benchmark (docs/ACTIONFREE.md): goal-reaching success when only a
fraction of the episodes carry actions, for each way autodidact learns from the rest.

For each labeled fraction F and seed, from one locally collected OGBench file (its name must stay
OGBench's, so presets and the evaluator's env follow it; each variant lives in its own folder):

    alone-M     method M on the F file: it trains on the labeled transitions only (the baseline)
    idm-M       `autodidact label` completes the F file with an inverse dynamics model; M trains on it
    lapo        `--method lapo` on the F file (latent actions from every transition, decoder on F)
    icvf-gcivl  `autodidact icvf` on the observations (no actions read), then GCIVL on the F file
                with its value network started from that representation (fine-tuned)

Every arm has the same steps, batch, widths and seed, and is scored by `autodidact eval` on
OGBench's 5 tasks with the same episode seeds. At F = 1 `idm-M` is `alone-M` and is not run twice.
Each stage is skipped when its output exists, so a killed benchmark resumes by running the same
command. Stages run --jobs at a time, one thread each.

    python scripts/label_efficiency.py data/pointmaze-medium-navigate-v0.npz --work /tmp/labeff/pm \\
        --steps 20000 --label-steps 5000 --icvf-steps 20000 --episodes 10 --seeds 0 --jobs 2

Writes WORK/results.json, WORK/table.md and WORK/label_efficiency.png (success against F).
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

from stages import BIN, Stage, execute, final_checkpoint


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", help="OGBench-named .npz with every action (e.g. from `autodidact collect`)")
    p.add_argument("--work", required=True, help="folder for the variants, runs and results")
    p.add_argument("--fractions", default="0.01,0.025,0.1,1", help="labeled fractions of episodes")
    p.add_argument("--methods", default="gcivl,hiql", help="methods of the alone-/idm- arms")
    p.add_argument("--arms", default="alone,idm,lapo,icvf-gcivl", help="which arms to run")
    p.add_argument("--seeds", default="0")
    p.add_argument("--steps", type=int, default=20000, help="gradient steps of every policy")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--hidden", default="256,256,256", help="actor and value MLP widths (empty: published)")
    p.add_argument("--label-steps", type=int, default=5000, help="`autodidact label` steps")
    p.add_argument("--icvf-steps", type=int, default=20000, help="`autodidact icvf` steps")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per task")
    p.add_argument("--jobs", type=int, default=2, help="stages at once, one thread each")
    p.add_argument("--summary-only", action="store_true", help="only rewrite the table and plot")
    return p.parse_args()


def plan(a):
    work, src = Path(a.work), Path(a.dataset).resolve()
    name = src.name
    fractions = [float(f) for f in a.fractions.split(",")]
    methods, arms = a.methods.split(","), a.arms.split(",")
    sizes = ["--set", f"batch_size={a.batch}"]
    if a.hidden:
        sizes += ["--set", f"actor_hidden_dims={a.hidden}"]
    common = ["--steps", a.steps, "--eval-episodes", "0", "--no-progress"]
    stages, results = {}, []

    def add(stage):
        stages.setdefault(stage.name, stage)
        return stage.name

    for seed in [int(s) for s in a.seeds.split(",")]:
        icvf = work / f"icvf_s{seed}.safetensors"
        if "icvf-gcivl" in arms:
            add(Stage(f"icvf s{seed}", [BIN, "icvf", src, "--out", icvf, "--steps", a.icvf_steps, "--seed", seed,
                                         "--no-progress"], icvf))
        for f in fractions:
            part = work / f"f{f:g}" / name
            conv = add(Stage(f"convert f{f:g}", [BIN, "convert", src, part, "--label-fraction", f, "--seed", 0], part))
            labeled = work / f"f{f:g}-idm" / name
            if "idm" in arms and f < 1:
                lab = add(Stage(f"label f{f:g} s{seed}", [BIN, "label", part, "--out", labeled, "--steps", a.label_steps,
                                                           "--seed", seed, "--no-progress"], labeled, [conv]))
            runs = []
            for m in methods:
                value = ["--set", f"value_hidden_dims={a.hidden}"] if a.hidden and m != "gcbc" else []
                if "alone" in arms:
                    runs.append((f"alone-{m}", ["--method", m, "--dataset", part, *value], [conv]))
                if "idm" in arms:
                    runs.append((f"idm-{m}", ["--method", m, "--dataset", part if f == 1 else labeled, *value],
                                 [conv] if f == 1 else [lab]))
            if "lapo" in arms:
                runs.append(("lapo", ["--method", "lapo", "--dataset", part], [conv]))
            if "icvf-gcivl" in arms:
                value = ["--set", f"value_hidden_dims={a.hidden}"] if a.hidden else []
                runs.append(("icvf-gcivl", ["--method", "gcivl", "--dataset", part, *value, "--set", f"icvf={icvf}"],
                             [conv, f"icvf s{seed}"]))
            for arm, argv, deps in runs:
                run = work / "runs" / f"{arm}_f{f:g}_s{seed}"
                if arm.startswith("idm-") and f == 1:  # the same run as alone-M
                    results.append((arm, f, seed, work / "runs" / f"alone-{arm[4:]}_f1_s{seed}"))
                    continue
                trained = add(Stage(f"train {run.name}", [BIN, "train", *argv, "--out", run, "--seed", seed, *common, *sizes],
                                    final_checkpoint(run, a.steps), deps, clean=run))
                add(Stage(f"eval {run.name}", [BIN, "eval", run, "--episodes", a.episodes, "--seed", seed, "--no-progress"],
                          run / "eval" / "final.json", [trained]))
                results.append((arm, f, seed, run))
    return stages, results


def summarize(a, results):
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    table = {}
    for arm, f, seed, run in results:
        path = run / "eval" / "final.json"
        if path.exists():
            r = json.load(open(path))
            table.setdefault(arm, {}).setdefault(f, []).append(r["overall_success"])
    fractions = sorted({f for _, f, _, _ in results})
    arms = list(dict.fromkeys(arm for arm, _, _, _ in results))
    json.dump({"dataset": Path(a.dataset).name, "steps": a.steps, "batch": a.batch, "hidden": a.hidden,
               "label_steps": a.label_steps, "icvf_steps": a.icvf_steps, "episodes": a.episodes, "seeds": a.seeds,
               "success": {arm: {f"{f:g}": v for f, v in table.get(arm, {}).items()} for arm in arms}},
              open(work / "results.json", "w"), indent=1)
    lines = [f"{Path(a.dataset).name}: overall success (%) by labeled fraction of episodes, mean over seeds {a.seeds}; "
             f"{a.steps} steps, batch {a.batch}, widths {a.hidden or 'published'}, {a.episodes} episodes per task",
             "", "| arm | " + " | ".join(f"{100 * f:g}%" for f in fractions) + " |",
             "|---|" + "---|" * len(fractions)]
    for arm in arms:
        cells = [f"{100 * statistics.mean(v):.1f}" if (v := table.get(arm, {}).get(f)) else "-" for f in fractions]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    (work / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for arm in arms:
        pts = [(f, 100 * statistics.mean(table[arm][f])) for f in fractions if f in table.get(arm, {})]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=arm, ls="--" if arm.startswith("alone") else "-")
    ax.set_xscale("log")
    ax.set_xticks(fractions, [f"{100 * f:g}%" for f in fractions])
    ax.set_xlabel("episodes with actions")
    ax.set_ylabel("success (%)")
    ax.set_title(Path(a.dataset).name.removesuffix(".npz"), fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(work / "label_efficiency.png", dpi=110)
    print(f"\nwrote {work / 'table.md'}, {work / 'results.json'}, {work / 'label_efficiency.png'}")


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
