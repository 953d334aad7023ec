"""Loss curves of scripts/learn_reference.sh: each method's losses as autodidact and OGBench's JAX
reference logged them on the same file, budget and seed, one panel per loss, and a table of each
loss averaged over the first and the last tenth of training.

    python scripts/plot_learn_reference.py /tmp/reflearn "gcbc gcivl hiql" 0 docs/figures/learn_visual_cube_single.png

autodidact's side is RUN/metrics.csv, each row the mean over the steps/100 steps before it; the
reference's is the `loss_curve` the reference learner records at the same steps, each the loss of
that one step's batch, so its curve is the noisier of the two. The two name their losses
differently; LOSSES maps them.
"""

import csv
import json
import statistics
import sys
from pathlib import Path

# method -> [(panel title, autodidact's metric, the reference's metric)]
LOSSES = {
    "gcbc": [("actor loss (-log pi)", "actor/loss", "actor/actor_loss"), ("actor mse", "actor/mse", "actor/mse")],
    "gcivl": [("value loss", "value/loss", "value/value_loss"), ("actor loss (AWR)", "actor/loss", "actor/actor_loss"),
              ("actor mse", "actor/mse", "actor/mse")],
    "gciql": [("value loss", "value/loss", "value/value_loss"), ("critic loss", "critic/loss", "critic/critic_loss"),
              ("actor loss", "actor/loss", "actor/actor_loss")],
    "qrl": [("value loss", "value/loss", "value/value_loss"), ("actor loss", "actor/loss", "actor/actor_loss")],
    "crl": [("critic loss", "critic/loss", "critic/contrastive_loss"), ("actor loss", "actor/loss", "actor/actor_loss")],
    "hiql": [("value loss", "value/loss", "value/value_loss"), ("high actor loss", "high_actor/loss", "high_actor/actor_loss"),
             ("low actor loss", "low_actor/loss", "low_actor/actor_loss"), ("low actor mse", "low_actor/mse", "low_actor/mse")],
}


def curves(work, method, seed):
    ours = {}
    with open(work / "runs" / f"{method}_s{seed}" / "metrics.csv") as fh:
        for row in csv.DictReader(fh):
            if row.get("step"):
                for k, v in row.items():
                    if v not in ("", None) and k != "step":
                        ours.setdefault(k, []).append((int(row["step"]), float(v)))
    ref = {}
    for row in json.load(open(work / f"{method}_s{seed}_ref.json"))["loss_curve"]:
        for k, v in row.items():
            if k != "step":
                ref.setdefault(k, []).append((row["step"], v))
    return ours, ref


def tenth(points, last):
    n = max(1, len(points) // 10)
    return statistics.mean(v for _, v in (points[-n:] if last else points[:n]))


def main(work, methods, seed, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    work, methods = Path(work), methods.split()
    width = max(len(LOSSES[m]) for m in methods)
    fig, axes = plt.subplots(len(methods), width, figsize=(3.6 * width, 2.8 * len(methods)), squeeze=False)
    print("| method | loss | autodidact first → last tenth | reference first → last tenth |")
    print("|---|---|---|---|")
    for i, m in enumerate(methods):
        ours, ref = curves(work, m, seed)
        for j in range(width):
            ax = axes[i][j]
            if j >= len(LOSSES[m]):
                ax.axis("off")
                continue
            title, ok, rk = LOSSES[m][j]
            for pts, label, colour in ((ours.get(ok), "autodidact (interval mean)", "tab:blue"),
                                       (ref.get(rk), "reference (JAX, one step)", "tab:orange")):
                if pts:
                    ax.plot(*zip(*pts), label=label, color=colour, lw=1)
            ax.set_title(f"{m}: {title}", fontsize=9)
            ax.set_xlabel("gradient step", fontsize=8)
            ax.tick_params(labelsize=7)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
            cells = [f"{tenth(p, False):.3g} → {tenth(p, True):.3g}" if p else "n/a" for p in (ours.get(ok), ref.get(rk))]
            print(f"| {m} | {title} | {cells[0]} | {cells[1]} |")
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    print(f"\nwrote {png}")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: plot_learn_reference.py WORK 'METHODS' SEED OUT.png")
    main(*sys.argv[1:])
