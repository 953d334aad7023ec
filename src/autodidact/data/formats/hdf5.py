"""robomimic and D4RL HDF5 files, read with h5py. The layout is recognized from the groups present.

robomimic (also MimicGen, RoboCasa, LIBERO): one group per demonstration,

    data/demo_N/obs/<key>       [T, ...] per-step observations (low-dim vectors, uint8 images)
    data/demo_N/next_obs/<key>  [T, ...] optional: the state after each step
    data/demo_N/actions         [T, A]
    data/demo_N/rewards, dones  [T] optional
    data/demo_N/states          [T, S] optional: simulator states, kept as the extra `states`

Demos are taken in numeric order (demo_2 before demo_10). Each becomes one episode of T states,
plus the last `next_obs` when present, so no transition is lost. Observations: every vector key of
`obs/` concatenated in sorted order (or the only image key); `--obs-keys` picks and orders them.

D4RL (and the many sets written like it): flat per-step datasets,

    observations [N, ...], actions [N, A], rewards [N], terminals [N], timeouts [N]
    next_observations [N, ...] optional; infos/qpos, infos/qvel kept as `qpos`, `qvel`

An episode ends where `terminals` or `timeouts` is 1, and at the last row. With
`next_observations`, each episode's final next state is appended, as above.
"""

import re
from pathlib import Path

import numpy as np

from autodidact.core.errors import DataError
from autodidact.data.formats.episodes import Episode, assemble, choose_observations, require

SUFFIXES = (".hdf5", ".h5", ".he5")
SIGNATURE = b"\x89HDF\r\n\x1a\n"


def looks_like(path):
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix.lower() in SUFFIXES:
        return True
    with open(path, "rb") as f:
        return f.read(len(SIGNATURE)) == SIGNATURE


def read(path, obs_keys=None, progress=False):
    path = Path(path)
    h5py = require("h5py", "hdf5")
    if not path.is_file():
        raise DataError(path, None, "file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(path, None, f"not a readable HDF5 file ({exc})", "the file is corrupt or truncated") from None
    with f:
        if "data" in f and isinstance(f["data"], h5py.Group):
            return assemble(path, _robomimic(path, f["data"], obs_keys), total=len(f["data"]), progress=progress)
        if "observations" in f:
            return assemble(path, _d4rl(path, f, obs_keys), progress=progress)
        raise DataError(path, None, f"neither robomimic (data/demo_N) nor D4RL (observations, actions, ...) "
                        f"layout; top-level keys: {', '.join(sorted(f.keys())) or 'none'}")


def _array(path, group, key):
    """Read one dataset whole, turning h5py's failures on a damaged file into a DataError."""
    name = f"{group.name.strip('/')}/{key}".strip("/")
    if key not in group:
        raise DataError(path, name, "missing")
    try:
        arr = group[key][()]
    except (OSError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(path, name, f"unreadable ({exc.__class__.__name__}: {exc})",
                        "the file is corrupt or truncated") from None
    arr = np.asarray(arr)
    if arr.ndim == 0 or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(path, name, f"expected a per-step numeric array, got shape {arr.shape} dtype {arr.dtype}")
    return arr


def _demo_number(name):
    m = re.search(r"(\d+)$", name)
    return (int(m.group(1)) if m else -1, name)


def _robomimic(path, data, obs_keys):
    demos = sorted(data.keys(), key=_demo_number)
    if not demos:
        raise DataError(path, "data", "holds no demonstrations")
    for demo in demos:
        group = data[demo]
        where = f"data/{demo}"
        if "obs" not in group:
            raise DataError(path, f"{where}/obs", "missing", "robomimic demos keep observations in obs/<key>")
        named = {k: _array(path, group["obs"], k) for k in group["obs"].keys()}
        obs, keys, extras = choose_observations(path, f"{where}/obs/", named, obs_keys)
        if "next_obs" in group:
            last = {k: _array(path, group["next_obs"], k)[-1:] for k in keys}
            nxt, _, _ = choose_observations(path, f"{where}/next_obs/", last, keys)
            obs = np.concatenate([obs, nxt.astype(obs.dtype, copy=False)])
        if "states" in group:
            extras["states"] = _array(path, group, "states")
        yield Episode(name=where, observations=obs,
                      actions=_array(path, group, "actions") if "actions" in group else None,
                      rewards=_array(path, group, "rewards") if "rewards" in group else None,
                      terminated=_array(path, group, "dones") if "dones" in group else None, extras=extras)


def _d4rl(path, f, obs_keys):
    obs, _, _ = choose_observations(path, "", {"observations": _array(path, f, "observations")}, obs_keys)
    n = len(obs)
    fields = {k: _array(path, f, k) for k in ("actions", "rewards", "terminals", "timeouts", "next_observations")
              if k in f}
    if "infos" in f:
        fields.update({k: _array(path, f["infos"], k) for k in ("qpos", "qvel") if k in f["infos"]})
    for k, v in fields.items():
        if len(v) != n:
            raise DataError(path, k, f"has {len(v)} rows but observations has {n}")
    ends = np.zeros(n, bool)
    for k in ("terminals", "timeouts"):
        if k in fields:
            ends |= fields[k].astype(bool).reshape(n)
    ends[-1] = True
    start = 0
    for end in np.flatnonzero(ends):
        rows = slice(start, end + 1)
        states = obs[rows]
        if "next_observations" in fields:
            states = np.concatenate([states, fields["next_observations"][end:end + 1].astype(obs.dtype, copy=False)])
        yield Episode(name=f"rows {start}-{end}", observations=states,
                      actions=fields["actions"][rows] if "actions" in fields else None,
                      rewards=fields["rewards"][rows] if "rewards" in fields else None,
                      terminated=fields["terminals"][rows] if "terminals" in fields else None,
                      extras={k: fields[k][rows] for k in ("qpos", "qvel") if k in fields})
        start = end + 1
