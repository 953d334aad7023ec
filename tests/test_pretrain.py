"""`autodidact pretrain`: every encoder objective's loss falls on tiny data, RankMe tells a collapsed
encoder from a healthy one, runs resume bit-identically, and the encoder file holds the encoder."""

import csv
import json

import numpy as np
import pytest
import torch
from clihelp import methods_listing
from pointenv import assert_resume_matches_uninterrupted, point_frames_dataset, point_play_dataset, settings

from autodidact import cli
from autodidact.core.errors import UserError
from autodidact.methods import METHODS, OBJECTIVES, get_objective
from autodidact.nn.diagnostics import rankme
from autodidact.nn.encoders import make_encoder
from autodidact.nn.representation import read_encoder_file
from autodidact.workflows import train as trainer
from autodidact.workflows.runs import load_run

# Small networks, so each objective trains in a second or two.
SMALL = {
    "spr": ["transition_dims=64,64", "projection_dims=64", "projection_dim=32", "prediction_steps=3"],
    "dynamo": ["n_layer=2", "n_head=2", "n_embd=32", "latent_action_dim=4", "lr=3e-4"],
    "byol": ["projection_dims=64", "projection_dim=32", "predictor_dims=64"],
    "barlow": ["projection_dims=64", "projection_dim=64"],
    "vicreg": ["projection_dims=64", "projection_dim=64"],
    "idm": ["head_dims=64,64"],
}
STATE = ["state_encoder_dims=64,32", "batch_size=128"]


def overrides(name, *extra):
    return tuple(STATE + SMALL[name] + list(extra))


def test_the_registry_is_separate_from_methods(capsys):
    lines = methods_listing(capsys, section=1).splitlines()
    assert [line.split()[0] for line in lines] == list(OBJECTIVES)
    assert "needs actions" in lines[0] and "no actions" in lines[1]
    assert set(OBJECTIVES) == {"spr", "dynamo", "byol", "barlow", "vicreg", "idm"}
    assert not set(OBJECTIVES) & set(METHODS)
    with pytest.raises(UserError, match="unknown objective 'simclr'; valid objectives: spr, dynamo"):
        get_objective("simclr")


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_each_objective_loss_falls_on_point_play(tmp_path, name):
    data = point_play_dataset(tmp_path / "point.npz", episodes=20)
    run = trainer.new_run(settings(name, tmp_path, data, 150, overrides=overrides(name), log_every=5), argv=["t"])
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    loss = np.array([float(r[f"{name}/loss"]) for r in rows])
    assert np.isfinite(loss).all()
    assert loss[-5:].mean() < 0.8 * loss[:3].mean(), (loss[:3], loss[-5:])
    assert all(float(r["encoder/rankme"]) >= 1.0 for r in rows)
    assert (run / "encoder.safetensors").is_file() and (run / "encoder_health.json").is_file()


def test_rankme_is_low_for_collapsed_and_high_for_healthy_embeddings():
    g = torch.Generator().manual_seed(0)
    healthy = torch.randn(1024, 64, generator=g)
    line = torch.randn(1024, 1, generator=g) * torch.randn(1, 64, generator=g)
    point = torch.ones(1024, 64) + 1e-6 * torch.randn(1024, 64, generator=g)
    assert float(rankme(healthy)) > 50
    assert float(rankme(line)) < 1.5
    assert float(rankme(point)) < 1.5

    # The same encoder on the same states: healthy at its random init, collapsed once its last
    # layer ignores the input.
    states = torch.rand(2048, 2, generator=g) * 2 - 1
    encoder = make_encoder(None, (2,), 1, (64, 32))
    before = float(rankme(encoder(states)))
    with torch.no_grad():
        encoder.mlp.net[3].weight.zero_()
    after = float(rankme(encoder(states)))
    assert before > 5 and after < 1.5, (before, after)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_pretraining_resumes_bit_identically(tmp_path, name):
    assert_resume_matches_uninterrupted(name, tmp_path, overrides(name), steps=20, every=5)


def test_the_encoder_file_rebuilds_the_trained_encoder_and_health_is_recorded(tmp_path, capsys):
    """Frames (with qpos kept, as OGBench's visual files) through a tiny IMPALA encoder."""
    data = point_frames_dataset(tmp_path / "frames.npz", episodes=6, length=30)
    code = cli.main(["pretrain", "--objective", "byol", "--dataset", str(data), "--out", str(tmp_path / "enc"),
                     "--steps", "30", "--no-progress", "--set", "encoder=impala_debug", "--set", "batch_size=32",
                     *[a for s in SMALL["byol"] for a in ("--set", s)]])
    assert code == 0, capsys.readouterr().err
    meta, tensors = read_encoder_file(tmp_path / "enc")
    assert meta["objective"] == "byol" and meta["encoder"] == "impala_debug" and meta["obs_shape"] == [16, 16, 3]
    encoder = make_encoder(meta["encoder"], tuple(meta["obs_shape"]), 1, meta["state_dims"])
    encoder.load_state_dict(tensors)
    _, method, _, _ = load_run(tmp_path / "enc")
    frames = torch.as_tensor(np.load(data)["observations"][:64])
    assert torch.equal(encoder(frames), method.embed(frames))
    health = json.loads((tmp_path / "enc" / "encoder_health.json").read_text())
    assert health["probe_target"] == "qpos" and health["embed_dim"] == encoder.out_dim
    for key in ("rankme", "rankme_random_init", "probe_r2", "probe_r2_random_init"):
        assert np.isfinite(health[key])


def test_pretrain_errors_are_one_line(tmp_path, capsys):
    data = point_play_dataset(tmp_path / "point.npz", episodes=3)
    free = tmp_path / "free.npz"
    with np.load(data) as f:
        np.savez(free, **{k: f[k] for k in f.files if k != "actions"})
    cases = [
        (["pretrain", "--objective", "simclr", "--dataset", str(data), "--out", str(tmp_path / "a")],
         "unknown objective 'simclr'"),
        (["pretrain", "--dataset", str(data), "--out", str(tmp_path / "b")], "pretrain needs --objective"),
        (["pretrain", "--objective", "spr", "--dataset", str(free), "--out", str(tmp_path / "c"), "--steps", "2"],
         "field 'actions': missing"),
        (["train", "--method", "vicreg", "--dataset", str(data), "--out", str(tmp_path / "d")],
         "unknown method 'vicreg'"),
        (["pretrain", "--objective", "vicreg", "--dataset", str(data), "--out", str(tmp_path / "e"),
          "--set", "state_encoder_dims=0"], "state_encoder_dims"),
    ]
    for argv, expected in cases:
        assert cli.main(argv) != 0
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    # The objective's policy surface refuses in one line too.
    trained = trainer.new_run(settings("vicreg", tmp_path, data, 2, out="v", overrides=overrides("vicreg")), argv=["t"])
    _, method, _, _ = load_run(trained)
    with pytest.raises(UserError, match="pretrains an encoder and does not act"):
        method.act(torch.zeros(1, 2), torch.zeros(1, 2))


def test_pretrain_then_train_from_the_encoder_frozen(tmp_path, capsys):
    """The command line end to end: what `pretrain` writes, `train --encoder --freeze` reads, and
    the method's encoders end training with the pretrained weights bit for bit."""
    data = point_play_dataset(tmp_path / "point.npz", episodes=5)
    sets = [a for s in overrides("vicreg") for a in ("--set", s)]
    assert cli.main(["pretrain", "--objective", "vicreg", "--dataset", str(data), "--out", str(tmp_path / "enc"),
                     "--steps", "10", "--no-progress", *sets]) == 0, capsys.readouterr().err
    assert cli.main(["train", "--method", "gcbc", "--dataset", str(data), "--out", str(tmp_path / "gcbc"),
                     "--steps", "10", "--eval-episodes", "0", "--no-progress", "--set", "batch_size=32",
                     "--encoder", str(tmp_path / "enc"), "--freeze"]) == 0, capsys.readouterr().err
    _, tensors = read_encoder_file(tmp_path / "enc")
    _, method, _, _ = load_run(tmp_path / "gcbc")
    encoders = method.pretrained_encoders()
    assert len(encoders) == 2  # GCBC's actor: a state and a goal part
    for encoder in encoders:
        for k, v in encoder.state_dict().items():
            assert torch.equal(v, tensors[k]), k
