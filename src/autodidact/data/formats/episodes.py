"""What every importer shares: episodes in, one validated autodidact `Dataset` out.

Each format reader yields `Episode`s: every state of the episode once, and the per-step values
(actions, rewards, terminations, extras) with one row per state or one per transition (a row
fewer). `assemble` lays them back to back as autodidact's compact dataset: terminals are 1 on the
last state of each episode, and a per-transition array gets one filler row at that last state, a
copy of the row before it (that step starts no transition, so the filler is never sampled; the
same convention as `dataset._regular_to_compact`). The environment's own termination signal is
kept as OGBench's `masks` (0 where the episode terminated after that step), apart from the episode
boundaries, which also cover truncations and time limits.
"""

import importlib
from dataclasses import dataclass, field

import numpy as np

from autodidact.core.errors import DataError, UserError
from autodidact.data.dataset import VERSION_KEY, Dataset

# Field names with a fixed meaning in autodidact's files: a source's extra field of the same name
# (a Dict observation key called `actions`, say) is stored as `obs_<name>` instead.
RESERVED = {"observations", "next_observations", "actions", "terminals", "valids", "action_mask", "rewards",
            "masks", "timeouts", VERSION_KEY}


@dataclass
class Episode:
    name: str                              # where it lives in the source, for error messages
    observations: np.ndarray               # [L, *obs_shape]: every state once
    actions: np.ndarray | None = None      # [L or L - 1, action_dim]
    rewards: np.ndarray | None = None      # [L or L - 1]: reward of the transition from each state
    terminated: np.ndarray | None = None   # [L or L - 1] bool: the env terminated after this step
    extras: dict = field(default_factory=dict)  # name -> [L or L - 1, ...]


def require(module, extra):
    """Import an optional dependency, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"reading this format needs the '{module}' package: "
                        f"pip install 'autodidact[{extra}]'") from None


def choose_observations(source, where, named, obs_keys, preferred=()):
    """Pick the observation arrays out of a source's named per-step arrays.

    `obs_keys` (the user's --obs-keys) wins; otherwise the first of `preferred` present; otherwise
    every vector key concatenated in sorted order, or the only image key. Returns (observations,
    keys used, the other vector arrays as extras). Several keys are concatenated, so they must be
    vectors ([L, d]); an image (uint8 [L, H, W, C]) stands alone.
    """
    vectors = {k: v for k, v in named.items() if v.ndim <= 2}
    images = {k: v for k, v in named.items() if v.ndim > 2}
    if obs_keys:
        missing = [k for k in obs_keys if k not in named]
        if missing:
            raise DataError(source, f"{where}{missing[0]}", "not found",
                            f"--obs-keys takes some of: {', '.join(sorted(named))}")
        keys = list(obs_keys)
    else:
        keys = next(([k] for k in preferred if k in named), None)
        if keys is None:
            keys = sorted(vectors) or (sorted(images) if len(images) == 1 else None)
        if keys is None:
            raise DataError(source, where.rstrip("/") or None, f"holds several images ({', '.join(sorted(images))})",
                            "pick one with --obs-keys")
    if len(keys) == 1:
        obs = _as_steps(named[keys[0]])
    else:
        bad = [k for k in keys if k in images]
        if bad:
            raise DataError(source, f"{where}{bad[0]}", "is an image and cannot be concatenated with other keys",
                            "give it alone to --obs-keys")
        obs = np.concatenate([_as_steps(named[k]).astype(np.result_type(*[named[j] for j in keys]), copy=False)
                              for k in keys], axis=1)
    extras = {k: _as_steps(v) for k, v in vectors.items() if k not in keys}
    return obs, keys, extras


def _as_steps(arr):
    """[L] scalars become [L, 1] so that every observation is a vector."""
    arr = np.asarray(arr)
    return arr[:, None] if arr.ndim == 1 else arr


def assemble(source, episodes, total=None, progress=False):
    """Concatenate `episodes` (an iterable of `total` Episodes) into a validated Dataset (see the
    module docstring)."""
    from tqdm import tqdm

    bar = tqdm(episodes, total=total, desc="reading episodes", unit="ep", disable=not progress)
    try:
        return _assemble(source, bar)
    except BaseException:
        bar.leave = False  # an error is one line: clear the bar instead of leaving it above
        raise
    finally:
        bar.close()


def _assemble(source, episodes):
    parts = {}    # field -> per-episode arrays, one row per state
    shapes = {}   # field -> (shape of one step, the episode that set it)
    count = 0
    for ep in episodes:
        obs = _observation_dtype(source, ep)
        n = len(obs)
        if n == 0:
            raise DataError(source, f"{ep.name}/observations", "episode holds no states")
        fields = {"observations": obs, "terminals": np.arange(n) == n - 1}
        if ep.actions is not None:
            fields["actions"] = _per_step(source, ep, "actions", ep.actions, n).reshape(n, -1)
        if ep.rewards is not None:
            fields["rewards"] = _scalars(source, ep, "rewards", _per_step(source, ep, "rewards", ep.rewards, n))
        if ep.terminated is not None:
            terminated = _scalars(source, ep, "terminated", _per_step(source, ep, "terminated", ep.terminated, n))
            fields["masks"] = 1.0 - terminated.astype(bool).astype(np.float32)
        fields.update({f"obs_{k}" if k in RESERVED else k: _per_step(source, ep, k, np.asarray(v), n)
                       for k, v in ep.extras.items()})
        if count and fields.keys() != parts.keys():
            name = sorted(fields.keys() ^ parts.keys())[0]
            raise DataError(source, f"{ep.name}/{name}", "present in some episodes but not in others",
                            f"compare with {shapes['observations'][1]}")
        for name, value in fields.items():
            shape, where = shapes.setdefault(name, (value.shape[1:], ep.name))
            if value.shape[1:] != shape:
                raise DataError(source, f"{ep.name}/{name}", f"shape per step {value.shape[1:]} differs from "
                                f"{shape} in {where}")
            _check_finite(source, f"{ep.name}/{name}", value)
            parts.setdefault(name, []).append(value)
        count += 1
    if count == 0:
        raise DataError(source, None, "holds no episodes")
    out = {k: np.concatenate(v) for k, v in parts.items()}
    # Values keep the source's dtype (float64 rewards stay float64 in the file), so they round
    # trip exactly; autodidact's loader casts what it computes with.
    return Dataset(observations=out.pop("observations"), terminals=out.pop("terminals"),
                   actions=out.pop("actions", None), rewards=out.pop("rewards", None), extras=out,
                   path=str(source))


def _observation_dtype(source, ep):
    """Autodidact reads float or uint8 observations: other numbers (discrete states) become float32."""
    obs = np.asarray(ep.observations)
    if obs.ndim == 1:
        obs = obs[:, None]
    if obs.dtype == np.uint8 or np.issubdtype(obs.dtype, np.floating):
        return obs
    if np.issubdtype(obs.dtype, np.number) or obs.dtype == bool:
        return obs.astype(np.float32)
    raise DataError(source, f"{ep.name}/observations", f"dtype {obs.dtype} is not numeric")


def _per_step(source, ep, name, value, n):
    """One row per state: a per-transition array (n - 1 rows) gets the filler row at the end."""
    value = np.asarray(value)
    if value.ndim == 0 or len(value) not in (n, n - 1):
        got = len(value) if value.ndim else 0
        raise DataError(source, f"{ep.name}/{name}", f"has {got} steps but the episode has {n} states",
                        f"expected {n} or {n - 1}")
    if len(value) == n:
        return value
    filler = value[-1:] if len(value) else np.zeros((1, *value.shape[1:]), value.dtype)
    return np.concatenate([value, filler])


def _scalars(source, ep, name, value):
    """[n] from [n] or [n, 1] (LeRobot stores rewards as one-element vectors)."""
    if value.size != len(value):
        raise DataError(source, f"{ep.name}/{name}", f"expected one value per step, got shape {value.shape}")
    return value.reshape(len(value))


def _check_finite(source, where, arr):
    if not np.issubdtype(arr.dtype, np.floating):
        return
    bad = np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))
    if len(bad):
        raise DataError(source, where, f"non-finite value (NaN or inf) at step {bad[0]}", "clean or drop it")
