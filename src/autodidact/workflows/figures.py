"""Figures of what a method learned, written into its run when training ends.

- HILP: `figures/phi.png`, the Hilbert representation of dataset states beside their positions
  and the learned temporal distance to one state.
- Play-LMP: `figures/plan_latents.png` (and `.json`), plan latents of held-out windows coloured by
  what happened in each window, with a label-free clustering score.
- LAPO: `figures/latent_probe.json`, LAOM's measure of latent actions: the R^2 of a linear probe
  from the latent action of each labeled transition to its true action, fitted on half the
  episodes and scored on the others, beside the same probe on an untrained model's latents.
"""

from pathlib import Path

import numpy as np
import torch

from autodidact.core.errors import DataError, UserError
from autodidact.core.io import atomic_path, atomic_write_json
from autodidact.data.dataset import load
from autodidact.data.sampler import GoalSampler, WindowSampler
from autodidact.envs.layouts import maze_positions, window_labels
from autodidact.nn.diagnostics import linear_probe_r2


def write_figures(method, run_dir, dataset, env=None):
    """The figures of `method`'s kind (none for most methods); returns the paths written."""
    figure = FIGURES.get(method.name)
    return figure(method, run_dir, dataset, env=env) if figure else []


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path, dpi):
    import matplotlib.pyplot as plt
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path


def pca_2d(x, reference=None):
    """(rows of x on the top two principal axes of `reference` (default x), the fraction of
    variance they explain). Wide inputs (pixels) first go through a fixed 64-d random projection:
    distances survive it and the SVD stays cheap."""
    ref = x if reference is None else reference
    if ref.shape[1] > 256:
        proj = np.random.default_rng(0).normal(size=(ref.shape[1], 64)).astype(ref.dtype)
        x, ref = x @ proj, ref @ proj
    mean = ref.mean(0, keepdims=True)
    _, s, vt = np.linalg.svd(ref - mean, full_matrices=False)
    explained = (s[:2] ** 2).sum() / max((s ** 2).sum(), 1e-12)
    out = (x - mean) @ vt[:2].T
    if out.shape[1] < 2:
        out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    return out, float(explained)


def stacked(method, observations):
    """Single observations as a method with `frame_stack` reads them: the frame repeated, as at
    the start of an episode."""
    k = getattr(method.cfg, "frame_stack", None) or 1
    return np.concatenate([observations] * k, -1) if k > 1 else observations


def phi_figure(method, run_dir, dataset, env=None, max_states=4000):
    """figures/phi.png: the learned Hilbert representation of dataset states.

    Left: the states at their positions (the maze x-y for OGBench mazes, else a PCA of the
    observations), coloured by position. Middle: phi of the same states projected on its top
    two principal axes, same colours; a representation that keeps the layout keeps the colours
    in the same order. Right: the learned temporal distance ||phi(s) - phi(g)|| to one state g
    (star), drawn at each state's position; in a maze it grows along corridors, not through walls.
    """
    plt = _pyplot()
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(dataset), size=min(max_states, len(dataset)), replace=False))
    raw = np.asarray(dataset.observations[idx])
    device = next(method.parameters()).device
    with torch.no_grad():
        phi = method.phi(torch.as_tensor(stacked(method, raw), device=device)).cpu().numpy()
    # Frames are placed by the simulator state their file keeps (OGBench's visual files hold qpos).
    where = dataset.extras["qpos"][idx] if raw.ndim > 2 and "qpos" in dataset.extras else raw
    obs = np.asarray(where, dtype=np.float32).reshape(len(idx), -1)
    pos = maze_positions(env, obs)
    if pos is not None or obs.shape[1] == 2:
        pos, pos_label = obs[:, :2] if pos is None else pos, ("x", "y")
    else:
        pos, pos_label = pca_2d(obs)[0], ("observation PC 1", "observation PC 2")
    lo, hi = pos.min(0), pos.max(0)
    u = (pos - lo) / np.maximum(hi - lo, 1e-9)
    colors = np.stack([u[:, 0], 0.35 + 0.3 * (1 - u[:, 1]), u[:, 1]], -1).clip(0, 1)  # 2-D colour map
    proj = pca_2d(phi)[0]
    # The reference state g: the one nearest a corner of the data (far from most others).
    ref = int(np.argmin(pos.sum(-1)))
    dist = np.linalg.norm(phi - phi[ref], axis=-1)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    axes[0].scatter(pos[:, 0], pos[:, 1], c=colors, s=4)
    axes[0].set(title="states by position" + (f" ({env})" if env else ""), xlabel=pos_label[0], ylabel=pos_label[1])
    axes[1].scatter(proj[:, 0], proj[:, 1], c=colors, s=4)
    axes[1].set(title=f"phi(s) (d={phi.shape[1]}), top-2 PCA, same colours", xlabel="phi PC 1", ylabel="phi PC 2")
    sc = axes[2].scatter(pos[:, 0], pos[:, 1], c=dist, s=4, cmap="viridis")
    axes[2].scatter(pos[ref, 0], pos[ref, 1], marker="*", s=250, c="red", edgecolors="white")
    axes[2].set(title="learned temporal distance ||phi(s) - phi(g)||", xlabel=pos_label[0], ylabel=pos_label[1])
    fig.colorbar(sc, ax=axes[2])
    for ax in axes:
        ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    return [_save(fig, Path(run_dir) / "figures" / "phi.png", dpi=90)]


def knn_label_accuracy(x, labels, k=5, starts=None, window=0):
    """Leave-one-out k-NN majority-vote accuracy of the labels in the space x: how well windows
    with the same outcome sit together. With `starts`, windows overlapping the query (starts less
    than `window` steps apart) are not neighbours: they share most of their states, and counting
    them would measure only that consecutive windows get similar plans."""
    x = torch.as_tensor(x, dtype=torch.float32)
    dist = torch.cdist(x, x)
    dist.fill_diagonal_(float("inf"))
    if starts is not None:
        starts = torch.as_tensor(np.asarray(starts))
        dist[(starts[:, None] - starts[None]).abs() < window] = float("inf")
    nearest = dist.topk(min(k, len(x) - 1), largest=False).indices.numpy()
    _, codes = np.unique(labels, return_inverse=True)
    votes = codes[nearest]
    pred = np.array([np.bincount(v).argmax() for v in votes])
    return float((pred == codes).mean())


def _heldout_windows(dataset, window, max_windows, seed=0):
    """Up to `max_windows` distinct full windows (states s_0..s_window) from the `-val.npz` twin of
    the training file when there is one, else from the training data.
    Returns (windows [N, window + 1, *obs], their start indices, source path, whether held out)."""
    source, path = dataset, Path(getattr(dataset, "path", "<memory>"))
    val = path.with_name(f"{path.stem}-val.npz")
    if path.suffix == ".npz" and not path.stem.endswith("-val") and val.exists():
        try:
            source = load(val)
        except DataError:
            pass
    try:
        sampler = WindowSampler(source, window, seed=seed, need_actions=False)
    except UserError:
        source = dataset
        sampler = WindowSampler(source, window, seed=seed, need_actions=False)
    rng = np.random.default_rng(seed)
    starts = sampler.start_idxs
    # At most ~200 MB of float32 windows, whatever the observation size (pixels).
    per_window = (window + 1) * int(np.prod(source.obs_shape))
    max_windows = max(3, min(max_windows, int(5e7 // per_window)))
    starts = np.sort(rng.choice(starts, size=min(max_windows, len(starts)), replace=False))
    windows = np.asarray(source.observations[starts[:, None] + np.arange(window + 1)[None]])
    return windows, starts, str(source.path), source is not dataset


def plan_latent_figure(method, run_dir, dataset, env=None, max_windows=2000):
    """Plan latents of held-out windows, 2-D by PCA, coloured by what happened in each window.

    Left: means of q(z | window). Right: means of p(z | s_0, s_T) on the same axes (what the policy
    plans from at test time). The paper's observation is that, without any labels, windows of the
    same task cluster; the title gives the leave-one-out 5-NN accuracy of the outcome labels in
    the full latent space (overlapping windows excluded as neighbours) against the share of the
    most common label.
    """
    plt = _pyplot()
    run_dir = Path(run_dir)
    windows, starts, source, heldout = _heldout_windows(dataset, method.cfg.window, max_windows)
    if len(windows) < 3:
        return []
    labels, description = window_labels(source, windows)
    device = next(method.parameters()).device  # the trainer calls this before moving anything to CPU
    w = torch.as_tensor(windows, dtype=torch.float32, device=device)
    q = method.recognize(w).cpu().numpy()
    p = method.propose(w[:, 0], w[:, -1]).cpu().numpy()
    q2, explained = pca_2d(q)
    p2, _ = pca_2d(p, reference=q)
    accuracy = knn_label_accuracy(q, labels, starts=starts, window=method.cfg.window)
    values, counts = np.unique(labels, return_counts=True)
    majority = float(counts.max() / counts.sum())

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5), sharex=True, sharey=True)
    cmap = plt.get_cmap("tab20" if len(values) > 10 else "tab10")
    order = np.argsort(-counts)
    for ax, pts, title in ((axes[0], q2, "q(z | window): plan recognizer"),
                           (axes[1], p2, "p(z | s_0, goal): plan proposal")):
        for c, i in enumerate(order):
            sel = labels == values[i]
            ax.scatter(pts[sel, 0], pts[sel, 1], s=6, alpha=0.6, color=cmap(c % cmap.N),
                       label=f"{values[i]} ({counts[i]})")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("PC 1")
    axes[0].set_ylabel("PC 2")
    axes[1].legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5), title=description,
                   title_fontsize=7)
    fig.suptitle(f"Play-LMP plan latents of {len(windows)} {'held-out' if heldout else 'training'} "
                 f"{method.cfg.window}-step windows "
                 f"({Path(source).name}); PCA of q means explains {explained:.0%}\n"
                 f"5-NN outcome-label accuracy in z, overlapping windows excluded: {accuracy:.2f} "
                 f"(most common label: {majority:.2f})",
                 fontsize=9)
    fig.tight_layout()
    out = _save(fig, run_dir / "figures" / "plan_latents.png", dpi=110)
    stats = run_dir / "figures" / "plan_latents.json"
    atomic_write_json(stats, {"windows": len(windows), "source": source, "heldout": heldout,
                              "window": method.cfg.window,
                              "label_description": description,
                              "label_counts": {str(v): int(c) for v, c in zip(values, counts)},
                              "knn5_label_accuracy": accuracy, "majority_label_share": majority,
                              "pca_explained_variance": explained})
    return [out, stats]


def latent_probe(method, run_dir, dataset, env=None, max_rows=20_000):
    idxs = dataset.labeled_idxs
    if len(idxs) < 20:
        return []
    rng = np.random.default_rng(0)
    idxs = np.sort(rng.choice(idxs, min(len(idxs), max_rows), replace=False))
    episode = np.searchsorted(dataset.episode_ends, idxs)
    fit = episode % 2 == 0
    if fit.all() or not fit.any():  # one labeled episode: split its transitions instead
        fit = rng.random(len(idxs)) < 0.5
    # Observations as the method reads them: stacked with their episode's previous frames (frame_stack).
    frames = GoalSampler(dataset, 0, need_actions=False, frame_stack=method.cfg.frame_stack).frames
    obs, nxt = (torch.as_tensor(np.asarray(frames(i))) for i in (idxs, idxs + 1))
    if obs.dtype != torch.uint8:  # frames stay bytes until the encoder
        obs, nxt = obs.float(), nxt.float()
    actions = np.asarray(dataset.actions[idxs], dtype=np.float64)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        untrained = type(method)(method.cfg, dataset.obs_shape, method.action_dim)
    device = next(method.parameters()).device
    scores = {}
    for name, model in (("r2", method), ("r2_random_init", untrained.to(device))):
        with torch.no_grad():
            z = torch.cat([model.latent_actions(o.to(device), n.to(device))[0].double().cpu()
                           for o, n in zip(obs.split(4096), nxt.split(4096))]).numpy()
        scores[name] = linear_probe_r2(z[fit], actions[fit], z[~fit], actions[~fit])
    path = run_dir / "figures" / "latent_probe.json"
    atomic_write_json(path, {**scores, "transitions_fit": int(fit.sum()), "transitions_eval": int((~fit).sum()),
                             "source": dataset.path})
    return [path]


FIGURES = {"hilp": phi_figure, "play-lmp": plan_latent_figure, "lapo": latent_probe}
