"""Trainer, run directories, checkpoints and resume on tiny synthetic data (no simulator). How each
method learns through the trainer is in test_methods.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from autodidact.workflows.runs import RUN_FORMAT_VERSION
from autodidact.workflows import train as trainer
from autodidact.data.dataset import Dataset
from autodidact.core.errors import UserError
from clihelp import ForkedCLI, kill_after_checkpoint
from pointenv import point_play_dataset

SMALL = ("batch_size=64", "actor_hidden_dims=64,64")


def _settings(tmp_path, data, steps=200, out="run", **kw):
    return trainer.TrainSettings(method="gcbc", dataset=str(data), out=str(tmp_path / out), steps=steps,
                                 eval_episodes=0, seed=kw.pop("seed", 0), overrides=kw.pop("overrides", SMALL),
                                 progress=False, **kw)


def test_run_directory_contents(tmp_path):
    data = point_play_dataset(tmp_path / "point.npz", episodes=5)
    run = trainer.new_run(_settings(tmp_path, data, steps=20, log_every=5, checkpoint_every=10), argv=["a", "b c"])
    files = {p.name for p in run.iterdir()}
    assert {"run.json", "config.json", "command.txt", "metrics.csv", "checkpoints", "tb"} <= files
    run_cfg = json.loads((run / "run.json").read_text())
    assert run_cfg["format_version"] == RUN_FORMAT_VERSION == 2 and run_cfg["method"] == "gcbc"
    assert run_cfg["env"] is None and run_cfg["kernels"] == "tuned" and run_cfg["compile"] == "off"
    assert json.loads((run / "config.json").read_text())["type"] == "gcbc"
    assert (run / "command.txt").read_text() == "a 'b c'\n"
    ckpt = run / "checkpoints" / "step_00000020"
    assert {p.name for p in ckpt.iterdir()} == {"model.safetensors", "optim.safetensors", "state.json"}
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == 20
    # No pickles anywhere in a run.
    assert not [p for p in run.rglob("*") if p.suffix in (".pt", ".pth", ".pkl", ".pickle")]


def test_refuses_existing_run_and_bad_config(tmp_path):
    data = point_play_dataset(tmp_path / "point.npz", episodes=3)
    trainer.new_run(_settings(tmp_path, data, steps=2), argv=["x"])
    with pytest.raises(UserError, match="already exists"):
        trainer.new_run(_settings(tmp_path, data, steps=2), argv=["x"])
    with pytest.raises(UserError, match="unknown config key 'nope'.*valid keys: encoder, p_aug, frame_stack, state_encoder_dims, pretrained_encoder, freeze_encoder, lr"):
        trainer.new_run(_settings(tmp_path, data, out="r2", overrides=("nope=1",)), argv=["x"])
    with pytest.raises(UserError, match="config key 'lr': must be > 0"):
        trainer.new_run(_settings(tmp_path, data, out="r3", overrides=("lr=-1",)), argv=["x"])
    with pytest.raises(UserError, match="expected int"):
        trainer.new_run(_settings(tmp_path, data, out="r4", overrides=("batch_size=big",)), argv=["x"])
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


def test_unknown_kernels_and_compile_modes_are_refused(tmp_path):
    data = point_play_dataset(tmp_path / "point.npz", episodes=2)
    with pytest.raises(UserError, match="--kernels must be one of torch, tuned, got 'fast'"):
        trainer.new_run(_settings(tmp_path, data, steps=2, kernels="fast"), argv=["x"])
    with pytest.raises(UserError, match="--compile must be one of .*got 'auto'"):  # `auto` is gone
        trainer.new_run(_settings(tmp_path, data, steps=2, compile="auto"), argv=["x"])
    assert not (tmp_path / "run").exists()


def test_action_free_dataset_refused_by_gcbc(tmp_path):
    ds = Dataset(np.zeros((10, 2), np.float32), np.arange(10) % 5 == 4)
    ds.save(tmp_path / "nofree.npz")
    with pytest.raises(UserError, match="'actions': missing"):
        trainer.new_run(_settings(tmp_path, tmp_path / "nofree.npz", steps=2), argv=["x"])


def _final_weights(run):
    return load_file(run / "checkpoints" / "step_00000060" / "model.safetensors")


def test_resume_in_process_matches_uninterrupted(tmp_path):
    data = point_play_dataset(tmp_path / "point.npz", episodes=5)
    full = trainer.new_run(_settings(tmp_path, data, steps=60, out="full", checkpoint_every=20), argv=["x"])
    part = trainer.new_run(_settings(tmp_path, data, steps=30, out="part", checkpoint_every=20), argv=["x"])
    # Drop the step-30 checkpoint so the resume starts from step 20 and replays 21..30 too.
    import shutil
    shutil.rmtree(part / "checkpoints" / "step_00000030")
    (part / "checkpoints" / "latest.json").unlink()
    trainer.resume_run(part, argv=["resume"], steps=60, progress=False)
    a, b = _final_weights(full), _final_weights(part)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # metrics.csv reads as one uninterrupted run.
    steps = [int(r.split(",")[0]) for r in (part / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 60


def _cli(*args, threads=None, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if threads:
        env.update(OMP_NUM_THREADS=str(threads))
    return subprocess.Popen([sys.executable, "-m", "autodidact", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_sigkill_then_resume_gives_identical_final_weights(tmp_path):
    """A run killed mid-way and resumed ends with the same weights as one never stopped. The
    uninterrupted and the killed run are forked from a server that has imported torch (see
    clihelp.ForkedCLI); the resume is a real `python -m autodidact` process. All use one thread."""
    data = point_play_dataset(tmp_path / "point.npz", episodes=8)
    common = ["--method", "gcbc", "--dataset", str(data), "--steps", "60", "--eval-episodes", "0",
              "--checkpoint-every", "5", "--seed", "3", "--no-progress", "--set", "batch_size=512",
              "--set", "actor_hidden_dims=256,256"]
    ref = ForkedCLI(tmp_path, "train", *common, "--out", str(tmp_path / "ref"))
    ref.communicate(timeout=300)
    assert ref.returncode == 0, ref.stderr

    victim_dir = tmp_path / "victim"
    killed_at = kill_after_checkpoint(tmp_path, victim_dir, 15, "train", *common, "--out", str(victim_dir))
    assert killed_at < 60

    resumed = _cli("train", "--resume", str(victim_dir), "--no-progress", threads=1)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    a, b = _final_weights(tmp_path / "ref"), _final_weights(victim_dir)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    commands = (victim_dir / "command.txt").read_text().splitlines()
    assert len(commands) == 2 and "--resume" in commands[1]


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path):
    """The real distributed engine (gloo on CPU): two processes, one run directory."""
    data = point_play_dataset(tmp_path / "point.npz", episodes=4)
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run([str(torchrun), "--nproc_per_node", "2", "-m", "autodidact", "train", "--method", "gcbc",
                           "--dataset", str(data), "--out", str(tmp_path / "ddp"), "--steps", "10",
                           "--eval-episodes", "0", "--no-progress", "--set", "batch_size=32",
                           "--set", "actor_hidden_dims=32,32"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = json.loads((tmp_path / "ddp" / "checkpoints" / "step_00000010" / "state.json").read_text())
    # One sampler stream per process, and they differ (each rank draws its own batches).
    assert isinstance(state["sampler"], list) and len(state["sampler"]) == 2
    assert state["sampler"][0] != state["sampler"][1]
    assert len((tmp_path / "ddp" / "command.txt").read_text().splitlines()) == 1
