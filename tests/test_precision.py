"""bfloat16 mixed precision (`--precision bf16`): matmuls in bfloat16, everything that holds
state or feeds a loss in float32, and learning no worse than float32 on the point world."""

import json

import numpy as np
import pytest
import torch

from autodidact.workflows.runs import load_run
from autodidact.workflows import runtime
from autodidact.workflows import train as trainer
from autodidact.core.errors import UserError
from autodidact.methods.base import GoalPolicy
from autodidact.nn import MLP, Flat, GaussianActor, GCEncoder, GCValue
from pointenv import point_play_dataset, rollout_success, settings


def test_hidden_layers_bf16_outputs_float32():
    torch.manual_seed(0)
    x = torch.randn(8, 5)
    value = GCValue(GCEncoder(state=Flat((5,))), (16, 16), ensemble=2)
    actor = GaussianActor(5, 2, (16, 16))
    trunk = MLP(5, (16, 16), activate_final=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v = value(x)
        mean, _ = actor(x)
        h = trunk(x)
    assert h.dtype == torch.bfloat16              # hidden layers do run in bfloat16 ...
    assert v.dtype == torch.float32 and mean.dtype == torch.float32  # ... output layers do not
    # Close to the float32 result (bfloat16 keeps ~3 significant digits in the hidden layers).
    assert torch.allclose(v, value(x), atol=5e-2)
    # A value of -50 keeps its float32 resolution: the output layer runs in float32.
    with torch.no_grad():
        value.net.net[-1].bias.fill_(-50.0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            big = value(x)
    assert (big - value(x)).abs().max() < 5e-2
    assert not torch.all(big == big.round())  # bfloat16 would round -50.x to a multiple of 0.25


@pytest.mark.slow
@pytest.mark.parametrize("method, overrides", [
    ("gcbc", ["batch_size=128", "actor_hidden_dims=64,64", "lr=1e-3"]),
    ("gcivl", ["batch_size=128", "actor_hidden_dims=64,64", "value_hidden_dims=64,64", "lr=1e-3", "alpha=3.0"]),
])
def test_bf16_learns_as_well_as_float32_and_keeps_float32_state(tmp_path, method, overrides):
    data = point_play_dataset(tmp_path / "point.npz")
    success = {}
    for precision in ("float32", "bf16"):
        run = trainer.new_run(settings(method, tmp_path, data, 500, out=precision, overrides=overrides,
                                       precision=precision), argv=["test"])
        assert json.loads((run / "run.json").read_text())["precision"] == precision
        _, trained, _, _ = load_run(run)
        assert all(p.dtype == torch.float32 for p in trained.parameters())
        success[precision] = rollout_success(GoalPolicy(trained).act)
    random = rollout_success(lambda s, g: np.random.default_rng(0).uniform(-1, 1, s.shape))
    assert success["bf16"] > random + 0.3
    assert success["bf16"] >= success["float32"] - 0.1, success


def test_bf16_resume_matches_uninterrupted(tmp_path):
    from safetensors.torch import load_file
    data = point_play_dataset(tmp_path / "point.npz", episodes=5)
    kw = dict(overrides=["batch_size=32", "value_hidden_dims=16,16", "actor_hidden_dims=16,16"],
              checkpoint_every=10, precision="bf16")
    full = trainer.new_run(settings("gcivl", tmp_path, data, 20, out="full", **kw), argv=["x"])
    part = trainer.new_run(settings("gcivl", tmp_path, data, 10, out="part", **kw), argv=["x"])
    trainer.resume_run(part, argv=["resume"], steps=20, progress=False)
    a, b = (load_file(r / "checkpoints" / "step_00000020" / "model.safetensors") for r in (full, part))
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_unknown_precision_is_one_line_error(tmp_path):
    data = point_play_dataset(tmp_path / "point.npz", episodes=2)
    with pytest.raises(UserError, match="--precision must be one of float32, bf16"):
        trainer.new_run(settings("gcbc", tmp_path, data, 5, precision="fp8"), argv=["x"])


def test_emulated_bf16_is_warned_about_once_per_start(tmp_path, monkeypatch, capsys):
    data = point_play_dataset(tmp_path / "point.npz", episodes=2)
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime.platform, "machine", lambda: "x86_64")
    for native in (False, True):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        assert runtime.native_bf16(cpu) is native
        assert runtime.precision_warning(cpu, "float32") is None
        trainer.new_run(settings("gcbc", tmp_path, data, 2, out=f"native{native}", precision="bf16"), argv=["x"])
        warnings = [line for line in capsys.readouterr().err.splitlines() if "emulated" in line]
        if native:
            assert warnings == []
        else:
            assert len(warnings) == 1 and warnings[0].startswith("warning: --precision bf16 is emulated here")
            assert "use --precision float32" in warnings[0]
