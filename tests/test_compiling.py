"""`--compile`: when the update is compiled, that a compiled run trains as the eager one does and
resumes exactly, and that a failed compilation leaves no trace."""

import contextlib
import json

import pytest
import torch

from autodidact import compiling, cpu_matmul, trainer
from autodidact.errors import UserError
from autodidact.methods.gcbc import GCBC, GCBCConfig
from autodidact.methods.gcivl import GCIVL, GCIVLConfig
from pointenv import goal_batch, point_play_dataset, settings

TINY = ["batch_size=64", "actor_hidden_dims=32,32", "lr=1e-3"]


def test_auto_compiles_only_where_it_was_measured_to_pay(monkeypatch):
    monkeypatch.setattr(compiling, "_cxx_compiler", lambda: "/usr/bin/g++")
    monkeypatch.setattr(compiling, "_cpu_isa", lambda: "AVX512")
    published = GCBC(GCBCConfig(), (2,), 2)                       # batch 1024, 3x512
    tiny = GCBC(GCBCConfig(batch_size=64, actor_hidden_dims=(32, 32)), (2,), 2)
    gcivl = GCIVL(GCIVLConfig(), (2,), 2)
    cpu = torch.device("cpu")
    assert compiling.decide("auto", published, cpu, "float32")[0] == cpu_matmul.active()
    monkeypatch.setattr(cpu_matmul, "active", lambda: True)
    assert compiling.decide("auto", published, cpu, "float32") == (True, "auto: gcbc on CPU, float32")
    assert compiling.decide("auto", tiny, cpu, "float32") == (False, "auto: layers too small to gain from compiling")
    assert not compiling.decide("auto", gcivl, cpu, "float32")[0]
    assert not compiling.decide("auto", published, cpu, "bf16")[0]
    assert not compiling.decide("auto", published, torch.device("cuda"), "float32")[0]
    assert compiling.decide("on", tiny, cpu, "bf16")[0] and not compiling.decide("off", published, cpu, "float32")[0]
    monkeypatch.setattr(compiling, "_cpu_isa", lambda: "AVX2")
    assert compiling.decide("auto", published, cpu, "float32") == (
        False, "auto: compiling was measured to pay only with AVX-512 (this CPU: AVX2)")
    assert compiling.decide("on", published, cpu, "float32")[0]
    monkeypatch.setattr(compiling, "_cpu_isa", lambda: "AVX512")
    monkeypatch.setattr(compiling, "_cxx_compiler", lambda: None)
    assert compiling.decide("auto", published, cpu, "float32")[0] is False
    monkeypatch.setattr(compiling, "_cxx_compiler", lambda: "/usr/bin/g++")
    monkeypatch.setattr(cpu_matmul, "active", lambda: False)  # MKL layers (an Intel CPU)
    assert compiling.decide("auto", published, cpu, "float32") == (
        False, "auto: compiling was measured to pay only with oneDNN layers (here: mkl)")
    with pytest.raises(UserError, match="--compile must be one of auto, on, off"):
        compiling.decide("fast", tiny, cpu, "float32")


def _weights(run, step):
    from safetensors.torch import load_file
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
        assert torch.equal(a[k], b[k]), k                        # compiled resume: exact
        torch.testing.assert_close(a[k], e[k], rtol=1e-3, atol=1e-5)  # compiled vs eager: rounding only


def test_ensemble_method_compiles_and_matches_eager():
    """`--compile on` for a method with ensembles (GCIVL's value heads): its update compiles, and
    the weights after three updates match the eager ones to rounding."""
    cfg = GCIVLConfig(batch_size=16, actor_hidden_dims=(32, 32), value_hidden_dims=(32, 32))
    batch = goal_batch(n=16, obs_dim=2)
    methods = []
    for _ in range(2):
        torch.manual_seed(0)
        methods.append(GCIVL(cfg, (2,), 2))
    compiled, eager = methods
    logged = []
    update = compiling.compiled_update(compiled, batch, contextlib.nullcontext, logged.append)
    assert update != compiled.update, logged
    for _ in range(3):
        update(batch)
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
            fn(batch)           # a step taken before the failure: must be undone
            torch.randn(3)      # RNG consumed: must be restored
            raise RuntimeError("no C++ compiler\nsecond line")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    logged = []
    fn = compiling.compiled_update(method, batch, contextlib.nullcontext, logged.append)
    assert fn == method.update
    assert logged == ["torch.compile failed (RuntimeError: no C++ compiler); training without compiling"]
    for k, v in method.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert method.opt.state_dict()["state"] == {}
    assert torch.equal(torch.get_rng_state(), rng)


def test_importing_the_methods_does_not_load_the_compiler():
    """The compiler costs ~1.7 s to import; `eager` marks functions only when something compiles."""
    import subprocess
    import sys
    code = "import sys, autodidact.methods.gcbc, autodidact.nn; print('torch._dynamo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bench_reports_a_failed_compilation_as_uncompiled(tmp_path, monkeypatch):
    from autodidact.bench import bench

    def broken_compile(fn):
        def run(batch):
            raise RuntimeError("no C++ compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    data = point_play_dataset(tmp_path / "point.npz", episodes=5)
    logged = []
    result = bench("gcbc", data, steps=2, warmup=1, overrides=TINY, compile_mode="on", log=logged.append)
    assert result["compiled"] is False and result["compile_reason"] == "--compile on"
    assert logged[-1].startswith("torch.compile failed (RuntimeError: no C++ compiler)")
