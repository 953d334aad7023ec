"""The oneDNN float32 dense layers (cpu_matmul.py) compute what torch's own layers compute:
outputs and all three gradients, plain and ensemble, and fall back where they should."""

import pytest
import torch
import torch.nn.functional as F

from autodidact import cpu_matmul

OP = cpu_matmul._checked_op()
pytestmark = pytest.mark.skipif(OP is None, reason="oneDNN linear operator unavailable")


@pytest.fixture(autouse=True)
def small_matmuls_on_onednn(monkeypatch):
    """These tests use small tensors; send them through oneDNN anyway (the thresholds are about
    speed), also on a CPU where the default leaves the layers on MKL."""
    monkeypatch.setitem(cpu_matmul._state, "op", OP)
    monkeypatch.setattr(cpu_matmul, "MIN_MACS", 1)
    monkeypatch.setattr(cpu_matmul, "MIN_FUNCTION_MACS", 1)


def _grads(fn, *tensors):
    tensors = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = fn(*tensors)
    # A weighted sum: the gradient reaching the layer is dense and non-uniform (the broadcast,
    # zero-stride case has its own test below).
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    return out.detach(), [t.grad for t in tensors]


@pytest.mark.parametrize("shape", [(128, 24), (4, 32, 24)])
def test_linear_matches_torch(shape):
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(*shape, generator=g), torch.randn(16, 24, generator=g), torch.randn(16, generator=g)
    out, grads = _grads(cpu_matmul.linear, x, w, b)
    ref_out, ref_grads = _grads(F.linear, x, w, b)
    torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-4)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("onednn", [True, False])
@pytest.mark.parametrize("out_dim", [16, 1])   # 1: the matrix-vector path when not on oneDNN
@pytest.mark.parametrize("shared", [True, False])
def test_ensemble_members_match_baddbmm(out_dim, shared, onednn, monkeypatch):
    if not onednn:
        monkeypatch.setattr(cpu_matmul, "MIN_MACS", 1 << 40)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(128, 24, generator=g) if shared else torch.randn(2, 128, 24, generator=g)
    w, b = torch.randn(2, 24, out_dim, generator=g), torch.randn(2, 1, out_dim, generator=g)
    stacked = lambda x: x.unsqueeze(0).expand(2, *x.shape) if shared else x
    members = lambda x: [x, x] if shared else list(x.unbind(0))
    out, grads = _grads(lambda x, w, b: torch.stack(cpu_matmul.ensemble_members(members(x), w, b)), x, w, b)
    ref_out, ref_grads = _grads(lambda x, w, b: torch.baddbmm(b, stacked(x), w), x, w, b)
    torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-4)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_ensemble_members_under_autocast_match_baddbmm(monkeypatch):
    monkeypatch.setattr(cpu_matmul, "MIN_MACS", 1 << 40)  # bf16: torch's own kernels either way
    g = torch.Generator().manual_seed(2)
    x, w, b = torch.randn(64, 32, generator=g), torch.randn(2, 32, 8, generator=g), torch.randn(2, 1, 8, generator=g)

    def run(fn):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return _grads(fn, x, w, b)

    out, grads = run(lambda x, w, b: torch.stack(cpu_matmul.ensemble_members([x, x], w, b)))
    ref_out, ref_grads = run(lambda x, w, b: torch.baddbmm(b, x.unsqueeze(0).expand(2, *x.shape), w))
    assert out.dtype == ref_out.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref_out, rtol=2e-2, atol=2e-2)
    for got, want in zip(grads, ref_grads):
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want, rtol=3e-2, atol=3e-2)


def test_broadcast_gradient():
    x, w = torch.randn(128, 24), torch.randn(16, 24, requires_grad=True)
    cpu_matmul.linear(x, w).mean().backward()  # d(mean)/d(out) is an expanded (zero-stride) tensor
    torch.testing.assert_close(w.grad, x.mean(0).expand(16, 24) / 16, rtol=1e-4, atol=1e-6)


def _onednn_calls(monkeypatch):
    calls, call = [], cpu_matmul._onednn
    monkeypatch.setattr(cpu_matmul, "_onednn", lambda *a: calls.append(a) or call(*a))
    return calls


def test_small_matmuls_bf16_and_sliced_weights_take_torchs_path(monkeypatch):
    monkeypatch.setattr(cpu_matmul, "MIN_MACS", 128 * 24 * 16)
    calls = _onednn_calls(monkeypatch)
    w = torch.randn(16, 24)
    cpu_matmul.linear(torch.randn(127, 24), w)                             # below MIN_MACS
    sliced = torch.randn(16, 48)[:, :24].requires_grad_()                  # gapped weight
    cpu_matmul.linear(torch.randn(128, 24), sliced).sum().backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cpu_matmul.linear(torch.randn(128, 24), w)                         # autocast: bf16 matmul
    cpu_matmul.linear(torch.randn(128, 24, dtype=torch.float64), w.double())
    assert calls == []
    cpu_matmul.linear(torch.randn(128, 24), w)
    assert len(calls) == 1


def test_narrow_input_weight_gradient_orientation():
    """A layer with fewer inputs than outputs computes its weight gradient as (x^T grad)^T."""
    g = torch.Generator().manual_seed(2)
    x, w, b = torch.randn(256, 4, generator=g), torch.randn(64, 4, generator=g), torch.randn(64, generator=g)
    out, grads = _grads(cpu_matmul.linear, x, w, b)
    ref_out, ref_grads = _grads(F.linear, x, w, b)
    torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-4)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(cpu_matmul._mm_t(x, x @ w.t()), x.t() @ (x @ w.t()))


def test_compiled_layers_match_eager():
    """Under torch.compile the layers run as the `autodidact::onednn_linear` operator (the weight
    gradient through oneDNN as well); outputs and gradients agree with torch's own layers."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(64, 8, generator=g)
    w1, b1 = torch.randn(32, 8, generator=g), torch.randn(32, generator=g)
    w2, b2 = torch.randn(32, 32, generator=g), torch.randn(32, generator=g)

    def net(lin, x, w1, b1, w2, b2):
        return lin(F.gelu(lin(x, w1, b1)), w2, b2)

    torch._dynamo.reset()
    compiled = torch.compile(lambda *t: net(cpu_matmul.linear, *t), fullgraph=True)
    out, grads = _grads(compiled, x, w1, b1, w2, b2)
    ref_out, ref_grads = _grads(lambda *t: net(F.linear, *t), x, w1, b1, w2, b2)
    torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-4)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_flop_formula_counts_the_onednn_calls():
    from torch.utils.flop_counter import FlopCounterMode
    x, w = torch.randn(128, 24), torch.randn(16, 24, requires_grad=True)
    counter = FlopCounterMode(display=False, custom_mapping=cpu_matmul.flop_formulas())
    with counter:
        cpu_matmul.linear(x, w).sum().backward()
    assert counter.get_total_flops() == 2 * (2 * 128 * 24 * 16)  # forward + weight gradient


def test_native_setting_turns_it_off(monkeypatch):
    monkeypatch.setattr(cpu_matmul, "_state", {})
    monkeypatch.setenv("AUTODIDACT_CPU_MATMUL", "native")
    assert not cpu_matmul.active()
    monkeypatch.setattr(cpu_matmul, "_state", {})
    monkeypatch.setenv("AUTODIDACT_CPU_MATMUL", "mkl")
    with pytest.raises(ValueError, match="AUTODIDACT_CPU_MATMUL"):
        cpu_matmul.active()


@pytest.mark.parametrize("setting", ["auto", None, "onednn"])
def test_auto_leaves_intel_cpus_on_mkl(setting, monkeypatch):
    """MKL was the faster kernel on the Intel CPU measured, oneDNN on the AMD ones."""
    if setting is None:
        monkeypatch.delenv("AUTODIDACT_CPU_MATMUL", raising=False)
    else:
        monkeypatch.setenv("AUTODIDACT_CPU_MATMUL", setting)
    for vendor, onednn in [("GenuineIntel", setting == "onednn"), ("AuthenticAMD", True), ("", True)]:
        monkeypatch.setattr(cpu_matmul, "_state", {})
        monkeypatch.setattr(cpu_matmul, "cpu_vendor", lambda: vendor)
        assert cpu_matmul.active() == onednn, vendor
        assert cpu_matmul.kernel() == ("onednn" if onednn else "mkl")
