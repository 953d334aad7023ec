"""`autodidact info` and the CLI's one-line user errors, run as real subprocesses.

All commands start at once (module fixture) so the file's runtime is that of the slowest one.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from autodidact.data.dataset import Dataset

# 2 episodes of 5 and 3 states: 4 + 2 transitions. x-y sit on the diagonal of their bounding box.
XY = np.array([[0, 0], [1, 1], [2, 2], [3, 3], [3, 3], [0, 0], [1, 1], [2, 2]], np.float32)


def _dataset(actions=True):
    n = len(XY)
    obs = np.concatenate([XY, np.linspace(-5, 7, n, dtype=np.float32)[:, None]], axis=1)
    term = np.zeros(n, bool)
    term[[4, 7]] = True
    act = np.array([[-1, 0.5]] * n, np.float32) if actions else None
    if actions:
        act[0] = [0.25, 0.75]
    return Dataset(observations=obs, terminals=term, actions=act,
                   rewards=np.linspace(0, 1, n).astype(np.float32) if actions else None,
                   extras={"qpos": np.zeros((n, 2), np.float32)} if actions else {})


def _cmd(*args):
    return [sys.executable, "-m", "autodidact", *map(str, args)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    _dataset().save(d / "foo.npz")
    _dataset().save(d / "reg.npz", layout="regular", compressed=False)
    _dataset(actions=False).save(d / "free.npz")
    (d / "corrupt.npz").write_bytes(b"PK\x03\x04 definitely not a real archive" * 3)
    bad = _dataset()
    bad.observations[6, 2] = np.nan
    np.savez(d / "nan.npz", observations=bad.observations, terminals=bad.terminals)
    cmds = {
        "info": _cmd("info", d / "foo.npz"),
        "grid4": _cmd("info", d / "reg.npz", "--grid", "4"),
        "free": _cmd("info", d / "free.npz"),
        "corrupt": _cmd("info", d / "corrupt.npz"),
        "nan": _cmd("info", d / "nan.npz"),
        "missing": _cmd("info", d / "nope.npz"),
        "method": _cmd("train", "--method", "nope", "--dataset", "x", "--out", "y"),
        "key": _cmd("train", "--method", "gcbc", "--dataset", "x", "--out", "y2", "--set", "unknown_key=1"),
    }
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    procs = {k: subprocess.Popen(c, cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, c in cmds.items()}
    out = {}
    for k, p in procs.items():
        stdout, stderr = p.communicate(timeout=120)
        out[k] = subprocess.CompletedProcess(cmds[k], p.returncode, stdout, stderr)
    out["dir"] = d
    return out


def _fields(stdout):
    """{label: rest of line} for the aligned `label   value` lines info prints."""
    rows = {}
    for line in stdout.splitlines():
        label, _, rest = line.partition("  ")
        rows[label.strip()] = rest.strip()
    return rows


def _one_line_error(res, *needles):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("autodidact: error: "), lines[0]
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])
    return lines[0]


@pytest.mark.slow
def test_info_fields(runs):
    res = runs["info"]
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    f = _fields(res.stdout)
    assert f["file"].endswith("foo.npz")
    assert f["environment"].startswith("unknown")
    assert f["episodes"] == "2"
    assert f["transitions"] == "6  (8 stored states)"
    assert f["episode len"] == "min 2  mean 3.0  max 4  (transitions)"
    assert f["observations"] == "shape (3,) float32  range [-5, 7]"
    assert f["actions"] == "dim 2  range [-1, 0.75]  mean -0.125  std 0.747  labeled 6/6"
    assert f["rewards"] == "range [0, 1]"
    assert f["extra fields"] == "qpos"
    # Bounding-box coverage: 4 diagonal cells of a 20 x 20 grid.
    assert f["coverage"] == "0.010 of 20x20 grid over dims 0-1 bounding box"


@pytest.mark.slow
def test_info_regular_layout_and_grid(runs):
    res = runs["grid4"]
    assert res.returncode == 0, res.stderr
    f = _fields(res.stdout)
    assert f["episodes"] == "2"
    assert f["transitions"] == "6  (8 stored states)"
    assert f["coverage"] == "0.250 of 4x4 grid over dims 0-1 bounding box"
    assert f["actions"].endswith("labeled 6/6")


@pytest.mark.slow
def test_info_action_free(runs):
    res = runs["free"]
    assert res.returncode == 0, res.stderr
    f = _fields(res.stdout)
    assert f["actions"] == "none (action-free dataset)"
    assert "rewards" not in f and "extra fields" not in f
    assert f["transitions"] == "6  (8 stored states)"


@pytest.mark.slow
def test_info_corrupt_file(runs):
    _one_line_error(runs["corrupt"], runs["dir"] / "corrupt.npz")
    assert runs["corrupt"].stdout == ""


@pytest.mark.slow
def test_info_nan_names_field_and_index(runs):
    _one_line_error(runs["nan"], runs["dir"] / "nan.npz", "'observations'", "index 6")


@pytest.mark.slow
def test_info_missing_file(runs):
    _one_line_error(runs["missing"], runs["dir"] / "nope.npz", "not found")


@pytest.mark.slow
def test_train_unknown_method(runs):
    line = _one_line_error(runs["method"], "nope", "valid methods:")
    assert "gcbc" in line.split("valid methods:")[1]
    assert not (runs["dir"] / "y").exists()


@pytest.mark.slow
def test_train_unknown_config_key(runs):
    line = _one_line_error(runs["key"], "unknown_key", "valid keys:")
    valid = line.split("valid keys:")[1]
    assert "discount" in valid and "batch_size" in valid
    assert not (runs["dir"] / "y2").exists()


# ==================================================================== in-process summaries
def test_info_with_no_labeled_transitions(tmp_path, capsys):
    """Actions stored but none labeled (all-False action_mask, or single-state episodes only)."""
    from autodidact.workflows.info import print_info

    n = len(XY)
    obs = np.concatenate([XY, np.zeros((n, 1), np.float32)], axis=1)
    term = np.zeros(n, bool)
    term[[4, 7]] = True
    Dataset(observations=obs, terminals=term, actions=np.zeros((n, 2), np.float32),
            action_mask=np.zeros(n, bool)).save(tmp_path / "unlabeled.npz")
    info = print_info(tmp_path / "unlabeled.npz")
    assert info["labeled_transitions"] == 0 and "action_min" not in info
    assert _fields(capsys.readouterr().out)["actions"] == "dim 2  labeled 0/6"
    Dataset(observations=obs, terminals=np.ones(n, bool), actions=np.zeros((n, 2), np.float32)).save(
        tmp_path / "single.npz")
    info = print_info(tmp_path / "single.npz")
    assert info["transitions"] == 0 and info["episodes"] == n
    assert _fields(capsys.readouterr().out)["actions"] == "dim 2  labeled 0/0"


def test_maze_coverage_counts_free_cells(tmp_path):
    """A known maze: coverage is the share of the maze's free cells the x-y positions visit."""
    pytest.importorskip("ogbench")  # registers the maze env ids
    from autodidact.workflows.info import summarize
    from autodidact.envs import make_env

    env = make_env("pointmaze-medium-v0")  # reclaims the model file the maze constructor leaks
    u = env.unwrapped
    free = [(i, j) for i in range(u.maze_map.shape[0]) for j in range(u.maze_map.shape[1]) if u.maze_map[i, j] == 0]
    env.close()
    visited = free[::2]
    centers = np.array([u.ij_to_xy(ij) for ij in visited], np.float32)
    jitter = np.random.default_rng(0).uniform(-0.45, 0.45, (3, *centers.shape)) * u._maze_unit
    xy = (centers[None] + jitter).reshape(-1, 2).astype(np.float32)
    obs = np.concatenate([xy, np.zeros((len(xy), 2), np.float32)], axis=1)
    term = np.zeros(len(xy), bool)
    term[[len(xy) // 2, -1]] = True
    path = tmp_path / "pointmaze-medium-navigate-v0.npz"
    Dataset(observations=obs, terminals=term).save(path)
    info, counts = summarize(path)
    assert info["env"] == "pointmaze-medium-v0"
    assert info["coverage_grid"] == f"{len(free)} free maze cells"
    assert info["coverage"] == pytest.approx(len(visited) / len(free))
    assert counts.sum() == len(xy)
