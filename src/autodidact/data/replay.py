"""Transitions for online learning: the online replay buffer and the prior data's transitions.

Both sample uniformly with replacement from a numpy Generator the caller owns (and checkpoints),
as RLPD's `Dataset.sample` does. The replay buffer keeps every transition (no eviction: its
capacity is the run's environment steps, as RLPD's); `arrays()` and `from_arrays` are what a
checkpoint stores and restores, so a resumed run samples the same batches.
"""

import numpy as np

from autodidact.core.errors import DataError

FIELDS = ("observations", "actions", "rewards", "masks", "next_observations")


class ReplayBuffer:
    """Online transitions (s, a, r, mask, s') in insertion order; mask is 0 where s' is terminal."""

    def __init__(self, capacity, obs_dim, action_dim):
        self.capacity, self.size = int(capacity), 0
        self.data = {"observations": np.zeros((capacity, obs_dim), np.float32),
                     "actions": np.zeros((capacity, action_dim), np.float32),
                     "rewards": np.zeros(capacity, np.float32), "masks": np.zeros(capacity, np.float32),
                     "next_observations": np.zeros((capacity, obs_dim), np.float32)}

    def __len__(self):
        return self.size

    def add(self, observation, action, reward, mask, next_observation):
        if self.size >= self.capacity:
            raise ValueError(f"replay buffer full ({self.capacity} transitions)")
        i = self.size
        self.data["observations"][i] = observation
        self.data["actions"][i] = action
        self.data["rewards"][i] = reward
        self.data["masks"][i] = mask
        self.data["next_observations"][i] = next_observation
        self.size += 1

    def sample(self, rng, n):
        idx = rng.integers(self.size, size=n)
        return {k: v[idx] for k, v in self.data.items()}

    def arrays(self):
        """The filled part, for a checkpoint."""
        return {k: v[:self.size] for k, v in self.data.items()}

    @classmethod
    def from_arrays(cls, arrays, capacity):
        size = len(arrays["rewards"])
        buf = cls(max(capacity, size), arrays["observations"].shape[1], arrays["actions"].shape[1])
        for k in FIELDS:
            buf.data[k][:size] = arrays[k]
        buf.size = size
        return buf


class PriorWindows:
    """High-level transitions of a reward-free dataset: every window of `horizon` steps inside an
    episode, (s_t, s_{t+horizon}), with `skills[t]` when `skills` (one row per window start `t`,
    the skill a high-level method reads off the window) is set."""

    def __init__(self, dataset, horizon):
        self.dataset, self.horizon, self.skills = dataset, int(horizon), None
        idx = np.arange(len(dataset))
        self.idxs = idx[dataset.episode_end_of(idx) >= idx + self.horizon]
        if len(self.idxs) == 0:
            raise DataError(dataset.path, "terminals", f"no episode is longer than {horizon} steps, the skill horizon")

    def __len__(self):
        return len(self.idxs)

    def windows(self, starts):
        """Observations [n, horizon + 1, ...] and actions [n, horizon, ...] (None without actions)
        of the windows starting at `starts`."""
        ds = self.dataset
        steps = np.asarray(starts)[:, None] + np.arange(self.horizon + 1)
        observations = np.asarray(ds.observations[steps.reshape(-1)], np.float32).reshape(*steps.shape, -1)
        actions = None
        if ds.actions is not None:
            actions = np.asarray(ds.actions[steps[:, :-1].reshape(-1)], np.float32)
            actions = actions.reshape(len(steps), self.horizon, -1)
        return observations, actions

    def sample(self, rng, n):
        idx = self.idxs[rng.integers(len(self.idxs), size=n)]
        ds, nxt = self.dataset, idx + self.horizon
        batch = {"observations": np.asarray(ds.observations[idx], np.float32),
                 "rewards": np.zeros(n, np.float32), "masks": np.ones(n, np.float32),
                 "next_observations": np.asarray(ds.observations[nxt], np.float32)}
        if self.skills is not None:
            batch["skills"] = self.skills[idx]
        return batch


class PriorTransitions:
    """The transitions of a reward-free dataset (`data.dataset.Dataset` with actions): s, a, s'
    gathered by index, so the observations stay stored once (and memory-mapped where they are)."""

    def __init__(self, dataset):
        if dataset.actions is None:
            raise DataError(dataset.path, "actions", "missing; online fine-tuning learns from the prior data's actions")
        self.dataset = dataset
        mask = ~dataset.terminals if dataset.action_mask is None else (~dataset.terminals & dataset.action_mask)
        self.idxs = np.flatnonzero(mask)
        if len(self.idxs) == 0:
            raise DataError(dataset.path, "actions", "no labeled transitions to learn from")

    def __len__(self):
        return len(self.idxs)

    def sample(self, rng, n):
        """A batch with placeholder rewards and masks (0 and 1); the method labels them."""
        idx = self.idxs[rng.integers(len(self.idxs), size=n)]
        ds = self.dataset
        return {"observations": np.asarray(ds.observations[idx], np.float32),
                "actions": np.asarray(ds.actions[idx], np.float32),
                "rewards": np.zeros(n, np.float32), "masks": np.ones(n, np.float32),
                "next_observations": np.asarray(ds.observations[idx + 1], np.float32)}
