"""Reliability (issue 6): no code execution on load, atomic writes under SIGKILL, clean one-line
errors for disk full / read-only / missing directories, and config validation through the CLI.

Already covered elsewhere (not repeated here): object arrays in every field, layout and mmap mode
(tests/test_dataset.py::test_object_array_is_never_unpickled), one kill + bit-identical resume
(tests/test_train.py::test_sigkill_then_resume_gives_identical_final_weights), a failing collect
worker leaving nothing behind (tests/test_collect.py::test_failure_leaves_nothing_behind).

Kill counts and seeds can be raised for a soak: see scripts/soak.py (AUTODIDACT_KILL_* variables).
Measured numbers go to the JSON file named by AUTODIDACT_RELIABILITY_REPORT, if set.
"""

import csv
import errno
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from autodidact.workflows.runs import build_method, load_run
from autodidact import cli
from autodidact.workflows import train as trainer
from autodidact.workflows.checkpoint import latest_checkpoint, load_checkpoint, prune_checkpoints, save_checkpoint
from autodidact.data.dataset import load as load_dataset
from autodidact.core.errors import DataError, UserError
from clihelp import ForkedCLI
from pointenv import point_play_dataset

NAME = "pointmaze-medium-navigate-v0"
TINY = ["--set", "batch_size=32", "--set", "actor_hidden_dims=32,32"]
KILL_SEED = int(os.environ.get("AUTODIDACT_KILL_SEED", "6"))
COLLECT_KILLS = int(os.environ.get("AUTODIDACT_KILL_COLLECT", "6"))
TRAIN_KILLS = int(os.environ.get("AUTODIDACT_KILL_TRAIN", "14"))
REPORT = {}


@pytest.fixture(scope="module", autouse=True)
def _write_report():
    yield
    path = os.environ.get("AUTODIDACT_RELIABILITY_REPORT")
    if path and REPORT:
        Path(path).write_text(json.dumps(REPORT, indent=2, sort_keys=True) + "\n")


def _env():
    return dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MUJOCO_GL="egl")


def _popen(*args):
    return subprocess.Popen([sys.executable, "-m", "autodidact", *args], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "autodidact", *args], env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def _assert_one_line_error(rc, stderr, *contains):
    lines = stderr.strip().splitlines()
    assert rc == 2, (rc, stderr[-3000:])
    assert len(lines) == 1 and lines[0].startswith("autodidact: error: "), stderr[-3000:]
    assert "Traceback" not in stderr
    for c in contains:
        assert c in lines[0], lines[0]
    return lines[0]


def _main(capsys, *argv):
    """The CLI entry point in-process (same parser, dispatch and error printing, no torch re-import)."""
    rc = cli.main(list(argv))
    err = capsys.readouterr().err
    return rc, err


@pytest.fixture(scope="module")
def point_data(tmp_path_factory):
    return point_play_dataset(tmp_path_factory.mktemp("data") / "point.npz", episodes=5, length=30)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, point_data):
    """A finished 3-step run with checkpoints at steps 2 and 3."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    s = trainer.TrainSettings(method="gcbc", dataset=str(point_data), out=str(out), steps=3, eval_episodes=0,
                              checkpoint_every=1, overrides=("batch_size=32", "actor_hidden_dims=32,32"),
                              progress=False)
    return trainer.new_run(s, argv=["test"])


def _copy_run(run, dst):
    shutil.copytree(run, dst)
    return dst


# ============================================================= 1. no code execution on load
class _Marker:
    """Unpickling this calls os.makedirs(marker): evidence that code ran on load."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker, 0o777, True))


@pytest.mark.slow
def test_object_npz_refused_by_cli_nothing_runs(tmp_path, point_data, capsys):
    marker = tmp_path / "RAN"
    raw = dict(np.load(point_data))
    objs = np.empty(len(raw["terminals"]), dtype=object)
    objs[:] = [_Marker(marker)] * len(objs)
    raw["actions"] = objs
    evil = tmp_path / "evil.npz"
    np.savez(evil, **raw)  # allow_pickle defaults to True on write
    proc = _run("info", str(evil))
    _assert_one_line_error(proc.returncode, proc.stderr, "'actions'", "refusing to unpickle")
    rc, err = _main(capsys, "train", "--method", "gcbc", "--dataset", str(evil), "--out", str(tmp_path / "r"),
                    "--no-progress", *TINY)
    _assert_one_line_error(rc, err, "refusing to unpickle")
    assert not marker.exists() and not (tmp_path / "r").exists()
    with np.load(evil, allow_pickle=True) as f:  # not vacuous: the file does run code when unpickled
        f["actions"]
    assert marker.exists()


def _pickle_bytes(marker):
    return pickle.dumps({"actor.net.0.weight": _Marker(marker)})


@pytest.mark.parametrize("attack", ["model_pt_only", "model_safetensors_is_pickle",
                                    "optim_safetensors_is_pickle", "model_is_torch_save_zip"])
def test_pickled_checkpoint_refused_nothing_runs(tmp_path, tiny_run, attack):
    run = _copy_run(tiny_run, tmp_path / "run")
    marker = tmp_path / "RAN"
    ckpt = latest_checkpoint(run / "checkpoints")
    if attack == "model_pt_only":
        (ckpt / "model.safetensors").unlink()
        torch.save({"w": _Marker(marker)}, ckpt / "model.pt")
    elif attack == "model_safetensors_is_pickle":
        (ckpt / "model.safetensors").write_bytes(_pickle_bytes(marker))
    elif attack == "optim_safetensors_is_pickle":
        (ckpt / "optim.safetensors").write_bytes(_pickle_bytes(marker))
    else:  # torch.save's zip container under the safetensors name
        torch.save({"w": _Marker(marker)}, ckpt / "model.safetensors")
    run_cfg = json.loads((run / "run.json").read_text())
    with pytest.raises(UserError, match="corrupt checkpoint") as ei:
        load_checkpoint(ckpt, build_method(run_cfg))
    assert "\n" not in str(ei.value) and str(ckpt) in str(ei.value)
    if attack.startswith("optim"):
        load_run(run)  # eval reads weights only; the bad optimizer file is never opened
    else:
        with pytest.raises(UserError, match="corrupt checkpoint"):
            load_run(run)
    assert not marker.exists()
    # Not vacuous: loading that file with pickle does run code.
    victim = ckpt / ("model.pt" if attack == "model_pt_only" else
                     "optim.safetensors" if attack.startswith("optim") else "model.safetensors")
    data = victim.read_bytes()
    if data[:2] == b"PK":  # torch.save's zip container (torch.load on a *.safetensors path would
        import io          # dispatch to safetensors, so load from bytes)
        torch.load(io.BytesIO(data), weights_only=False)
    else:
        pickle.loads(data)
    assert marker.exists()


@pytest.mark.slow
def test_pickled_checkpoint_refused_through_cli(tmp_path, tiny_run):
    run = _copy_run(tiny_run, tmp_path / "run")
    marker = tmp_path / "RAN"
    (latest_checkpoint(run / "checkpoints") / "model.safetensors").write_bytes(_pickle_bytes(marker))
    proc = _run("train", "--resume", str(run), "--no-progress")
    _assert_one_line_error(proc.returncode, proc.stderr, "corrupt checkpoint")
    assert not marker.exists()


# ============================================================= 2. SIGKILL at random moments
def _check_dataset_dir(d, stats):
    """Every visible file is a complete, loadable dataset; hidden temp files are only counted."""
    if not d.exists():
        return
    for p in d.iterdir():
        if p.name.startswith("."):
            assert p.name.endswith(".tmp"), p
            stats["leftover_temp_files"] += 1
            continue
        ds = load_dataset(p)
        assert ds.terminals[-1] and len(ds.observations) > 0
        stats["datasets_checked"] += 1
    names = {p.name for p in d.iterdir()}
    if f"{NAME}.npz" in names and f"{NAME}-val.npz" not in names:
        stats["train_without_val"] += 1


def _wait_for(cond, proc, timeout=60.0, poll=0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    raise AssertionError("timed out waiting for the process")


def _kill(proc, stats):
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGKILL)
        except ProcessLookupError:  # it exited, and was reaped, between the poll and the kill
            pass
    proc.communicate(timeout=60)
    delivered = proc.returncode == -signal.SIGKILL
    stats["kills_delivered" if delivered else "finished_before_kill"] += 1
    return delivered


@pytest.mark.slow
def test_sigkill_during_collect_leaves_only_complete_datasets(tmp_path, point_data):
    rng = random.Random(KILL_SEED)
    stats = dict(kills_delivered=0, finished_before_kill=0, datasets_checked=0, leftover_temp_files=0,
                 train_without_val=0, runs=0)
    t0 = time.monotonic()
    attempts = 0
    while stats["kills_delivered"] < COLLECT_KILLS:
        attempts += 1
        assert attempts <= 3 * COLLECT_KILLS + 3, stats
        d = tmp_path / f"c{attempts}"
        if attempts % 2 == 0:  # an older complete pair is being replaced
            d.mkdir()
            shutil.copy(point_data, d / f"{NAME}.npz")
            shutil.copy(point_data, d / f"{NAME}-val.npz")
        proc = _popen("collect", NAME, "--out", str(d), "--episodes", "2", "--no-progress")
        stats["runs"] += 1
        # Kill at a seeded random moment within the write phase: once a temp file shows up.
        if _wait_for(lambda: d.exists() and any(p.name.endswith(".tmp") for p in d.iterdir()), proc):
            time.sleep(rng.uniform(0.0, 0.08))
        _kill(proc, stats)
        _check_dataset_dir(d, stats)
    stats["seconds"] = round(time.monotonic() - t0, 1)
    REPORT["collect"] = stats


def _check_run_dir(run, stats):
    """After a kill: every checkpoint loads, latest.json names a complete one, metrics rows parse."""
    run_cfg = json.loads((run / "run.json").read_text())
    method = build_method(run_cfg)
    ck = run / "checkpoints"
    steps = []
    for d in sorted(ck.glob("step_*")):
        state = load_checkpoint(d, method)
        assert state["step"] == int(d.name[5:]) and "sampler" in state
        steps.append(state["step"])
        stats["checkpoints_loaded"] += 1
    stats["leftover_temp_entries"] += len([p for p in ck.glob(".*")] + [p for p in run.glob(".*")])
    for p in list(ck.glob(".*")) + list(run.glob(".*")):
        assert p.name.startswith((".step_", ".latest.json.", ".metrics.csv.", ".eval.csv.",
                                  ".command.txt.", ".run.json.", ".config.json.")), p
    if (ck / "latest.json").exists():
        latest = json.loads((ck / "latest.json").read_text())
        assert (ck / latest["dir"]).is_dir() and latest["step"] == int(latest["dir"][5:])
        assert latest_checkpoint(ck) == ck / latest["dir"]
        stats["latest_checked"] += 1
    if (run / "metrics.csv").exists():
        with open(run / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            assert None not in r and all(v not in (None, "") for v in r.values()), r
            assert all(np.isfinite(float(v)) for v in r.values()), r
        logged = [int(r["step"]) for r in rows]
        assert logged == sorted(set(logged)), logged
        stats["metric_rows_parsed"] += len(rows)
    return max(steps, default=0)


@pytest.mark.slow
def test_sigkill_during_train_then_resume(tmp_path, point_data):
    """Kill `train` (checkpointing every step) and each `--resume` of it at seeded random moments;
    after every kill all files must be complete, and a final plain `--resume` must exit 0."""
    rng = random.Random(KILL_SEED + 1)
    steps = 40
    stats = dict(kills_delivered=0, finished_before_kill=0, checkpoints_loaded=0, latest_checked=0,
                 metric_rows_parsed=0, leftover_temp_entries=0, runs=0, runs_resumed_ok=0,
                 kills_leaving_checkpoint_temp_dir=0)
    t0 = time.monotonic()
    run = None
    attempts = 0
    while stats["kills_delivered"] < TRAIN_KILLS:
        attempts += 1
        assert attempts <= 3 * TRAIN_KILLS + 3, stats
        if run is None:
            run = tmp_path / f"run{stats['runs']}"
            stats["runs"] += 1
            proc = ForkedCLI(tmp_path, "train", "--method", "gcbc", "--dataset", str(point_data), "--out", str(run),
                            "--steps", str(steps), "--checkpoint-every", "1", "--log-every", "1",
                            "--eval-episodes", "0", "--seed", str(stats["runs"]), "--no-progress", *TINY)
            before = -1
        else:
            proc = ForkedCLI(tmp_path, "train", "--resume", str(run), "--no-progress")
        latest = run / "checkpoints" / "latest.json"

        def progressed():  # a new checkpoint since the last kill: the loop is running
            try:
                return json.loads(latest.read_text())["step"] > before
            except (FileNotFoundError, ValueError):
                return False

        if _wait_for(progressed, proc):
            time.sleep(rng.uniform(0.0, 0.3))
        _kill(proc, stats)
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr
        if any((run / "checkpoints").glob(".step_*")):  # the kill landed inside save_checkpoint
            stats["kills_leaving_checkpoint_temp_dir"] += 1
        before = _check_run_dir(run, stats)
        if proc.returncode == 0 or before >= steps:  # this run finished: resume checks, then a new run
            _finish(run, steps, stats)
            run = None
    if run is not None:
        _finish(run, steps, stats)
    stats["seconds"] = round(time.monotonic() - t0, 1)
    REPORT["train"] = stats


def _finish(run, steps, stats):
    """A plain resume completes the run: the first run's as a real `python -m autodidact` process."""
    if stats["runs_resumed_ok"] == 0:
        proc = _run("train", "--resume", str(run), "--no-progress", timeout=300)
    else:
        proc = ForkedCLI(run.parent, "train", "--resume", str(run), "--no-progress")
        proc.communicate(timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _check_run_dir(run, stats) == steps
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == steps
    with open(run / "metrics.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(1, steps + 1))
    stats["runs_resumed_ok"] += 1


@pytest.mark.slow
def test_collect_pair_train_file_always_has_its_val_twin(tmp_path):
    """Deterministic kill between the two renames of `collect` (the random kills rarely land there).

    Both files are complete before either is renamed; the val file is renamed first and the train
    file last, so the only partial state is an orphan val file, which nothing reads without its
    train file. A train file is never left without the val file written with it."""
    script = (
        "import os, signal, sys\n"
        "real = os.replace\n"
        "calls = []\n"
        "def replace(src, dst):\n"
        "    if str(dst).endswith('.npz'):\n"
        "        calls.append(dst)\n"
        "        if len(calls) == 2: os.kill(os.getpid(), signal.SIGKILL)\n"
        "    real(src, dst)\n"
        "os.replace = replace\n"
        "from autodidact.cli import main\n"
        f"main(['collect', '{NAME}', '--out', sys.argv[1], '--episodes', '1', '--no-progress'])\n"
    )
    out = tmp_path / "D"
    proc = subprocess.run([sys.executable, "-c", script, str(out)], env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL
    names = {p.name for p in out.iterdir() if not p.name.startswith(".")} if out.exists() else set()
    assert names == {f"{NAME}-val.npz"}, names
    # Collecting again completes the pair.
    subprocess.run([sys.executable, "-m", "autodidact", "collect", NAME, "--out", str(out), "--episodes", "1",
                    "--no-progress"], env=_env(), check=True, capture_output=True, timeout=120)
    assert {p.name for p in out.iterdir() if not p.name.startswith(".")} == {f"{NAME}.npz", f"{NAME}-val.npz"}


# ============================================================= 3. disk full, read-only, missing dirs
def _no_temp_files(d):
    return [p for p in Path(d).rglob(".*")]


def test_enospc_while_writing_dataset_keeps_old_file(tmp_path, monkeypatch):
    """ENOSPC half-way through an .npz: UserError naming the file, old file intact, no temp file."""
    from autodidact.data.dataset import Dataset
    ds = Dataset(np.zeros((6, 2), np.float32), np.arange(6) % 3 == 2, np.zeros((6, 2), np.float32))
    path = tmp_path / "d.npz"
    ds.save(path)
    before = path.read_bytes()

    def full(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez_compressed", full)
    with pytest.raises(UserError) as ei:
        ds.save(path)
    assert str(ei.value) == f"{path}: cannot write: no space left on device"
    assert path.read_bytes() == before and not _no_temp_files(tmp_path)


def test_enospc_while_checkpointing_keeps_previous(tmp_path, tiny_run, monkeypatch):
    """safetensors reports a full disk as SafetensorError('... (os error 28)'), not OSError."""
    from safetensors import SafetensorError

    import autodidact.workflows.checkpoint as ckmod
    run = _copy_run(tiny_run, tmp_path / "run")
    ck = run / "checkpoints"
    run_cfg = json.loads((run / "run.json").read_text())
    method = build_method(run_cfg)
    state = load_checkpoint(latest_checkpoint(ck), method)
    latest_before = (ck / "latest.json").read_bytes()

    def full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\x08partial")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(ckmod, "save_file", full)
    with pytest.raises(UserError, match="step_00000004: cannot write: no space left on device"):
        save_checkpoint(ck, 4, method, {"sampler": state["sampler"]})
    assert (ck / "latest.json").read_bytes() == latest_before
    assert not _no_temp_files(ck) and not (ck / "step_00000004").exists()
    assert load_checkpoint(latest_checkpoint(ck), method)["step"] == 3


def test_permission_denied_and_missing_dirs_in_process(tmp_path, monkeypatch):
    from autodidact.core import io as adio

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(adio.tempfile, "mkstemp", denied)
    with pytest.raises(UserError, match=r"x\.json: cannot write: permission denied$"):
        adio.atomic_write_json(tmp_path / "x.json", {})
    monkeypatch.undo()
    # A missing output directory is created; a path through a regular file is a one-line error.
    adio.atomic_write_json(tmp_path / "new" / "deeper" / "x.json", {"a": 1})
    assert json.loads((tmp_path / "new" / "deeper" / "x.json").read_text()) == {"a": 1}
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot write"):
        adio.atomic_write_json(tmp_path / "file" / "x.json", {})
    with pytest.raises(DataError, match="file not found"):
        load_dataset(tmp_path / "no" / "such" / "dir" / "d.npz")


_NS = {}


def _namespace_ok():
    """Private mount namespaces (tmpfs for a real ENOSPC, ro bind mounts) work here?"""
    if "ok" not in _NS:
        try:
            _NS["ok"] = shutil.which("unshare") is not None and subprocess.run(
                ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /tmp"],
                capture_output=True, timeout=20).returncode == 0
        except (OSError, subprocess.SubprocessError):
            _NS["ok"] = False
    return _NS["ok"]


def _in_namespace(setup, *args, after="true", timeout=180):
    """Run `autodidact ARGS` after `setup` (shell, e.g. a mount) in a private mount namespace, then
    `after` (e.g. copy the tmpfs contents out); return the CompletedProcess of autodidact."""
    import shlex
    cmd = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "autodidact", *args])
    return subprocess.run(["unshare", "-m", "sh", "-c", f"{setup} || exit 99; {cmd}; rc=$?; {after}; exit $rc"],
                          env=_env(), capture_output=True, text=True, timeout=timeout)


needs_ns = pytest.mark.skipif("not _namespace_ok()", reason="cannot create a private mount namespace "
                              "(unshare -m + mount need CAP_SYS_ADMIN); disk-full/read-only via mounts skipped")


def _files_complete(root):
    """Every file under root is complete: JSON parses, datasets and checkpoints load, no temp leftovers."""
    root = Path(root)
    assert not _no_temp_files(root), _no_temp_files(root)
    for p in root.rglob("*.json"):
        json.loads(p.read_text())
    for p in root.rglob("*.npz"):
        load_dataset(p)
    if (root / "run.json").exists():
        method = build_method(json.loads((root / "run.json").read_text()))
        for d in (root / "checkpoints").glob("step_*"):
            load_checkpoint(d, method)
        if (root / "checkpoints" / "latest.json").exists():
            load_checkpoint(latest_checkpoint(root / "checkpoints"), method)



DISK_FULL_TRAIN = ["train", "--method", "gcbc", "--steps", "8", "--log-every", "1", "--checkpoint-every", "1",
                   "--eval-episodes", "0", "--no-progress", *TINY]
PAGE = 4096  # tmpfs allocates whole pages


@pytest.fixture(scope="module")
def disk_full_footprint(tmp_path_factory, point_data):
    """Bytes (whole pages) that the files of the disk-full test's run take once it completes: the
    same command, run in this process on an ordinary disk. A tmpfs any smaller cannot hold them."""
    out = tmp_path_factory.mktemp("footprint") / "run"
    assert cli.main([*DISK_FULL_TRAIN, "--dataset", str(point_data), "--out", str(out)]) == 0
    return sum(-(-p.stat().st_size // PAGE) * PAGE for p in out.rglob("*") if p.is_file())


@pytest.mark.slow
@needs_ns
@pytest.mark.parametrize("fraction", [0.1, 0.35, 0.6, 0.9])
def test_real_disk_full_train(tmp_path, point_data, disk_full_footprint, fraction):
    """A tmpfs too small for the finished run fills up at different points (the run files, the
    first metrics and events, the first checkpoint, a later one): whichever write fails, the error is
    one line and every file left behind is complete."""
    size_k = max(1, int(fraction * disk_full_footprint) // PAGE) * PAGE // 1024
    mnt, keep = tmp_path / "full", tmp_path / "kept"
    mnt.mkdir()
    proc = _in_namespace(f"mount -t tmpfs -o size={size_k}k tmpfs {mnt}", *DISK_FULL_TRAIN,
                         "--dataset", str(point_data), "--out", str(mnt / "run"), after=f"cp -a {mnt}/. {keep}")
    _assert_one_line_error(proc.returncode, proc.stderr, "no space left on device")
    _files_complete(keep / "run")


@pytest.mark.slow
@needs_ns
def test_real_disk_full_collect(tmp_path):
    mnt, keep = tmp_path / "full", tmp_path / "kept"
    mnt.mkdir()
    proc = _in_namespace(f"mount -t tmpfs -o size=48k tmpfs {mnt}", "collect", NAME, "--out", str(mnt / "D"),
                         "--episodes", "2", "--no-progress", after=f"cp -a {mnt}/. {keep}")
    _assert_one_line_error(proc.returncode, proc.stderr, "no space left on device")
    assert not [p for p in (keep / "D").iterdir()]  # neither half of the pair, no temp file


def _readonly_setup(d):
    return f"mount --bind {d} {d} && mount -o remount,bind,ro {d}"


def _readonly(tmp_path):
    """A directory writes to which fail: chmod 0555 when that is enforced (not root), else a read-only
    bind mount in a private namespace; (dir, shell setup) or skip."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    try:
        (d / "probe").write_text("")
        (d / "probe").unlink()
    except PermissionError:
        return d, "true"  # permission bits are enforced (not root)
    d.chmod(0o755)
    if not _namespace_ok():
        pytest.skip("running as root, so chmod 0o555 does not stop writes, and no mount namespace for a "
                    "read-only bind mount")
    return d, _readonly_setup(d)


@pytest.mark.slow
def test_readonly_output_collect(tmp_path):
    d, setup = _readonly(tmp_path)
    proc = _in_namespace(setup, "collect", NAME, "--out", str(d / "D"), "--episodes", "1", "--no-progress")
    _assert_one_line_error(proc.returncode, proc.stderr, "cannot write")
    assert not list(d.iterdir())


@pytest.mark.slow
def test_readonly_output_train(tmp_path, point_data):
    d, setup = _readonly(tmp_path)
    proc = _in_namespace(setup, "train", "--method", "gcbc", "--dataset", str(point_data), "--out",
                         str(d / "run"), "--steps", "2", "--eval-episodes", "0", "--no-progress", *TINY)
    _assert_one_line_error(proc.returncode, proc.stderr, "cannot write")


def test_out_is_a_regular_file(tmp_path, point_data, capsys):
    (tmp_path / "afile").write_text("x")
    rc, err = _main(capsys, "train", "--method", "gcbc", "--dataset", str(point_data), "--out",
                    str(tmp_path / "afile"), "--steps", "2", "--eval-episodes", "0", "--no-progress", *TINY)
    _assert_one_line_error(rc, err)


def test_missing_inputs_are_one_line(tmp_path, capsys):
    cases = [(["train", "--method", "gcbc", "--dataset", str(tmp_path / "no" / "d.npz"), "--out",
               str(tmp_path / "r")], "file not found"),
             (["train", "--resume", str(tmp_path / "no" / "run")], "not a run directory"),
             (["info", str(tmp_path / "no" / "d.npz")], "file not found"),
             (["eval", str(tmp_path / "no" / "run")], "not a run directory")]
    for argv, msg in cases:
        rc, err = _main(capsys, *argv)
        _assert_one_line_error(rc, err, msg)
    assert not (tmp_path / "r").exists()


# ============================================================= 5. config validation via the CLI
CONFIG_CASES = [
    # (--set value, substrings the one-line error must contain)
    ("nope=1", ["unknown config key 'nope'", "valid keys: encoder, p_aug, frame_stack, state_encoder_dims, pretrained_encoder, freeze_encoder, lr"]),
    ("lr", ["--set lr: expected key=value"]),
    ("batch_size=big", ["--set batch_size=big: expected int"]),
    ("batch_size=12.5", ["--set batch_size=12.5: expected int"]),
    ("lr=fast", ["--set lr=fast: expected float"]),
    ("actor_layer_norm=maybe", ["--set actor_layer_norm=maybe: expected bool"]),
    ("actor_hidden_dims=32,x", ["--set actor_hidden_dims=32,x: expected tuple"]),
    ("lr=0", ["config key 'lr'", "must be > 0"]),
    ("lr=-1e-3", ["config key 'lr'", "must be > 0"]),
    ("lr=inf", ["--set lr=inf: expected a finite float"]),
    ("lr=nan", ["--set lr=nan: expected a finite float"]),
    ("batch_size=0", ["config key 'batch_size'", "must be >= 1"]),
    ("discount=1", ["config key 'discount'", "must be in [0, 1)"]),
    ("actor_hidden_dims=32,0", ["config key 'actor_hidden_dims'", "positive width"]),
    ("actor_hidden_dims=", ["config key 'actor_hidden_dims'", "positive width"]),
    ("actor_goals.p_randomgoal=1.5", ["config key 'actor_goals.p_randomgoal'", "must be in [0, 1]", "got 1.5"]),
    ("actor_goals.p_curgoal=-0.1", ["config key 'actor_goals.p_curgoal'", "must be in [0, 1]"]),
    ("actor_goals.p_curgoal=0.5", ["config key 'actor_goals.p_*goal'", "must sum to 1", "got 1.5"]),
    ("actor_goals.nope=1", ["unknown config key 'actor_goals.nope'"]),
    ("actor_goals=0.5", ["config key 'actor_goals' is a group of settings", "actor_goals.p_curgoal="]),
    # GCBC relabels only actor goals: it has no value goals (nor gc_negative) to set.
    ("value_goals.p_curgoal=0.1", ["unknown config key 'value_goals.p_curgoal'"]),
    ("gc_negative=false", ["unknown config key 'gc_negative'"]),
    ("lr=1\n2", ["--set lr=1\\n2: expected float"]),
]


@pytest.mark.parametrize("override,expect", CONFIG_CASES, ids=[c[0].replace("\n", "\\n") for c in CONFIG_CASES])
def test_bad_config_fails_at_parse_time(tmp_path, point_data, capsys, override, expect):
    out = tmp_path / "r"
    rc, err = _main(capsys, "train", "--method", "gcbc", "--dataset", str(point_data), "--out", str(out),
                    "--steps", "2", "--eval-episodes", "0", "--no-progress", "--set", override)
    _assert_one_line_error(rc, err, *expect)
    assert not out.exists()  # nothing written


@pytest.mark.slow
def test_bad_config_through_a_real_process(tmp_path, point_data):
    """The same checks in a real `python -m autodidact` process (exit status, stderr, no traceback)."""
    out = tmp_path / "r"
    proc = _run("train", "--method", "gcbc", "--dataset", str(point_data), "--out", str(out),
                "--set", "actor_goals.p_curgoal=0.2", "--set", "actor_goals.p_trajgoal=0.2")
    _assert_one_line_error(proc.returncode, proc.stderr, "config key 'actor_goals.p_*goal'", "must sum to 1", "got 0.4")
    proc = _run("train", "--method", "gcbc", "--dataset", str(point_data), "--out", str(out),
                "--set", "discount=1.5")
    _assert_one_line_error(proc.returncode, proc.stderr, "config key 'discount': must be in [0, 1), got 1.5")
    assert not out.exists()


def test_prune_never_leaves_partial_checkpoint(tmp_path, tiny_run, monkeypatch):
    """A deletion interrupted half-way (here: rmtree raising after one file) must not leave a
    partial step_* directory: the old dir is renamed away atomically first."""
    run = _copy_run(tiny_run, tmp_path / "run")
    ck = run / "checkpoints"
    real_rmtree = shutil.rmtree

    def interrupted(path, ignore_errors=False, **kw):
        files = sorted(Path(path).rglob("*.safetensors"))
        if files:
            files[0].unlink()
        raise KeyboardInterrupt  # stands in for a kill mid-delete

    monkeypatch.setattr(shutil, "rmtree", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prune_checkpoints(ck, keep=1)
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    method = build_method(json.loads((run / "run.json").read_text()))
    for d in ck.glob("step_*"):
        load_checkpoint(d, method)
    prune_checkpoints(ck, keep=1)  # the hidden leftover is removed by the next prune
    assert not list(ck.glob(".*")) and [d.name for d in ck.glob("step_*")] == ["step_00000003"]


def test_files_are_not_private(tmp_path, point_data):
    """Atomic writes used mkstemp's 0600 (and mkdtemp's 0700): files must honour the umask instead."""
    from autodidact.core.io import current_umask
    want = 0o666 & ~current_umask()
    ds = load_dataset(point_data)
    ds.save(tmp_path / "d.npz")
    assert (tmp_path / "d.npz").stat().st_mode & 0o777 == want
    method = build_method({"method": "gcbc", "seed": 0, "obs_shape": [2], "action_dim": 2,
                                   "config": {"batch_size": 32, "actor_hidden_dims": [8]}})
    d = save_checkpoint(tmp_path / "ck", 1, method, {"sampler": {}})
    assert d.stat().st_mode & 0o777 == 0o777 & ~current_umask()
    assert (tmp_path / "ck" / "latest.json").stat().st_mode & 0o777 == want
