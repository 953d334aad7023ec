"""Minari datasets (Farama Foundation, D4RL's successor), read through the `minari` package.

A Minari dataset is a directory `<MINARI_DATASETS_PATH>/<namespace>/<name>-v<N>/` whose `data/`
holds `metadata.json` and the episodes (HDF5 or Arrow). SOURCE is that directory or its `data/`.
Each Minari episode holds T + 1 observations and T actions, rewards, terminations and
truncations; every episode becomes one autodidact episode, so its boundaries are Minari's.

Dict observation spaces: `observation` is the state when present (gymnasium-robotics' goal-
conditioned envs: `observation`, `achieved_goal`, `desired_goal`; autodidact draws goals from the
states themselves). The other vector keys are kept as extra per-step fields under their own names.
`--obs-keys` picks others (several vector keys are concatenated in the order given); a nested
Dict's keys are joined with '/', e.g. `obs/joint`.
"""

from pathlib import Path

import numpy as np

from autodidact.core.errors import DataError
from autodidact.data.formats.episodes import Episode, assemble, choose_observations, require

METADATA = "metadata.json"


def looks_like(path):
    path = Path(path)
    return path.is_dir() and ((path / METADATA).is_file() or (path / "data" / METADATA).is_file())


def read(path, obs_keys=None, progress=False):
    path = Path(path)
    minari = require("minari", "minari")
    data_dir = path / "data" if (path / "data" / METADATA).is_file() else path
    try:
        dataset = minari.MinariDataset(data_dir)
    except Exception as exc:  # minari raises ValueError, KeyError, OSError, AssertionError by case
        raise DataError(data_dir / METADATA, None, f"not a readable Minari dataset ({_why(exc)})") from None
    return assemble(path, _episodes(path, dataset, obs_keys), total=len(dataset), progress=progress)


def _episodes(path, dataset, obs_keys):
    for pos, episode_id in enumerate(dataset.episode_indices):
        name = f"episode_{int(episode_id)}"
        try:
            ep = dataset[pos]
        except Exception as exc:  # a truncated HDF5/Arrow file fails in h5py or pyarrow
            raise DataError(path, name, f"unreadable ({_why(exc)})", "the dataset is corrupt or truncated") from None
        named = _flatten(ep.observations)
        obs, _, extras = choose_observations(path, f"{name}/observations/", named, obs_keys,
                                             preferred=("observation",))
        if isinstance(ep.actions, dict):
            raise DataError(path, f"{name}/actions", "Dict action spaces are not supported",
                            "autodidact needs one action vector per step")
        yield Episode(name=name, observations=obs, actions=np.asarray(ep.actions), rewards=ep.rewards,
                      terminated=ep.terminations, extras=extras)


def _flatten(obs, prefix=""):
    """{key: array} of a (possibly nested) Dict or Tuple observation; a Box gives {'observations': array}."""
    if isinstance(obs, tuple):
        obs = {str(i): v for i, v in enumerate(obs)}
    if not isinstance(obs, dict):
        return {prefix.rstrip("/") or "observations": np.asarray(obs)}
    out = {}
    for k, v in obs.items():
        out.update(_flatten(v, f"{prefix}{k}/"))
    return out


def _why(exc):
    return f"{exc.__class__.__name__}: {exc}".splitlines()[0]
