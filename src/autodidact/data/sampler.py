"""Batch samplers: pure numpy index arithmetic over a compact `Dataset`.

`GoalSampler` relabels goals in hindsight with OGBench's semantics (its `GCDataset`/`HGCDataset`):
value goals and actor goals are each the current state, a future state of the same trajectory
(geometric offsets with p = 1 - discount, or uniform over the rest of the trajectory), or a random
dataset state; reward is 0 at the goal and -1 elsewhere (or 1/0 with `gc_negative=False`), and the
mask is 0 exactly when the goal is the current state. A method's config says how each kind of goal
is drawn with a `GoalConfig`. With `subgoal_steps` set the sampler also returns HIQL's low-level
goals (k steps ahead) and high-level goals with their k-step subgoal targets.

`WindowSampler` cuts fixed-length windows that never cross an episode boundary, for sequence
models (Play-LMP, Play-GCBC).

Both read frames as OGBench's GCDataset does: `frame_stack` stacks the k frames ending at each
index along channels (an episode's first frame repeats before it starts), and with probability
`p_aug` a whole batch is randomly shifted, each row by its own offset, the same offset for every
frame of that row (its observation, next observation and goals).

Both own a `np.random.Generator`; its state round-trips through `state_dict()` (plain JSON), so a
resumed run draws exactly the batches an uninterrupted one would.
"""

from dataclasses import dataclass

import numpy as np

from autodidact.core.config import check, opt
from autodidact.core.errors import UserError
from autodidact.data.dataset import Dataset


def take(array, idxs):
    """array[idxs] along the first axis. `np.take` gathers rows 3-5x faster than fancy indexing
    (a 1024-row batch of 2-29 floats per row: 10-25 against 60-90 us), and a sampler gathers
    5-9 times per batch."""
    return np.take(np.asarray(array), idxs, axis=0)


def random_shift(images, offsets, pad=3):
    """Shift each row of `images` [B, ..., H, W, C] by `offsets` [B, 2] in [0, 2 * pad]: the crop
    at those offsets of the image padded by `pad` with its edge pixels (OGBench's random crop).
    Edge padding is index clamping, so the crop is one gather with no padded copy."""
    h, w = images.shape[-3:-1]
    rows = np.clip(offsets[:, :1] - pad + np.arange(h), 0, h - 1)           # [B, H]
    cols = np.clip(offsets[:, 1:] - pad + np.arange(w), 0, w - 1)           # [B, W]
    flat = images.reshape(len(images), -1, *images.shape[-3:])              # [B, F, H, W, C]
    b = np.arange(len(images))[:, None, None, None]
    f = np.arange(flat.shape[1])[None, :, None, None]
    return flat[b, f, rows[:, None, :, None], cols[:, None, None, :]].reshape(images.shape)


class _Sampler:
    def __init__(self, dataset: Dataset, seed: int, p_aug=None, frame_stack=None):
        self.dataset = dataset
        self.rng = np.random.default_rng(seed)
        self.p_aug = p_aug
        self.frame_stack = frame_stack if frame_stack and frame_stack > 1 else None
        if p_aug is not None and len(dataset.obs_shape) != 3:
            raise UserError(f"{dataset.path}: p_aug shifts frames [H, W, C], but observations are "
                            f"{list(dataset.obs_shape)}; leave p_aug unset")

    def frames(self, idxs):
        """Observations at `idxs` (any shape), with the `frame_stack` frames ending there stacked
        along the last axis."""
        obs = self.dataset.observations
        if self.frame_stack is None:
            return take(obs, idxs)
        first = self.dataset.episode_start_of(idxs)
        return np.concatenate([take(obs, np.maximum(idxs - i, first)) for i in reversed(range(self.frame_stack))], -1)

    def augment(self, batch, keys):
        """With probability p_aug, shift the frames under `keys` (one offset per row for all)."""
        if self.p_aug is None or self.rng.random() >= self.p_aug:
            return
        offsets = self.rng.integers(0, 7, size=(len(batch[keys[0]]), 2))
        for k in keys:
            if k in batch:
                batch[k] = random_shift(batch[k], offsets)

    def state_dict(self):
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state["bit_generator"]


@dataclass
class GoalConfig:
    """How one kind of goal (a method's value goals or actor goals) is relabeled in hindsight, with
    OGBench's names: `--set value_goals.p_randomgoal=0.3`."""
    p_curgoal: float = opt(0.0, "probability the goal is the current state")
    p_trajgoal: float = opt(1.0, "probability the goal is a future state of the same trajectory")
    p_randomgoal: float = opt(0.0, "probability the goal is a random dataset state")
    geom_sample: bool = opt(False, "future offsets geometric with p = 1 - discount (True) or uniform (False)")

    def __post_init__(self):
        for k in ("p_curgoal", "p_trajgoal", "p_randomgoal"):
            v = getattr(self, k)
            check(0.0 <= v <= 1.0, k, f"must be in [0, 1], got {v}")
        total = self.p_curgoal + self.p_trajgoal + self.p_randomgoal
        check(abs(total - 1.0) < 1e-6, "p_*goal", f"p_curgoal + p_trajgoal + p_randomgoal must sum to 1, got {total:g}")


# OGBench's value-goal mix for GCIVL, GCIQL and HIQL: the current state (reward 0, the episode
# ends), a future state at a geometric offset, or a random state.
VALUE_GOALS = GoalConfig(p_curgoal=0.2, p_trajgoal=0.5, p_randomgoal=0.3, geom_sample=True)


class GoalSampler(_Sampler):
    """Transitions with hindsight-relabeled goals (OGBench's GCDataset and HGCDataset).

    A batch holds observations, next_observations, actions (with `need_actions`), and for each goal
    kind given, `value_goals` with their `rewards` and `masks`, and `actor_goals`. `subgoal_steps`
    adds HIQL's low-level goals (k steps ahead) and high-level goals with their k-step subgoal
    targets; `chunk` > 1 returns the next `chunk` actions of the episode per row ([B, chunk, A]),
    starting only where all of them carry labels. With `unlabeled` a batch starts from any
    transition, labeled or not: its `actions` are zeros where `action_labeled` is 0. With
    `future_offset` K > 1 it also holds `future_observations`, o_t+k with k uniform in
    1..min(K, steps left in the episode), so the offset never crosses the episode's end (LAOM's
    multi-step inverse model).
    """

    def __init__(self, dataset: Dataset, seed: int = 0, *, value_goals: GoalConfig = None,
                 actor_goals: GoalConfig = None, discount: float = 0.99, gc_negative: bool = True,
                 subgoal_steps: int = 0, chunk: int = 1, need_actions: bool = True, unlabeled: bool = False,
                 future_offset: int = 1, p_aug=None, frame_stack=None):
        super().__init__(dataset, seed, p_aug, frame_stack)
        if future_offset < 1:
            raise UserError(f"future_offset must be >= 1, got {future_offset}")
        self.future_offset = future_offset
        self.value_goals, self.actor_goals = value_goals, actor_goals
        self.discount, self.gc_negative, self.subgoal_steps = discount, gc_negative, subgoal_steps
        self.need_actions = need_actions
        if need_actions and dataset.actions is None:
            raise UserError(f"{dataset.path}: field 'actions': missing, and this method learns from actions "
                            "(infer them with `autodidact label`)")
        # Transitions the batch starts from: labeled ones when the method regresses actions.
        starts = dataset.labeled_idxs if need_actions and not unlabeled else dataset.valid_idxs
        self._labeled = None
        if need_actions and unlabeled:
            self._labeled = np.zeros(len(dataset), np.float32)
            self._labeled[dataset.labeled_idxs] = 1.0
        if chunk > 1:
            starts = _chunk_starts(dataset, starts, chunk)
            if len(starts) == 0:
                raise UserError(f"{dataset.path}: no episode has {chunk} consecutive labeled steps for "
                                f"chunk={chunk}; lower chunk")
        self.start_idxs = starts
        self._chunk = np.arange(chunk) if chunk > 1 else None
        if len(self.start_idxs) == 0:
            raise UserError(f"{dataset.path}: no usable transitions (every episode has a single step"
                            f"{' or no action labels' if need_actions else ''})")

    def _random_starts(self, n):
        return self.start_idxs[self.rng.integers(len(self.start_idxs), size=n)]

    def _random_states(self, n):
        # Random goals are any transition start, as in the reference (its compact `valid_idxs`).
        valid = self.dataset.valid_idxs
        return valid[self.rng.integers(len(valid), size=n)]

    def _future_idxs(self, idxs, final, geom):
        n = len(idxs)
        if geom:
            offsets = self.rng.geometric(p=1.0 - self.discount, size=n)  # in [1, inf)
            return np.minimum(idxs + offsets, final)
        # Uniform over (idx, final]; rounding as the reference does.
        u = self.rng.random(n)
        return np.round(np.minimum(idxs + 1, final) * u + final * (1.0 - u)).astype(np.int64)

    def future_idxs(self, idxs):
        """idxs + k, k uniform in 1..min(future_offset, steps to the episode's last observation)."""
        room = np.minimum(self.dataset.episode_end_of(idxs) - idxs, self.future_offset)
        return idxs + self.rng.integers(1, room + 1)

    def sample_goals(self, idxs, goals: GoalConfig, final):
        """Goal indices for starts `idxs`, drawn as `goals` says; `final` is each start's last
        transition start (the reference's "final state" in compact data)."""
        n = len(idxs)
        traj = self._future_idxs(idxs, final, goals.geom_sample)
        rand = self._random_states(n)
        if goals.p_curgoal >= 1.0:
            return idxs.copy()
        out = np.where(self.rng.random(n) < goals.p_trajgoal / (1.0 - goals.p_curgoal), traj, rand)
        return np.where(self.rng.random(n) < goals.p_curgoal, idxs, out)

    def sample(self, batch_size):
        ds = self.dataset
        idxs = self._random_starts(batch_size)
        final = ds.episode_end_of(idxs) - 1
        batch = {"observations": self.frames(idxs)}
        if self._chunk is None:
            batch["next_observations"] = self.frames(idxs + 1)
            if self._labeled is not None:
                labeled = take(self._labeled, idxs)
                # Hidden actions may hold anything (NaN included, which validation allows there).
                batch["actions"] = np.where(labeled[:, None] > 0, take(ds.actions, idxs), 0).astype(np.float32)
                batch["action_labeled"] = labeled
            elif self.need_actions:
                batch["actions"] = take(ds.actions, idxs)
        elif self.need_actions:
            batch["actions"] = take(ds.actions, idxs[:, None] + self._chunk)   # [B, chunk, A]
        if self.future_offset > 1:
            batch["future_observations"] = self.frames(self.future_idxs(idxs))
        if self.value_goals is not None:
            value_goal_idxs = self.sample_goals(idxs, self.value_goals, final)
            batch["value_goals"] = self.frames(value_goal_idxs)
            successes = (idxs == value_goal_idxs).astype(np.float32)
            batch["masks"] = 1.0 - successes
            batch["rewards"] = successes - (1.0 if self.gc_negative else 0.0)
        if self.actor_goals is not None:
            batch["actor_goals"] = self.frames(self.sample_goals(idxs, self.actor_goals, final))
        if self.subgoal_steps:
            self._add_subgoals(batch, idxs, final)
        self.augment(batch, ["observations", "next_observations", "future_observations", "value_goals", "actor_goals",
                             "low_actor_goals", "high_actor_goals", "high_actor_targets"])
        return batch

    def _add_subgoals(self, batch, idxs, final):
        """HIQL: low-level goal k steps ahead; high-level goal with its k-step subgoal target."""
        k, goals = self.subgoal_steps, self.actor_goals
        batch["low_actor_goals"] = self.frames(np.minimum(idxs + k, final))
        high_traj = self._future_idxs(idxs, final, goals.geom_sample)
        high_rand = self._random_states(len(idxs))
        pick_random = self.rng.random(len(idxs)) < goals.p_randomgoal
        batch["high_actor_goals"] = self.frames(np.where(pick_random, high_rand, high_traj))
        batch["high_actor_targets"] = self.frames(np.where(pick_random, np.minimum(idxs + k, final),
                                                           np.minimum(idxs + k, high_traj)))


def _chunk_starts(dataset, starts, chunk):
    """The starts followed by chunk - 1 more labeled transitions of their episode."""
    ok = dataset.episode_end_of(starts) - starts >= chunk
    labeled = np.zeros(len(dataset), np.int64)
    labeled[dataset.labeled_idxs] = 1
    count = np.concatenate([[0], np.cumsum(labeled)])
    ok[ok] = count[starts[ok] + chunk] - count[starts[ok]] == chunk
    return starts[ok]


class WindowSampler(_Sampler):
    """Fixed-length windows inside one episode: `window` observations and actions, and the
    observation right after the window as its goal (Play-LMP's hindsight goal)."""

    def __init__(self, dataset: Dataset, window: int, seed: int = 0, need_actions: bool = True, p_aug=None,
                 frame_stack=None):
        super().__init__(dataset, seed, p_aug, frame_stack)
        if window < 1:
            raise UserError(f"window must be >= 1, got {window}")
        self.window = window
        self.need_actions = need_actions
        if need_actions and dataset.actions is None:
            raise UserError(f"{dataset.path}: field 'actions': missing, and this method learns from actions "
                            "(infer them with `autodidact label`)")
        # A start s is usable when steps s .. s+window-1 are transitions of one episode: the
        # window's last action still has a next state (the goal) in the same episode.
        idx = np.arange(len(dataset))
        room = dataset.episode_end_of(idx) - idx
        ok = room >= window
        if need_actions and dataset.action_mask is not None:
            # Every step in the window must be labeled: a running count over the mask.
            lab = np.concatenate([[0], np.cumsum(dataset.action_mask.astype(np.int64))])
            full = np.zeros(len(idx), bool)
            full[ok] = (lab[idx[ok] + window] - lab[idx[ok]]) == window
            ok = full
        self.start_idxs = np.flatnonzero(ok)
        if len(self.start_idxs) == 0:
            raise UserError(f"{dataset.path}: no episode is long enough for windows of {window} steps "
                            f"(longest has {int(dataset.episode_lengths.max()) - 1} transitions)")
        self._offsets = np.arange(window)

    def sample(self, batch_size):
        ds = self.dataset
        starts = self.start_idxs[self.rng.integers(len(self.start_idxs), size=batch_size)]
        steps = starts[:, None] + self._offsets[None, :]
        batch = {"observations": self.frames(steps),              # [B, L, *obs]
                 "goals": self.frames(starts + self.window)}      # [B, *obs]
        if self.need_actions:
            batch["actions"] = take(ds.actions, steps)            # [B, L, A]
        self.augment(batch, ["observations", "goals"])
        return batch


def context_idxs(dataset: Dataset, idxs, context):
    """[B, 2 * context + 2] indices of o_{t-context} .. o_{t+context+1} for each step t of `idxs`,
    clamped to t's episode: an episode's first and last observations repeat past its edges."""
    steps = np.asarray(idxs)[:, None] + np.arange(-context, context + 2)
    return np.clip(steps, dataset.episode_start_of(idxs)[:, None], dataset.episode_end_of(idxs)[:, None])


class ContextSampler(_Sampler):
    """Labeled steps with the observations around them, for a non-causal inverse dynamics model
    (VPT's): `observations` [B, 2K + 2, *obs] are o_{t-K} .. o_{t+K+1}, `actions` [B, A] is a_t."""

    def __init__(self, dataset: Dataset, idxs, context: int, seed: int = 0):
        super().__init__(dataset, seed)
        if context < 0:
            raise UserError(f"context must be >= 0, got {context}")
        self.idxs, self.context = np.asarray(idxs), context
        if len(self.idxs) == 0:
            raise UserError(f"{dataset.path}: no labeled transitions to learn actions from")

    def batch(self, idxs):
        batch = {"observations": take(self.dataset.observations, context_idxs(self.dataset, idxs, self.context))}
        if self.dataset.actions is not None:
            batch["actions"] = take(self.dataset.actions, idxs)
        return batch

    def sample(self, batch_size):
        return self.batch(self.idxs[self.rng.integers(len(self.idxs), size=batch_size)])


class IntentSampler(GoalSampler):
    """ICVF's batches (its release's GCSDataset): transitions with an outcome `goals` g and an
    intent `intents` z, each with its own reward and mask (0 / 1 exactly at the current state).
    Both are drawn as `goals` says; with probability `p_samegoal` the outcome is the intent."""

    def __init__(self, dataset: Dataset, seed: int = 0, *, goals: GoalConfig, p_samegoal: float = 0.5,
                 discount: float = 0.99, p_aug=None, frame_stack=None):
        super().__init__(dataset, seed, discount=discount, need_actions=False, p_aug=p_aug, frame_stack=frame_stack)
        self.goals, self.p_samegoal = goals, p_samegoal

    def sample(self, batch_size):
        ds = self.dataset
        idxs = self._random_starts(batch_size)
        final = ds.episode_end_of(idxs) - 1
        intent_idxs = self.sample_goals(idxs, self.goals, final)
        goal_idxs = self.sample_goals(idxs, self.goals, final)
        goal_idxs = np.where(self.rng.random(batch_size) < self.p_samegoal, intent_idxs, goal_idxs)
        batch = {"observations": self.frames(idxs), "next_observations": self.frames(idxs + 1),
                 "goals": self.frames(goal_idxs), "intents": self.frames(intent_idxs)}
        for key, where in (("", goal_idxs), ("intent_", intent_idxs)):
            success = (idxs == where).astype(np.float32)
            batch[f"{key}rewards"] = success - 1.0
            batch[f"{key}masks"] = 1.0 - success
        self.augment(batch, ["observations", "next_observations", "goals", "intents"])
        return batch
