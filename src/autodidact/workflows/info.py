"""`autodidact info`: what a dataset holds, in numbers a person can compare.

State coverage is the fraction of grid cells over the first two observation dimensions (the x-y
position in OGBench's mazes) that the data visits, the number Play-LMP uses to compare datasets.
For a known maze the cells are the maze's own free cells; otherwise a `grid` x `grid` lattice over
the data's bounding box.
"""

import numpy as np

from autodidact.data.dataset import load
from autodidact.data.labels import label_summary
from autodidact.envs import env_name_for_dataset
from autodidact.envs.layouts import maze_cells


def coverage(observations, env_name=None, grid=20, chunk=1 << 20):
    """(fraction of cells visited, description of the grid, [H, W] visit counts)."""
    n = len(observations)
    maze = maze_cells(env_name)
    if maze is not None:
        free, to_ij = maze
        h = max(i for i, _ in free) + 2
        w = max(j for _, j in free) + 2
        counts = np.zeros((h, w), np.int64)
        for s in range(0, n, chunk):
            i, j = to_ij(np.asarray(observations[s:s + chunk, :2], dtype=np.float64))
            ok = (i >= 0) & (i < h) & (j >= 0) & (j < w)
            np.add.at(counts, (i[ok], j[ok]), 1)
        visited = sum(counts[i, j] > 0 for i, j in free)
        return visited / len(free), f"{len(free)} free maze cells", counts
    flat = np.asarray(observations).reshape(n, -1)
    if flat.shape[1] < 2:
        return None, "needs at least 2 observation dims", None
    xy = flat[:, :2].astype(np.float64)
    lo, hi = xy.min(0), xy.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    cell = np.minimum(((xy - lo) / span * grid).astype(np.int64), grid - 1)
    counts = np.zeros((grid, grid), np.int64)
    np.add.at(counts, (cell[:, 1], cell[:, 0]), 1)
    return float((counts > 0).mean()), f"{grid}x{grid} grid over dims 0-1 bounding box", counts


def summarize(path, grid=20):
    ds = load(path)
    env_name = env_name_for_dataset(path)
    lengths = ds.episode_lengths - 1  # transitions per episode
    obs = ds.observations
    flat = obs.reshape(len(obs), -1)
    out = {
        "path": str(path), "env": env_name, "episodes": ds.num_episodes, "transitions": ds.num_transitions,
        "steps": len(ds), "obs_shape": list(ds.obs_shape), "obs_dtype": str(obs.dtype),
        "action_dim": ds.action_dim,
        **label_summary(ds),
        "episode_length": {"min": int(lengths.min()), "mean": float(lengths.mean()),
                           "max": int(lengths.max())},
        "obs_min": float(flat.min()), "obs_max": float(flat.max()),
        "extras": sorted(ds.extras),
    }
    # Only with labeled transitions: min/max of an empty selection would raise (all-unlabeled
    # action_mask, or every episode a single state).
    if ds.actions is not None and len(ds.labeled_idxs):
        a = np.asarray(ds.actions)[ds.labeled_idxs]
        out["action_min"], out["action_max"] = float(a.min()), float(a.max())
        out["action_mean"], out["action_std"] = float(a.mean()), float(a.std())
    if ds.rewards is not None:
        out["reward_min"], out["reward_max"] = float(ds.rewards.min()), float(ds.rewards.max())
    frac, how, counts = coverage(obs, env_name, grid=grid)
    out["coverage"], out["coverage_grid"] = frac, how
    return out, counts


def print_info(path, grid=20, figure=None):
    info, counts = summarize(path, grid=grid)
    el = info["episode_length"]
    lines = [
        f"file          {info['path']}",
        f"environment   {info['env'] or 'unknown (evaluation disabled)'}",
        f"episodes      {info['episodes']}",
        f"transitions   {info['transitions']}  ({info['steps']} stored states)",
        f"episode len   min {el['min']}  mean {el['mean']:.1f}  max {el['max']}  (transitions)",
        f"observations  shape {tuple(info['obs_shape'])} {info['obs_dtype']}  "
        f"range [{info['obs_min']:.3g}, {info['obs_max']:.3g}]",
    ]
    if info["action_dim"] is None:
        lines.append("actions       none (action-free dataset)")
    elif "action_min" not in info:  # actions stored, but no labeled transition to summarize
        lines.append(f"actions       dim {info['action_dim']}  labeled 0/{info['transitions']}")
    else:
        lines.append(f"actions       dim {info['action_dim']}  range [{info['action_min']:.3g}, "
                     f"{info['action_max']:.3g}]  mean {info['action_mean']:.3g}  std {info['action_std']:.3g}  "
                     f"labeled {info['labeled_transitions']}/{info['transitions']}")
    if info["action_dim"] is not None:
        lines.append(_labels_line(info))
    if "reward_min" in info:
        lines.append(f"rewards       range [{info['reward_min']:.3g}, {info['reward_max']:.3g}]")
    if info["extras"]:
        lines.append(f"extra fields  {', '.join(info['extras'])}")
    if info["coverage"] is not None:
        lines.append(f"coverage      {info['coverage']:.3f} of {info['coverage_grid']}")
    print("\n".join(lines))
    if figure and counts is not None:
        write_coverage_figure(counts, figure, title=f"{info['path']}: coverage {info['coverage']:.2f}")
        print(f"figure        {figure}")
    return info


def _labels_line(info):
    """Labeled fraction in episodes and transitions, and how many labels a model inferred."""
    def pct(a, b):
        return f"{a}/{b} ({100.0 * a / max(b, 1):.1f}%)"
    line = (f"labels        episodes {pct(info['labeled_episodes'], info['episodes'])}  "
            f"transitions {pct(info['labeled_transitions'], info['transitions'])}")
    if info["partly_labeled_episodes"]:
        line += f"  (+{info['partly_labeled_episodes']} episodes partly labeled)"
    if "inferred_transitions" in info:
        line += f"  inferred by a model {pct(info['inferred_transitions'], info['transitions'])}"
    return line


def write_coverage_figure(counts, path, title=""):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from autodidact.core.io import atomic_path
    fig, ax = plt.subplots(figsize=(5, 5))
    im = ax.imshow(np.log1p(counts), origin="lower", cmap="viridis")
    fig.colorbar(im, ax=ax, label="log(1 + visits)")
    ax.set_title(title, fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
