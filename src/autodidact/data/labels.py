"""Partially labeled data: which steps carry an action, hiding labels, joining files.

A step is *labeled* when the file has `actions`, its `action_mask` (if any) is 1 there, and it was
not labeled by a model (`action_inferred`, written by `autodidact label`, is 0 there). An episode
is labeled when every one of its transitions is. Hidden actions are stored as zeros, so a file made
partially labeled by `hide_actions` does not leak the labels it hides.
"""

from dataclasses import replace

import numpy as np

from autodidact.core.errors import UserError
from autodidact.data.dataset import Dataset

INFERRED = "action_inferred"  # per-step bool extra: the action was predicted, not recorded


def labeled_steps(ds: Dataset, recorded_only=False):
    """[N] bool: the step carries an action label. `recorded_only` also excludes actions a model
    inferred, which must never train the model that infers them."""
    if ds.actions is None:
        return np.zeros(len(ds), bool)
    labeled = np.ones(len(ds), bool) if ds.action_mask is None else np.asarray(ds.action_mask, bool).copy()
    if recorded_only and INFERRED in ds.extras:
        labeled &= ~np.asarray(ds.extras[INFERRED], bool)
    return labeled


def episode_of_step(ds: Dataset):
    """[N] index of the episode each step belongs to."""
    return np.repeat(np.arange(ds.num_episodes), ds.episode_lengths)


def labeled_episodes(ds: Dataset, recorded_only=False):
    """([E] labeled transitions per episode, [E] transitions per episode)."""
    labeled = labeled_steps(ds, recorded_only) & ~ds.terminals
    counts = np.bincount(episode_of_step(ds)[labeled], minlength=ds.num_episodes)
    return counts, ds.episode_lengths - 1


def label_summary(ds: Dataset):
    """What `info` and `train` say about the labels: episodes fully / partly labeled, labeled
    transitions, and how many of the labels a model inferred."""
    counts, transitions = labeled_episodes(ds)
    out = {"labeled_episodes": int(((counts == transitions) & (transitions > 0)).sum()),
           "partly_labeled_episodes": int(((counts > 0) & (counts < transitions)).sum()),
           "episodes": ds.num_episodes, "labeled_transitions": int(counts.sum()),
           "transitions": ds.num_transitions}
    if INFERRED in ds.extras and ds.actions is not None:
        out["inferred_transitions"] = int((np.asarray(ds.extras[INFERRED], bool) & ~ds.terminals).sum())
    return out


def hide_actions(ds: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """A copy of `ds` that keeps the actions of a seeded `fraction` of its episodes (at least one)
    and hides the rest through `action_mask`, their actions zeroed. `fraction` 0 drops the
    `actions` field altogether (an action-free file)."""
    if not 0.0 <= fraction <= 1.0:
        raise UserError(f"--label-fraction must be in [0, 1], got {fraction:g}")
    if ds.actions is None:
        raise UserError(f"{ds.path}: holds no actions, so there are no labels to keep a fraction of")
    if fraction == 0.0:
        return replace(ds, actions=None, action_mask=None)
    rng = np.random.default_rng(seed)
    keep = max(1, int(fraction * ds.num_episodes + 0.5))  # half rounds up: 2.5% of 100 keeps 3
    kept_episodes = np.zeros(ds.num_episodes, bool)
    kept_episodes[rng.permutation(ds.num_episodes)[:keep]] = True
    mask = labeled_steps(ds) & kept_episodes[episode_of_step(ds)]
    actions = np.where(mask[:, None], np.asarray(ds.actions), 0).astype(ds.actions.dtype)
    return replace(ds, actions=actions, action_mask=mask)


def concatenate(datasets) -> tuple[Dataset, list]:
    """Episodes of every dataset back to back, and the extras dropped because not every file has
    them alike. Actions are kept when any file has them; steps of a file without them are
    unlabeled (zeros under `action_mask`). Rewards are kept only when every file has them."""
    if any(INFERRED in ds.extras for ds in datasets):  # a file without it recorded all its labels
        datasets = [ds if INFERRED in ds.extras
                    else replace(ds, extras={**ds.extras, INFERRED: np.zeros(len(ds), bool)})
                    for ds in datasets]
    first = datasets[0]
    for ds in datasets[1:]:
        if ds.obs_shape != first.obs_shape or ds.observations.dtype != first.observations.dtype:
            raise UserError(f"{ds.path}: observations {list(ds.obs_shape)} {ds.observations.dtype} differ from "
                            f"{first.path}'s {list(first.obs_shape)} {first.observations.dtype}")
    dims = {ds.action_dim for ds in datasets if ds.actions is not None}
    if len(dims) > 1:
        raise UserError(f"action dimensions differ between {', '.join(ds.path for ds in datasets)}: "
                        f"{sorted(dims)}")
    actions = mask = None
    if dims:
        dim = dims.pop()
        actions = np.concatenate([np.zeros((len(ds), dim), np.float32) if ds.actions is None
                                  else np.asarray(ds.actions, np.float32) for ds in datasets])
        mask = np.concatenate([labeled_steps(ds) for ds in datasets])
    rewards = (np.concatenate([ds.rewards for ds in datasets])
               if all(ds.rewards is not None for ds in datasets) else None)
    names = set(first.extras)
    for ds in datasets[1:]:
        names &= {k for k, v in ds.extras.items()
                  if k in first.extras and v.shape[1:] == first.extras[k].shape[1:]}
    dropped = sorted({k for ds in datasets for k in ds.extras} - names)
    extras = {k: np.concatenate([np.asarray(ds.extras[k]) for ds in datasets]) for k in sorted(names)}
    joined = Dataset(observations=np.concatenate([np.asarray(ds.observations) for ds in datasets]),
                     terminals=np.concatenate([ds.terminals for ds in datasets]), actions=actions,
                     action_mask=mask, rewards=rewards, extras=extras,
                     path=" + ".join(ds.path for ds in datasets))
    return joined, dropped
