"""Datasets of reward-free episodes.

In memory a dataset is *compact*, as OGBench's `compact_dataset`: every observation of every
episode is stored once, episodes lie back to back, and `terminals[i]` is True on the last step of
each episode. The next observation of step i is `observations[i + 1]` whenever step i is not the
last of its episode, so `next_observations` is derived from the index instead of stored twice.

Files are `.npz` in any of OGBench's three layouts, detected from the fields present:

- ``ogbench`` (what OGBench's files hold and `ogbench.load_dataset` reads): observations, actions,
  terminals (1 on the last step of an episode), plus extras such as qpos/qvel/button_states.
- ``compact`` (what `load_dataset(compact_dataset=True)` returns): adds `valids`, 0 on the last
  step of an episode; its `terminals` are 1 on the last two steps.
- ``regular`` (what `load_dataset(compact_dataset=False)` returns): observations and
  next_observations per transition, terminals 1 on the last transition of an episode.

Actions are optional (action-free data is first class): a dataset without `actions` is valid, and
an optional boolean `action_mask` marks which steps carry an action label when only some do.
`autodidact label` writes a boolean `action_inferred` (kept as an extra) where a model supplied
the action (data/labels.py, docs/ACTIONFREE.md).
Rewards and masks are optional. Any other per-step field is kept as an extra.

Loading never unpickles (`allow_pickle=False`) and validates shapes, dtypes, finite values,
lengths and episode boundaries; every problem is one `DataError` line naming file, field and index.
Uncompressed `.npz` members are memory-mapped in place, so data larger than RAM can be used.
"""

import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autodidact.core.errors import DataError
from autodidact.core.io import atomic_savez

FORMAT_VERSION = 1
VERSION_KEY = "autodidact_format_version"
LAYOUTS = ("ogbench", "compact", "regular")
# Fields with a fixed meaning; every other per-step array is an extra (qpos, qvel, ...).
_CORE = {"observations", "next_observations", "actions", "terminals", "valids", "action_mask",
         "rewards", "masks", "timeouts", VERSION_KEY}


@dataclass
class Dataset:
    observations: np.ndarray            # [N, *obs_shape], every state once
    terminals: np.ndarray               # [N] bool, True on the last step of each episode
    actions: np.ndarray | None = None   # [N, action_dim] or None for action-free data
    action_mask: np.ndarray | None = None  # [N] bool: step has an action label (None: all do)
    rewards: np.ndarray | None = None   # [N] float, optional
    extras: dict = field(default_factory=dict)  # other per-step fields (qpos, qvel, ...)
    path: str = "<memory>"

    def __post_init__(self):
        self.terminals = np.asarray(self.terminals, dtype=bool)
        self.episode_ends = np.flatnonzero(self.terminals)
        self.episode_starts = np.concatenate([[0], self.episode_ends[:-1] + 1])
        # Each step's episode end, looked up by index: a gather is 5-10x faster per batch than a
        # binary search over the episode ends (8 bytes per step).
        self._end_of_step = np.repeat(self.episode_ends, self.episode_ends - self.episode_starts + 1)
        # A step starts a transition when it is not the last of its episode.
        self.valid_idxs = np.flatnonzero(~self.terminals)
        labeled = ~self.terminals if self.action_mask is None else (~self.terminals & self.action_mask)
        self.labeled_idxs = np.flatnonzero(labeled) if self.actions is not None else np.zeros(0, np.int64)

    # ---------------------------------------------------------------- shape facts
    def __len__(self):
        return len(self.observations)

    @property
    def num_episodes(self):
        return len(self.episode_ends)

    @property
    def num_transitions(self):
        return len(self.valid_idxs)

    @property
    def obs_shape(self):
        return tuple(self.observations.shape[1:])

    @property
    def action_dim(self):
        return None if self.actions is None else int(self.actions.shape[1])

    @property
    def episode_lengths(self):
        """Observations per episode (transitions per episode + 1)."""
        return self.episode_ends - self.episode_starts + 1

    def episode_end_of(self, idxs):
        """Index of the last step of the episode each index belongs to (vectorized)."""
        return np.take(self._end_of_step, idxs)

    def episode_start_of(self, idxs):
        """Index of the first step of the episode each index belongs to (vectorized)."""
        if not hasattr(self, "_start_of_step"):
            self._start_of_step = np.repeat(self.episode_starts, self.episode_lengths)
        return np.take(self._start_of_step, idxs)

    def next_observations(self, idxs):
        return self.observations[np.asarray(idxs) + 1]

    # ---------------------------------------------------------------- I/O
    @classmethod
    def load(cls, path, mmap=True):
        return load(path, mmap=mmap)

    def save(self, path, layout="ogbench", compressed=True):
        save(self, path, layout=layout, compressed=compressed)


# ==================================================================== reading
def _open_npz(path, mmap):
    """Return {name: array} of an .npz without ever unpickling. Stored (uncompressed) members are
    memory-mapped when `mmap`; compressed ones are read into memory."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, "file not found")
    if path.is_dir():
        raise DataError(path, None, "is a directory, expected an .npz file")
    if path.stat().st_size == 0:
        raise DataError(path, None, "file is empty")
    try:
        zf = zipfile.ZipFile(path)
    except NotImplementedError as exc:  # a zip feature zipfile lacks, e.g. a corrupt version field
        raise DataError(path, None, f"unsupported or corrupt zip archive ({exc})") from None
    except zipfile.BadZipFile:
        raise DataError(path, None, "not an .npz file (not a zip archive) or truncated",
                        "re-export it with numpy.savez") from None
    except OSError as exc:
        raise DataError(path, None, f"cannot read: {exc.strerror or exc}") from None
    arrays = {}
    with zf:
        for info in zf.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            arrays[name] = _read_member(path, zf, info, name, mmap)
    if not arrays:
        raise DataError(path, None, "archive holds no arrays")
    return arrays


def _read_member(path, zf, info, name, mmap):
    try:
        if mmap and info.compress_type == zipfile.ZIP_STORED:
            return _memmap_member(path, zf, info)
        # Check the header's declared size against the member's real size before reading:
        # read_array would otherwise try to allocate whatever a corrupt header claims.
        with zf.open(info) as f:
            shape, _, dtype, header_len = _read_npy_header(f)
        if not dtype.hasobject and _nbytes(shape, dtype) != info.file_size - header_len:
            raise EOFError("declared size does not match the stored member")
        with zf.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise DataError(path, name, "holds Python objects (object array); refusing to unpickle",
                            "store plain numeric arrays") from None
        raise DataError(path, name, f"unreadable array ({exc})") from None
    # zlib.error: a corrupt deflated member fails in the decompressor before any CRC check.
    # NotImplementedError: a zip member asking for a compression method zipfile lacks.
    except (zipfile.BadZipFile, EOFError, OSError, RuntimeError, zlib.error, NotImplementedError,
            OverflowError) as exc:
        raise DataError(path, name, f"corrupt or truncated member ({exc.__class__.__name__}: {exc})") from None
    except MemoryError:
        raise DataError(path, name, "too large to read into memory",
                        "store it uncompressed (numpy.savez) so it can be memory-mapped") from None


def _read_npy_header(f):
    """(shape, fortran_order, dtype, header length) of the .npy stream `f`, which is left after the header."""
    version = np.lib.format.read_magic(f)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read_header(f)
    return shape, fortran, dtype, f.tell()


def _nbytes(shape, dtype):
    # Python ints: a corrupt header may declare dimensions whose product overflows int64.
    n = dtype.itemsize
    for d in shape:
        n *= int(d)
    return n


def _memmap_member(path, zf, info):
    """Memory-map a stored .npy member: the bytes sit uncompressed at a known offset."""
    with zf.open(info) as f:
        shape, fortran, dtype, header_len = _read_npy_header(f)
    if dtype.hasobject:
        raise ValueError("object arrays cannot be loaded when allow_pickle=False")
    # Local file header: 30 bytes + name + extra field, then the member's data.
    with open(path, "rb") as raw:
        raw.seek(info.header_offset)
        local = raw.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile("bad local header")
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
    offset = info.header_offset + 30 + name_len + extra_len + header_len
    nbytes = _nbytes(shape, dtype)
    if offset + nbytes > Path(path).stat().st_size or nbytes != info.file_size - header_len:
        raise EOFError("declared size exceeds the file")
    if nbytes == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                     order="F" if fortran else "C")


def detect_layout(fields):
    if "next_observations" in fields:
        return "regular"
    if "valids" in fields:
        return "compact"
    return "ogbench"


def load(path, mmap=True) -> Dataset:
    """Load and validate a dataset file in any of OGBench's layouts."""
    path = Path(path)
    fields = _open_npz(path, mmap)
    version = fields.pop(VERSION_KEY, None)
    if version is not None:
        if version.shape != () or not np.issubdtype(version.dtype, np.integer):
            raise DataError(path, VERSION_KEY, "must be an integer scalar")
        if int(version) > FORMAT_VERSION:
            raise DataError(path, VERSION_KEY, f"format version {int(version)} is newer than this "
                            f"autodidact reads ({FORMAT_VERSION})", "upgrade autodidact")
    layout = detect_layout(fields)
    _check_fields(path, fields, layout)
    # Finite-value checks run on the file's own rows, before any layout conversion: the index in
    # the message is then a row of the file, and in a regular-layout file a NaN is reported as a
    # NaN instead of as "next_observations[i] != observations[i + 1]".
    raw_mask = fields.get("action_mask")
    if "actions" in fields:
        _check_finite(path, "actions", fields["actions"],
                      None if raw_mask is None else np.asarray(raw_mask).astype(bool))
    for k in ("rewards", "observations", "next_observations"):
        if k in fields:
            _check_finite(path, k, fields[k])
    if layout == "regular":
        fields = _regular_to_compact(path, fields)
    elif layout == "compact":
        fields = dict(fields)
        # Compact terminals mark the last two steps; the real episode end is where valids == 0.
        fields["terminals"] = ~np.asarray(fields.pop("valids")).astype(bool)
    terminals = np.asarray(fields.pop("terminals")).astype(bool)
    obs = fields.pop("observations")
    actions = fields.pop("actions", None)
    action_mask = fields.pop("action_mask", None)
    rewards = fields.pop("rewards", None)
    for k in ("masks", "timeouts"):
        fields.pop(k, None)  # derived from goals / terminals; not needed in memory
    if action_mask is not None:
        action_mask = np.asarray(action_mask).astype(bool)
        if actions is None:
            raise DataError(path, "action_mask", "present but there is no 'actions' field")
    if rewards is not None:
        rewards = np.asarray(rewards, dtype=np.float32)
    if not terminals[-1]:
        raise DataError(path, "terminals", f"the last step (index {len(terminals) - 1}) does not end an "
                        "episode", "set terminals[-1] = 1")
    return Dataset(observations=obs, terminals=terminals, actions=actions, action_mask=action_mask,
                   rewards=rewards, extras=fields, path=str(path))


def _check_fields(path, fields, layout):
    if "observations" not in fields:
        raise DataError(path, "observations", "missing", f"fields present: {sorted(fields)}")
    obs = fields["observations"]
    if obs.ndim < 2:
        raise DataError(path, "observations", f"expected shape [steps, ...], got {obs.shape}")
    if len(obs) == 0:
        raise DataError(path, "observations", "holds no steps")
    if not (np.issubdtype(obs.dtype, np.floating) or obs.dtype == np.uint8):
        raise DataError(path, "observations", f"dtype {obs.dtype} is not float or uint8")
    n = len(obs)
    required = {"ogbench": ["terminals"], "compact": ["valids"], "regular": ["terminals", "next_observations"]}
    for k in required[layout]:
        if k not in fields:
            raise DataError(path, k, "missing", f"a {layout}-layout file needs it")
    for k, v in fields.items():
        if k in (VERSION_KEY,):
            continue
        if v.ndim == 0 or len(v) != n:
            raise DataError(path, k, f"has {len(v) if v.ndim else 0} steps but observations has {n}")
        if not (np.issubdtype(v.dtype, np.number) or v.dtype == bool):
            raise DataError(path, k, f"dtype {v.dtype} is not numeric")
    for k in ("terminals", "valids", "rewards", "masks", "action_mask", "timeouts"):
        if k in fields and fields[k].ndim != 1:
            raise DataError(path, k, f"expected shape [{n}], got {fields[k].shape}")
    for k in ("terminals", "valids", "action_mask"):
        if k in fields:
            v = np.asarray(fields[k])
            bad = np.flatnonzero((v != 0) & (v != 1))
            if len(bad):
                raise DataError(path, k, f"value {v[bad[0]]} at index {bad[0]} is not 0/1")
    if "actions" in fields:
        a = fields["actions"]
        if a.ndim != 2:
            raise DataError(path, "actions", f"expected shape [{n}, action_dim], got {a.shape}")
        if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
            raise DataError(path, "actions", f"dtype {a.dtype} is not numeric")
    if "next_observations" in fields and fields["next_observations"].shape != obs.shape:
        raise DataError(path, "next_observations", f"shape {fields['next_observations'].shape} != "
                        f"observations shape {obs.shape}")


def _check_finite(path, name, arr, mask=None, chunk=1 << 20):
    """Find the first non-finite row, chunked so memory-mapped data is scanned, not copied."""
    if arr.dtype == np.uint8 or np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool:
        return
    flat = arr.reshape(len(arr), -1)
    for s in range(0, len(arr), chunk):
        rows = np.isfinite(flat[s:s + chunk]).all(axis=1)
        if mask is not None:
            rows |= ~mask[s:s + chunk]
        bad = np.flatnonzero(~rows)
        if len(bad):
            raise DataError(path, name, f"non-finite value (NaN or inf) at index {s + bad[0]}",
                            "clean or drop those steps")


def _regular_to_compact(path, fields):
    """Rebuild every state once from a (s, a, s') layout: append each episode's final s'."""
    obs, nxt = fields["observations"], fields["next_observations"]
    term = np.asarray(fields["terminals"]).astype(bool)
    if not term[-1]:
        raise DataError(path, "terminals", f"the last transition (index {len(term) - 1}) does not end an "
                        "episode", "set terminals[-1] = 1")
    # Within an episode, s' of step i must be s of step i + 1; anything else is not a trajectory.
    inner = np.flatnonzero(~term[:-1])
    same = np.isclose(nxt[inner], obs[inner + 1], equal_nan=False).reshape(len(inner), -1).all(axis=1) \
        if len(inner) else np.ones(0, bool)
    if not same.all():
        i = inner[np.argmin(same)]
        raise DataError(path, "next_observations", f"next_observations[{i}] != observations[{i + 1}] inside "
                        "an episode", "mark episode ends in 'terminals'")
    ends = np.flatnonzero(term)
    out = {"observations": np.insert(np.asarray(obs), ends + 1, np.asarray(nxt)[ends], axis=0)}
    new_term = np.zeros(len(out["observations"]), dtype=bool)
    new_term[ends + np.arange(1, len(ends) + 1)] = True
    out["terminals"] = new_term
    for k, v in fields.items():
        if k in ("observations", "next_observations", "terminals", "masks", "timeouts"):
            continue
        v = np.asarray(v)
        # The appended final state has no action of its own; repeat the previous row as filler.
        # It is the last step of its episode, so it is never sampled as a transition.
        out[k] = np.insert(v, ends + 1, v[ends], axis=0)
    return out


# ==================================================================== writing
def save(ds: Dataset, path, layout="ogbench", compressed=True):
    """Write `ds` atomically in one of OGBench's layouts (see module docstring)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    obs, term = np.asarray(ds.observations), ds.terminals
    per_step = {}
    if ds.actions is not None:
        per_step["actions"] = np.asarray(ds.actions)
        if ds.action_mask is not None and not ds.action_mask[~term].all():
            per_step["action_mask"] = ds.action_mask
    if ds.rewards is not None:
        per_step["rewards"] = ds.rewards
    per_step.update({k: np.asarray(v) for k, v in ds.extras.items()})
    if layout == "ogbench":
        out = {"observations": obs, "terminals": term, **per_step}
    elif layout == "compact":
        valids = ~term
        # OGBench's compact terminals mark the last two steps of each episode.
        out = {"observations": obs, "terminals": term | np.append(term[1:], True), "valids": valids,
               **per_step}
        out["terminals"] = out["terminals"].astype(np.float32)
        out["valids"] = out["valids"].astype(np.float32)
    else:
        keep = ~term
        out = {"observations": obs[keep], "next_observations": obs[1:][keep[:-1]],
               "terminals": np.append(term[1:], True)[keep]}
        out.update({k: v[keep] for k, v in per_step.items()})
    save_ogbench_npz(path, out, compressed=compressed)


def save_ogbench_npz(path, arrays, compressed=True):
    """Write per-step `arrays` plus the format-version field atomically (temp file + rename).

    `arrays` holds fields of equal length: observations, actions (optional), terminals (1 on the
    last step of each episode) and any extras (qpos, qvel, button_states, rewards...).
    """
    atomic_savez(path, ogbench_npz_arrays(arrays), compressed=compressed)


def ogbench_npz_arrays(arrays):
    """The arrays `save_ogbench_npz` writes: terminals as bool (unless float compact), plus version."""
    out = {k: np.asarray(v) for k, v in arrays.items()}
    if out["terminals"].dtype != np.float32:
        out["terminals"] = out["terminals"].astype(bool)
    out[VERSION_KEY] = np.array(FORMAT_VERSION, dtype=np.int64)
    return out
