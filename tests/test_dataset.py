"""Dataset files: round trips in OGBench's three layouts, interop with `ogbench.load_dataset`,
memory mapping, and one-line `DataError`s (naming file, field and index) for every bad input."""

import io
import os
import zipfile

import numpy as np
import pytest
from ogbench.utils import load_dataset as ogbench_load_dataset

from autodidact.data.dataset import FORMAT_VERSION, LAYOUTS, VERSION_KEY, Dataset, load
from autodidact.core.errors import DataError, UserError

EP_LENS = (5, 7, 4)  # observations per episode


def _terminals(lens=EP_LENS):
    t = np.zeros(sum(lens), bool)
    t[np.cumsum(lens) - 1] = True
    return t


def _raw(lens=EP_LENS, seed=0, obs_dim=3, act_dim=2):
    """Fields as an OGBench file holds them: every state once, terminals 1 on each episode's last step."""
    rng = np.random.default_rng(seed)
    n = sum(lens)
    return {
        "observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        "terminals": _terminals(lens),
        "qpos": rng.normal(size=(n, 2)).astype(np.float32),
    }


def _dataset(**kw):
    raw = _raw(**kw)
    rng = np.random.default_rng(1)
    return Dataset(observations=raw["observations"], terminals=raw["terminals"], actions=raw["actions"],
                   rewards=rng.normal(size=len(raw["terminals"])).astype(np.float32),
                   extras={"qpos": raw["qpos"]})


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def _error(path, *, field=None, contains=(), mmap=True):
    with pytest.raises(DataError) as ei:
        load(path, mmap=mmap)
    msg = str(ei.value)
    assert str(path) in msg, msg
    assert "\n" not in msg, msg
    if field is not None:
        assert f"'{field}'" in msg, msg
        assert ei.value.field == field
    for c in contains:
        assert c in msg, msg
    return msg


# ==================================================================== round trips
@pytest.mark.parametrize("compressed", [True, False], ids=["compressed", "stored"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_round_trip(tmp_path, layout, compressed):
    ds = _dataset()
    path = tmp_path / f"d-{layout}.npz"
    ds.save(path, layout=layout, compressed=compressed)
    got = load(path)
    term = ds.terminals
    np.testing.assert_array_equal(got.observations, ds.observations)
    np.testing.assert_array_equal(got.terminals, term)
    assert got.terminals.dtype == bool
    # Actions (and per-step extras) of a final step have no transition; regular files don't store them.
    np.testing.assert_array_equal(got.actions[~term], ds.actions[~term])
    np.testing.assert_array_equal(got.rewards[~term], ds.rewards[~term])
    assert sorted(got.extras) == ["qpos"]
    np.testing.assert_array_equal(got.extras["qpos"][~term], ds.extras["qpos"][~term])
    if layout != "regular":
        np.testing.assert_array_equal(got.actions, ds.actions)
        np.testing.assert_array_equal(got.extras["qpos"], ds.extras["qpos"])
    assert got.num_episodes == 3 and got.num_transitions == sum(EP_LENS) - 3
    np.testing.assert_array_equal(got.episode_lengths, EP_LENS)
    np.testing.assert_array_equal(got.valid_idxs, np.flatnonzero(~term))
    np.testing.assert_array_equal(got.next_observations(got.valid_idxs), ds.observations[got.valid_idxs + 1])
    assert got.path == str(path)
    # The file carries the format version.
    with np.load(path) as f:
        assert int(f[VERSION_KEY]) == FORMAT_VERSION


@pytest.mark.parametrize("layout", ["ogbench", "compact"])
def test_uncompressed_is_memory_mapped(tmp_path, layout):
    path = tmp_path / "d.npz"
    _dataset().save(path, layout=layout, compressed=False)
    got = load(path)
    assert isinstance(got.observations, np.memmap)
    assert isinstance(got.actions, np.memmap)
    assert isinstance(got.extras["qpos"], np.memmap)
    assert not got.observations.flags.writeable
    # mmap=False reads into memory instead.
    assert not isinstance(load(path, mmap=False).observations, np.memmap)
    # Compressed members cannot be mapped.
    _dataset().save(tmp_path / "c.npz", layout=layout, compressed=True)
    assert not isinstance(load(tmp_path / "c.npz").observations, np.memmap)


def test_memmap_fortran_order_and_uint8(tmp_path):
    raw = _raw()
    obs = np.asfortranarray((np.arange(sum(EP_LENS) * 4).reshape(-1, 4) % 251).astype(np.uint8))
    path = _write(tmp_path / "f.npz", observations=obs, terminals=raw["terminals"],
                  actions=np.asfortranarray(raw["actions"]))
    got = load(path)
    assert isinstance(got.observations, np.memmap)
    np.testing.assert_array_equal(got.observations, obs)
    np.testing.assert_array_equal(got.actions, raw["actions"])


# ==================================================================== interop with ogbench
@pytest.mark.parametrize("compressed", [True, False], ids=["compressed", "stored"])
def test_autodidact_file_loads_in_ogbench(tmp_path, compressed):
    ds = _dataset()
    path = tmp_path / "d.npz"
    ds.save(path, layout="ogbench", compressed=compressed)
    n, e = len(ds), ds.num_episodes
    term = ds.terminals

    reg = ogbench_load_dataset(str(path), compact_dataset=False, add_info=True)
    assert reg["observations"].shape == (n - e, 3)
    assert reg["next_observations"].shape == (n - e, 3)
    assert reg["actions"].shape == (n - e, 2)
    assert reg["terminals"].shape == (n - e,)
    assert reg["qpos"].shape == (n - e, 2)
    np.testing.assert_array_equal(reg["observations"], ds.observations[~term])
    np.testing.assert_array_equal(reg["next_observations"], ds.observations[1:][~term[:-1]])
    np.testing.assert_array_equal(reg["actions"], ds.actions[~term])
    np.testing.assert_array_equal(np.flatnonzero(reg["terminals"]), np.cumsum(np.array(EP_LENS) - 1) - 1)

    com = ogbench_load_dataset(str(path), compact_dataset=True)
    assert com["observations"].shape == (n, 3)
    assert com["actions"].shape == (n, 2)
    assert com["terminals"].shape == com["valids"].shape == (n,)
    np.testing.assert_array_equal(com["observations"], ds.observations)
    np.testing.assert_array_equal(com["valids"], (~term).astype(np.float32))


@pytest.mark.parametrize("layout", ["regular", "compact"])
def test_autodidact_layout_files_match_ogbench_outputs(tmp_path, layout):
    """Saving in 'regular'/'compact' writes what ogbench.load_dataset returns for the raw file."""
    ds = _dataset()
    ds.save(tmp_path / "raw.npz", layout="ogbench")
    want = ogbench_load_dataset(str(tmp_path / "raw.npz"), compact_dataset=(layout == "compact"), add_info=True)
    ds.save(tmp_path / "mine.npz", layout=layout)
    with np.load(tmp_path / "mine.npz") as f:
        for k, v in want.items():
            np.testing.assert_array_equal(f[k], v, err_msg=k)


@pytest.mark.parametrize("compressed", [True, False], ids=["compressed", "stored"])
@pytest.mark.parametrize("compact", [False, True], ids=["regular", "compact"])
def test_ogbench_outputs_load(tmp_path, compact, compressed):
    raw = _raw()
    _write(tmp_path / "raw.npz", **raw)  # as OGBench's released files: plain np.savez, no version field
    out = ogbench_load_dataset(str(tmp_path / "raw.npz"), compact_dataset=compact, add_info=True)
    path = tmp_path / "out.npz"
    (np.savez_compressed if compressed else np.savez)(path, **out)
    got = load(path)
    term = raw["terminals"]
    np.testing.assert_array_equal(got.observations, raw["observations"])
    np.testing.assert_array_equal(got.terminals, term)
    np.testing.assert_array_equal(got.actions[~term], raw["actions"][~term])
    np.testing.assert_array_equal(got.extras["qpos"][~term], raw["qpos"][~term])
    if compact:
        np.testing.assert_array_equal(got.actions, raw["actions"])
        assert "valids" not in got.extras
    assert sorted(got.extras) == ["qpos"]
    assert got.num_episodes == len(EP_LENS)
    # The raw file itself loads too.
    raw_ds = load(tmp_path / "raw.npz")
    np.testing.assert_array_equal(raw_ds.observations, raw["observations"])
    np.testing.assert_array_equal(raw_ds.actions, raw["actions"])


# ==================================================================== optional fields
@pytest.mark.parametrize("layout", LAYOUTS)
def test_action_free(tmp_path, layout):
    raw = _raw()
    path = _write(tmp_path / "raw.npz", observations=raw["observations"], terminals=raw["terminals"])
    ds = load(path)
    assert ds.actions is None and ds.action_dim is None
    assert len(ds.labeled_idxs) == 0
    assert ds.num_transitions == sum(EP_LENS) - len(EP_LENS)
    ds.save(tmp_path / f"{layout}.npz", layout=layout)
    got = load(tmp_path / f"{layout}.npz")
    assert got.actions is None
    np.testing.assert_array_equal(got.observations, raw["observations"])
    np.testing.assert_array_equal(got.terminals, raw["terminals"])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_action_mask_partially_labeled(tmp_path, layout):
    raw = _raw()
    term = raw["terminals"]
    mask = np.ones(len(term), bool)
    mask[[1, 2, 6, 9]] = False
    actions = raw["actions"].copy()
    actions[~mask] = np.nan  # unlabeled steps may hold anything, NaN included
    ds = Dataset(observations=raw["observations"], terminals=term, actions=actions, action_mask=mask)
    np.testing.assert_array_equal(ds.labeled_idxs, np.flatnonzero(mask & ~term))
    path = tmp_path / "m.npz"
    ds.save(path, layout=layout)
    got = load(path)
    np.testing.assert_array_equal(got.action_mask[~term], mask[~term])
    np.testing.assert_array_equal(got.labeled_idxs, np.flatnonzero(mask & ~term))
    np.testing.assert_array_equal(got.actions[got.labeled_idxs], raw["actions"][got.labeled_idxs])


def test_action_mask_all_labeled_is_not_written(tmp_path):
    raw = _raw()
    ds = Dataset(observations=raw["observations"], terminals=raw["terminals"], actions=raw["actions"],
                 action_mask=np.ones(len(raw["terminals"]), bool))
    ds.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        assert "action_mask" not in f.files


def test_action_mask_without_actions(tmp_path):
    raw = _raw()
    path = _write(tmp_path / "m.npz", observations=raw["observations"], terminals=raw["terminals"],
                  action_mask=np.ones(len(raw["terminals"]), bool))
    _error(path, field="action_mask")


def test_nan_action_on_labeled_step_is_an_error(tmp_path):
    raw = _raw()
    mask = np.ones(len(raw["terminals"]), bool)
    mask[2] = False
    raw["actions"][2] = np.nan  # unlabeled: fine
    raw["actions"][8] = np.nan  # labeled: not fine
    path = _write(tmp_path / "m.npz", action_mask=mask, **raw)
    _error(path, field="actions", contains=("index 8",))


# ==================================================================== version
def test_newer_version_is_rejected(tmp_path):
    raw = _raw()
    path = _write(tmp_path / "v.npz", **raw, **{VERSION_KEY: np.array(FORMAT_VERSION + 1)})
    _error(path, field=VERSION_KEY, contains=(str(FORMAT_VERSION + 1),))


def test_current_version_and_bad_version(tmp_path):
    raw = _raw()
    load(_write(tmp_path / "ok.npz", **raw, **{VERSION_KEY: np.array(FORMAT_VERSION)}))
    _error(_write(tmp_path / "bad.npz", **raw, **{VERSION_KEY: np.array([1, 2])}), field=VERSION_KEY)
    _error(_write(tmp_path / "flt.npz", **raw, **{VERSION_KEY: np.array(1.5)}), field=VERSION_KEY)


# ==================================================================== unreadable files
def test_missing_file_and_directory(tmp_path):
    _error(tmp_path / "nope.npz", contains=("not found",))
    _error(tmp_path, contains=("directory",))


def test_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    _error(path, contains=("empty",))


def test_not_a_zip(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"this is not a numpy archive\n" * 20)
    _error(path, contains=("not an .npz",))


@pytest.mark.parametrize("compressed", [True, False], ids=["compressed", "stored"])
def test_truncated_file(tmp_path, compressed):
    full = tmp_path / "full.npz"
    _dataset(lens=(50, 60)).save(full, compressed=compressed)
    data = full.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 40):
        path = tmp_path / f"cut{cut}.npz"
        path.write_bytes(data[:cut])
        _error(path)
        _error(path, mmap=False)


def test_empty_archive(tmp_path):
    path = tmp_path / "noarrays.npz"
    with zipfile.ZipFile(path, "w"):
        pass
    _error(path, contains=("no arrays",))


def test_corrupt_compressed_member(tmp_path):
    """Flipped bytes inside a deflated member: a one-line DataError naming the member, whether
    zlib notices (zlib.error) or only the CRC check does (BadZipFile)."""
    obs = np.random.default_rng(0).random((1000, 8)).astype(np.float32)
    good = tmp_path / "good.npz"
    np.savez_compressed(good, observations=obs, terminals=_terminals((400, 600)))
    info = zipfile.ZipFile(good).getinfo("observations.npy")
    data0 = good.read_bytes()
    seen = set()
    for k, skip in enumerate((20, 60, 100, 200, 500, 2000)):
        data = bytearray(data0)
        start = info.header_offset + 30 + len(info.filename) + skip
        for i in range(start, start + 300):
            data[i] ^= 0x55
        path = tmp_path / f"bad{k}.npz"
        path.write_bytes(bytes(data))
        try:
            with zipfile.ZipFile(path) as zf:
                zf.read("observations.npy")
        except Exception as exc:  # what the raw reader trips on
            seen.add(type(exc).__name__)
        _error(path, field="observations")
        _error(path, field="observations", mmap=False)
    assert "error" in seen, seen  # zlib.error was exercised


def test_corrupt_stored_header(tmp_path):
    raw = _raw()
    path = tmp_path / "hdr.npz"
    np.savez(path, **raw)
    data = path.read_bytes()
    i = data.index(b"\x93NUMPY")  # first member's magic
    path.write_bytes(data[:i] + b"\x93NOPE!" + data[i + 6:])
    _error(path)
    _error(path, mmap=False)


class _Marker:
    """Unpickling this calls os.makedirs(marker): evidence that something was unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker, 0o777, True))


@pytest.mark.parametrize("field", ["observations", "terminals", "qpos"])
@pytest.mark.parametrize("compressed", [True, False], ids=["compressed", "stored"])
@pytest.mark.parametrize("mmap", [True, False], ids=["mmap", "read"])
def test_object_array_is_never_unpickled(tmp_path, field, compressed, mmap):
    raw = _raw()
    marker = tmp_path / "UNPICKLED"
    objs = np.empty(len(raw["terminals"]), dtype=object)
    for i in range(len(objs)):
        objs[i] = _Marker(marker)
    raw[field] = objs
    path = tmp_path / "obj.npz"
    (np.savez_compressed if compressed else np.savez)(path, **raw)  # allow_pickle defaults to True
    _error(path, field=field, contains=("object",), mmap=mmap)
    assert not marker.exists()
    # The file really would run code when unpickled: the check above is not vacuous.
    with np.load(path, allow_pickle=True) as f:
        f[field]
    assert marker.exists()


def test_declared_size_larger_than_member(tmp_path):
    """A stored member whose .npy header claims more rows than the bytes present."""
    raw = _raw(lens=(1000,))  # members larger than zipfile's read-ahead: the CRC is never reached
    path = tmp_path / "big.npz"
    np.savez(path, **raw)
    data = path.read_bytes()
    old = b"'shape': (1000, 3)"
    assert data.count(old) == 1
    path.write_bytes(data.replace(old, b"'shape': (1001, 3)"))  # same header length
    _error(path, field="observations", contains=("declared size",))
    _error(path, field="observations", mmap=False)
    huge = b"'shape':(999999,3)"
    assert len(huge) == len(old)
    path.write_bytes(data.replace(old, huge))
    _error(path, field="observations")
    _error(path, field="observations", mmap=False)


def _npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


@pytest.mark.parametrize("shape", [b"(99, 3)", b"(999999999999, 3)", b"(-5, 3)", b"(3, 10)"])
@pytest.mark.parametrize("compress", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"])
@pytest.mark.parametrize("mmap", [True, False], ids=["mmap", "read"])
def test_header_claims_wrong_size(tmp_path, shape, compress, mmap):
    """A header claiming terabytes must not make the reader try to allocate them (MemoryError)."""
    raw = _raw(lens=(10,))
    member = _npy(raw["observations"])
    assert member.count(b"(10, 3)") == 1
    path = tmp_path / "h.npz"
    with zipfile.ZipFile(path, "w", compress) as zf:
        zf.writestr("observations.npy", member.replace(b"(10, 3)", shape))
        zf.writestr("terminals.npy", _npy(raw["terminals"]))
    if shape == b"(3, 10)":  # same byte count, other shape: readable, caught by the length check
        _error(path, field="terminals", mmap=mmap)
    else:
        _error(path, field="observations", contains=("declared size",), mmap=mmap)


# ==================================================================== validation
def test_nonfinite_observations(tmp_path):
    for bad, mmap in ((np.nan, True), (np.inf, False), (-np.inf, True)):
        raw = _raw()
        raw["observations"][9, 1] = bad
        _error(_write(tmp_path / "o.npz", **raw), field="observations", contains=("index 9",), mmap=mmap)
        np.savez_compressed(tmp_path / "oc.npz", **raw)
        _error(tmp_path / "oc.npz", field="observations", contains=("index 9",), mmap=mmap)


def test_nonfinite_actions(tmp_path):
    for bad in (np.nan, np.inf):
        raw = _raw()
        raw["actions"][6, 0] = bad
        _error(_write(tmp_path / "a.npz", **raw), field="actions", contains=("index 6",))


def test_nonfinite_rewards(tmp_path):
    raw = _raw()
    rewards = np.zeros(len(raw["terminals"]), np.float32)
    rewards[3] = np.nan
    _error(_write(tmp_path / "r.npz", rewards=rewards, **raw), field="rewards", contains=("index 3",))


@pytest.mark.parametrize("layout", ["compact", "regular"])
def test_nonfinite_in_other_layouts_names_file_row(tmp_path, layout):
    """The index in the message is the row of the file, not of the rebuilt in-memory array."""
    ds = _dataset()
    ds.save(tmp_path / "ok.npz", layout=layout)
    with np.load(tmp_path / "ok.npz") as f:
        fields = {k: f[k].copy() for k in f.files}
    fields["observations"][7, 0] = np.nan
    if layout == "regular":
        fields["next_observations"][6, 0] = np.nan  # consistent: s'[6] is s[7]
    _error(_write(tmp_path / "bad.npz", **fields), field="observations", contains=("index 7",))
    fields = {k: v.copy() for k, v in fields.items()}
    fields["observations"][7, 0] = 0.0
    if layout == "regular":
        fields["next_observations"][6, 0] = 0.0
    fields["actions"][8, 1] = np.inf
    _error(_write(tmp_path / "bad2.npz", **fields), field="actions", contains=("index 8",))


def test_length_mismatch(tmp_path):
    raw = _raw()
    raw["actions"] = raw["actions"][:-1]
    _error(_write(tmp_path / "a.npz", **raw), field="actions", contains=("steps",))
    raw = _raw()
    raw["qpos"] = raw["qpos"][:5]
    _error(_write(tmp_path / "q.npz", **raw), field="qpos")
    raw = _raw()
    raw["terminals"] = np.append(raw["terminals"], True)
    _error(_write(tmp_path / "t.npz", **raw), field="terminals")


def test_missing_fields(tmp_path):
    raw = _raw()
    del raw["observations"]
    _error(_write(tmp_path / "o.npz", **raw), field="observations", contains=("missing",))
    raw = _raw()
    del raw["terminals"]
    _error(_write(tmp_path / "t.npz", **raw), field="terminals", contains=("missing",))
    raw = _raw()
    nxt = raw["observations"][1:]
    raw = {k: v[:-1] for k, v in raw.items() if k != "terminals"}
    _error(_write(tmp_path / "r.npz", next_observations=nxt, **raw), field="terminals", contains=("missing",))


def test_terminals_must_end_an_episode(tmp_path):
    raw = _raw()
    raw["terminals"][-1] = False
    _error(_write(tmp_path / "t.npz", **raw), field="terminals", contains=(f"index {sum(EP_LENS) - 1}",))
    # Also in the compact (valids) and regular layouts.
    ds = _dataset()
    for layout in ("compact", "regular"):
        ds.save(tmp_path / f"{layout}.npz", layout=layout)
        with np.load(tmp_path / f"{layout}.npz") as f:
            fields = {k: f[k].copy() for k in f.files}
        if layout == "compact":
            fields["valids"][-1] = 1.0
        else:
            fields["terminals"][-1] = 0.0
        _error(_write(tmp_path / f"{layout}-bad.npz", **fields), field="terminals")


def test_terminals_value_two(tmp_path):
    raw = _raw()
    raw["terminals"] = raw["terminals"].astype(np.float32)
    raw["terminals"][3] = 2.0
    _error(_write(tmp_path / "t.npz", **raw), field="terminals", contains=("index 3", "0/1"))
    raw = _raw()
    raw["terminals"] = raw["terminals"].astype(np.int64)
    raw["terminals"][2] = -1
    _error(_write(tmp_path / "t2.npz", **raw), field="terminals", contains=("index 2",))


@pytest.mark.parametrize("shape", [(16,), (16, 2, 1)])
def test_actions_wrong_ndim(tmp_path, shape):
    raw = _raw()
    raw["actions"] = np.zeros(shape, np.float32)
    _error(_write(tmp_path / "a.npz", **raw), field="actions", contains=("action_dim",))


def test_bad_observation_shapes_and_dtypes(tmp_path):
    t = _terminals()
    _error(_write(tmp_path / "1d.npz", observations=np.zeros(len(t), np.float32), terminals=t),
           field="observations")
    _error(_write(tmp_path / "0.npz", observations=np.zeros((0, 3), np.float32), terminals=np.zeros(0, bool)),
           field="observations")
    _error(_write(tmp_path / "i.npz", observations=np.zeros((len(t), 3), np.int64), terminals=t),
           field="observations", contains=("dtype",))
    _error(_write(tmp_path / "s.npz", observations=np.zeros((len(t), 3), np.float32), terminals=t,
                  notes=np.array(["x"] * len(t))), field="notes", contains=("dtype",))
    _error(_write(tmp_path / "2d.npz", observations=np.zeros((len(t), 3), np.float32),
                  terminals=t[:, None]), field="terminals")


def test_regular_next_observation_mismatch(tmp_path):
    ds = _dataset()
    ds.save(tmp_path / "r.npz", layout="regular")
    with np.load(tmp_path / "r.npz") as f:
        fields = {k: f[k].copy() for k in f.files}
    fields["next_observations"][2] += 1.0  # inside episode 0 (4 transitions)
    _error(_write(tmp_path / "bad.npz", **fields), field="next_observations",
           contains=("next_observations[2] != observations[3]",))
    # Across an episode boundary, s' of the last transition need not equal the next s.
    with np.load(tmp_path / "r.npz") as f:
        fields = {k: f[k].copy() for k in f.files}
    fields["next_observations"][3] += 1.0  # last transition of episode 0
    got = load(_write(tmp_path / "ok.npz", **fields))
    np.testing.assert_array_equal(got.observations[4], fields["next_observations"][3])
    # Shape mismatch.
    fields["next_observations"] = fields["next_observations"][:, :2]
    _error(_write(tmp_path / "shape.npz", **fields), field="next_observations")


def test_dataerror_is_a_usererror(tmp_path):
    path = tmp_path / "e.npz"
    path.write_bytes(b"")
    with pytest.raises(UserError):
        load(path)


def test_save_rejects_unknown_layout(tmp_path):
    with pytest.raises(ValueError):
        _dataset().save(tmp_path / "x.npz", layout="hdf5")
