"""`--compile on`: the loss through torch.compile, the same training to float32 rounding, exact
resume, and a failed compilation that trains uncompiled and leaves no trace."""

import contextlib
import json

import pytest
import torch
from safetensors.torch import load_file

from autodidact.methods.gcbc import GCBC, GCBCConfig
from autodidact.methods.gcivl import GCIVL, GCIVLConfig
from autodidact.workflows import compiling
from autodidact.workflows import train as trainer
from pointenv import goal_batch, point_play_dataset, settings

TINY = ("batch_size=32", "actor_hidden_dims=32,32")
pytestmark = pytest.mark.slow  # compiling takes seconds per graph


def _weights(run, step):
    return load_file(run / "checkpoints" / f"step_{step:08d}" / "model.safetensors")


def test_compiled_run_matches_eager_and_resumes_exactly(tmp_path):
    data = point_play_dataset(tmp_path / "point.npz", episodes=5)
    kw = dict(overrides=TINY, checkpoint_every=10)
    eager = trainer.new_run(settings("gcbc", tmp_path, data, 20, out="eager", compile="off", **kw), argv=["x"])
    full = trainer.new_run(settings("gcbc", tmp_path, data, 20, out="full", compile="on", **kw), argv=["x"])
    assert json.loads((full / "run.json").read_text())["compile"] == "on"
    part = trainer.new_run(settings("gcbc", tmp_path, data, 10, out="part", compile="on", **kw), argv=["x"])
    trainer.resume_run(part, argv=["resume"], steps=20, progress=False)
    a, b, e = _weights(full, 20), _weights(part, 20), _weights(eager, 20)
    for k in a:
        assert torch.equal(a[k], b[k]), k                             # compiled resume: exact
        torch.testing.assert_close(a[k], e[k], rtol=1e-3, atol=1e-5)  # compiled vs eager: rounding only


def test_ensemble_method_compiles_and_matches_eager():
    """GCIVL (value-head ensembles, a Polyak target): the weights after three compiled updates
    match the eager ones to rounding."""
    cfg = GCIVLConfig(batch_size=16, actor_hidden_dims=(32, 32), value_hidden_dims=(32, 32))
    batch = goal_batch(n=16, obs_dim=2)
    methods = []
    for _ in range(2):
        torch.manual_seed(0)
        methods.append(GCIVL(cfg, (2,), 2))
    compiled, eager = methods
    logged = []
    assert compiling.compile_loss(compiled, batch, contextlib.nullcontext, logged.append), logged
    for _ in range(3):
        compiled.update(batch)
        eager.update(batch)
    for (k, a), b in zip(compiled.state_dict().items(), eager.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=k)


def test_failed_compilation_trains_uncompiled_and_leaves_no_trace(monkeypatch):
    torch.manual_seed(0)
    method = GCBC(GCBCConfig(batch_size=16, actor_hidden_dims=(8,)), (2,), 2)
    batch = {"observations": torch.randn(16, 2), "actor_goals": torch.randn(16, 2), "actions": torch.rand(16, 2)}
    before = {k: v.clone() for k, v in method.state_dict().items()}
    rng = torch.get_rng_state()

    def broken_compile(fn):
        def run(batch):
            fn(batch)
            torch.randn(3)      # RNG consumed: must be restored
            raise RuntimeError("no C++ compiler\nsecond line")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    logged = []
    assert not compiling.compile_loss(method, batch, contextlib.nullcontext, logged.append)
    assert logged == ["torch.compile failed (RuntimeError: no C++ compiler); training without compiling"]
    assert "loss" not in vars(method)  # the eager loss again
    for k, v in method.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert method.optimizer.state_dict()["state"] == {}
    assert torch.equal(torch.get_rng_state(), rng)
    method.update(batch)  # and it trains
