"""Collect a small sample of each dataset and print the statistics table in docs/COLLECTION.md.

For every dataset: collect `--episodes` training episodes (+ max(1, episodes // 10) validation)
once with 1 worker and once with 2, check both runs wrote identical arrays, and report episode
length, action statistics, maze cell coverage and throughput. Throughput is end to end: process
start, environment construction and compressed writing included. Besides wall-clock throughput it
reports transitions per CPU-second (this process plus its reaped worker processes), which other
jobs on a shared machine disturb much less, and the 1-minute load average before each run.

    python scripts/collection_stats.py --out /tmp/collect-stats
"""

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np

from autodidact.workflows.collect import RECIPES, collect

# Sample sizes: stitch episodes are 5x shorter, so take more of them.
DEFAULT_SAMPLES = {
    "pointmaze-medium-navigate-v0": 20,
    "pointmaze-large-navigate-v0": 20,
    "pointmaze-medium-stitch-v0": 50,
    "cube-single-play-v0": 20,
    "scene-play-v0": 20,
    "puzzle-3x3-play-v0": 20,
}


def load(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def cpu_seconds():
    """CPU time of this process and of its finished children (the pool's workers, once joined)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_collect(name, out_dir, episodes, seed, workers):
    """Collect and return (paths, wall transitions/s, transitions per CPU-second, load average)."""
    load_average = os.getloadavg()[0]
    start, start_cpu = time.perf_counter(), cpu_seconds()
    paths = collect(name, out_dir, episodes=episodes, seed=seed, workers=workers, progress=False)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
    transitions = sum(len(load(p)["terminals"]) for p in paths)
    return paths, transitions / seconds, transitions / cpu, load_average


def maze_coverage(env_name, observations):
    """Fraction of the maze's free cells that the sample's (x, y) positions visit."""
    import gymnasium

    from autodidact.workflows.collect.maze import free_cells  # also registers the maze envs

    maze = gymnasium.make(env_name).unwrapped
    free = set(free_cells(maze.maze_map))
    visited = {maze.xy_to_ij(xy) for xy in observations[:, :2]}
    return len(visited & free) / len(free)


def fmt(values):
    return "[" + ", ".join(f"{v:+.2f}" for v in values) + "]"


def dataset_row(name, out_dir, episodes, seed):
    recipe = RECIPES[name]
    (train_path, val_path), *speed_1 = timed_collect(name, out_dir / "w1", episodes, seed, workers=1)
    paths_2, *speed_2 = timed_collect(name, out_dir / "w2", episodes, seed, workers=2)
    identical = all(
        load(a)[k].tobytes() == load(b)[k].tobytes()
        for a, b in zip((train_path, val_path), paths_2)
        for k in load(a)
    )
    train = load(train_path)
    ends = np.nonzero(train["terminals"])[0]
    lengths = np.diff(np.concatenate([[-1], ends]))
    actions = train["actions"]
    coverage = maze_coverage(recipe.env_name, train["observations"]) if recipe.kind != "play" else None
    return {
        "dataset": name,
        "episodes": len(ends),
        "episode length (min-max)": f"{lengths.min()}-{lengths.max()}",
        "transitions / 1000 episodes": int(1000 * lengths.mean()),
        "OGBench recipe": f"{recipe.episodes} x {recipe.max_episode_steps}",
        "action mean": fmt(actions.mean(0)),
        "action std": fmt(actions.std(0)),
        "action |max|": f"{np.abs(actions).max():.2f}",
        "clipped at +-1": f"{(np.abs(actions) >= 1.0).mean():.1%}",
        "cell coverage": "-" if coverage is None else f"{coverage:.0%}",
        "transitions/s (per CPU-s) [load], 1 worker": "{:.0f} ({:.0f}) [{:.1f}]".format(*speed_1),
        "transitions/s (per CPU-s) [load], 2 workers": "{:.0f} ({:.0f}) [{:.1f}]".format(*speed_2),
        "1 vs 2 workers identical": "yes" if identical else "NO",
    }


def print_markdown(rows):
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


def warm_up():
    """Import the simulators once up front so the first timed run does not pay for it."""
    import autodidact.workflows.collect.manip  # noqa: F401
    import autodidact.workflows.collect.maze  # noqa: F401


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="scratch directory for the sample files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", nargs="+", default=list(DEFAULT_SAMPLES), help="dataset names")
    parser.add_argument("--episodes", type=int, help="training episodes per dataset (default: per dataset)")
    args = parser.parse_args()
    warm_up()
    rows = []
    for name in args.datasets:
        episodes = args.episodes or DEFAULT_SAMPLES.get(name, 20)
        rows.append(dataset_row(name, args.out / name, episodes, args.seed))
        print(f"done {name}", flush=True)
    print_markdown(rows)


if __name__ == "__main__":
    main()
