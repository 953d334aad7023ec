"""ICVF: a representation learned from observations alone, and GCIVL's value network started from it."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from autodidact import cli
from autodidact.core.config import apply_overrides
from autodidact.data.dataset import Dataset
from autodidact.data.labels import hide_actions
from autodidact.methods.icvf import ICVF, ICVFConfig
from autodidact.workflows.runs import load_run
from autodidact.workflows.runtime import to_tensors
from pointenv import point_frames_dataset, point_play_dataset

SMALL = ["hidden_dims=64,64", "lr=1e-3", "discount=0.9"]
GCIVL_TINY = ["--set", "batch_size=16", "--set", "value_hidden_dims=16,16", "--set", "actor_hidden_dims=16,16"]


def _run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def point(tmp_path_factory):
    d = tmp_path_factory.mktemp("icvf")
    return point_play_dataset(d / "point.npz", episodes=30, length=40)


def _rank_agreement(icvf, rng):
    """Mean Spearman correlation, over random intents z, between V(s, z, z) and -|s - z|."""
    rhos = []
    for _ in range(10):
        z = np.repeat(rng.uniform(-1, 1, (1, 2)), 200, 0).astype(np.float32)
        s = rng.uniform(-1, 1, (200, 2)).astype(np.float32)
        v = icvf.values(torch.as_tensor(s), torch.as_tensor(z), torch.as_tensor(z)).numpy()
        rank_v, rank_near = np.argsort(np.argsort(v)), np.argsort(np.argsort(-np.linalg.norm(s - z, axis=1)))
        rhos.append(np.corrcoef(rank_v, rank_near)[0, 1])
    return float(np.mean(rhos))


def test_icvf_values_states_nearer_the_intended_outcome_higher(point):
    # Actions are hidden: ICVF never reads them.
    ds = hide_actions(Dataset.load(point), 0.0)
    torch.manual_seed(0)
    icvf = ICVF(apply_overrides(ICVFConfig(), SMALL), (2,))
    untrained = _rank_agreement(icvf, np.random.default_rng(1))
    sampler = icvf.make_sampler(ds, seed=0)
    for _ in range(500):
        info = icvf.update(to_tensors(sampler.sample(128), "cpu"))
    trained = _rank_agreement(icvf, np.random.default_rng(1))
    assert trained > 0.9 and trained > untrained + 0.3, (trained, untrained)
    assert info["icvf/v_zz"] < -0.3  # values spread below 0 towards -(steps to go)


def test_representation_is_the_first_head_of_the_ensemble():
    torch.manual_seed(0)
    icvf = ICVF(apply_overrides(ICVFConfig(), ["hidden_dims=8,8", "layer_norm=true"]), (3,))
    with torch.no_grad():
        for p in icvf.value.parameters():
            p.add_(0.1 * torch.randn_like(p))  # LayerNorm scales away from 1, biases away from 0
    x = torch.randn(5, 3)
    reps = icvf.representations()
    with torch.no_grad():
        assert torch.allclose(reps["phi"](x), icvf.value.phi(icvf.value.encoder(x))[0], atol=1e-6)
        assert torch.allclose(reps["psi"](x), icvf.value.psi(icvf.value.encoder(x))[0], atol=1e-6)


def test_icvf_command_then_gcivl_starts_from_it_frozen_or_fine_tuned(point, tmp_path, capsys):
    hide_actions(Dataset.load(point), 0.0).save(tmp_path / "free.npz")
    rep = tmp_path / "icvf.safetensors"
    code, out, err = _run(capsys, "icvf", tmp_path / "free.npz", "--out", rep, "--steps", "20", "--no-progress",
                          "--set", "hidden_dims=32,16", "--set", "batch_size=32")
    assert code == 0, err
    assert "wrote" in out and "--set icvf=" in out
    saved = load_file(rep)
    for frozen in ("true", "false"):
        run = tmp_path / f"run-{frozen}"
        code, _, err = _run(capsys, "train", "--method", "gcivl", "--dataset", point, "--out", run, "--steps", "5",
                            "--eval-episodes", "0", "--no-progress", "--set", f"icvf={rep}",
                            "--set", f"icvf_frozen={frozen}", *GCIVL_TINY)
        assert code == 0, err
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["icvf_hidden_dims"] == [32, 16] and cfg["icvf_layer_norm"] is False
        _, method, _, step = load_run(run)  # rebuilt from the run alone
        assert step == 5
        phi = method.value.encoder.state.mlp.net[0].weight
        assert torch.equal(phi, saved["phi.mlp.net.0.weight"]) == (frozen == "true")
        target_psi = method.target_value.encoder.goal.mlp.net[0].weight
        assert torch.allclose(target_psi, saved["psi.mlp.net.0.weight"], atol=1e-2)  # Polyak from the file's


def test_bad_icvf_file_is_one_line(point, tmp_path, capsys):
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    for path in (tmp_path / "bad.safetensors", tmp_path / "missing.safetensors"):
        code, _, err = _run(capsys, "train", "--method", "gcivl", "--dataset", point, "--out", tmp_path / "run",
                            "--steps", "2", "--set", f"icvf={path}", *GCIVL_TINY)
        assert code == 2 and err.count("\n") == 1, err
        assert not (tmp_path / "run").exists()


def test_icvf_on_frames_starts_gcivl_encoders(tmp_path, capsys):
    frames = point_frames_dataset(tmp_path / "frames.npz", episodes=3, length=10)
    rep = tmp_path / "icvf.safetensors"
    code, _, err = _run(capsys, "icvf", frames, "--out", rep, "--steps", "2", "--no-progress",
                        "--set", "encoder=impala_debug", "--set", "hidden_dims=8", "--set", "batch_size=4")
    assert code == 0, err
    common = ["train", "--method", "gcivl", "--dataset", frames, "--steps", "2", "--eval-episodes", "0",
              "--no-progress", "--set", f"icvf={rep}", *GCIVL_TINY]
    code, _, err = _run(capsys, *common, "--out", tmp_path / "wrong", "--set", "encoder=impala_small")
    assert code == 2 and err.count("\n") == 1 and "encoder" in err, err
    code, _, err = _run(capsys, *common, "--out", tmp_path / "run", "--set", "encoder=impala_debug",
                        "--set", "icvf_frozen=true")
    assert code == 0, err
    _, method, _, _ = load_run(tmp_path / "run")
    conv = "encoder.stacks.0.conv.weight"
    assert torch.equal(method.value.encoder.state.encoder.stacks[0].conv.weight, load_file(rep)[f"phi.{conv}"])
