"""A plain GELU MLP run as one autograd function (autodidact.fused) computes what the layer-by-layer
network computes: outputs and every gradient."""

import pytest
import torch

from autodidact import cpu_matmul, fused, native
from autodidact.nn import MLP, GaussianActor

pytestmark = pytest.mark.skipif(native.kernel() is None, reason="no compiled GELU kernel here")


def _run(net, x, fuse, monkeypatch):
    monkeypatch.setattr(fused, "eligible", lambda mlp, inp: fuse and not mlp.ensemble and mlp.fusable)
    net.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(x.requires_grad)
    out = net(x)
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    grads = [None if p.grad is None else p.grad.clone() for p in net.parameters()]
    return out.detach(), x.grad, grads


def _same(a, b, tol):
    torch.testing.assert_close(a[0], b[0], rtol=tol, atol=tol)
    if a[1] is None:
        assert b[1] is None
    else:
        torch.testing.assert_close(a[1], b[1], rtol=tol, atol=tol)
    for got, want in zip(a[2], b[2]):
        assert (got is None) == (want is None)
        if got is not None:
            torch.testing.assert_close(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("activate_final", [False, True])
@pytest.mark.parametrize("x_shape,input_grad", [((40, 6), False), ((40, 6), True), ((3, 5, 6), True)])
def test_small_networks_agree(activate_final, x_shape, input_grad, monkeypatch):
    torch.manual_seed(0)
    net = MLP(6, (32, 16, 24), out_dim=None if activate_final else 3, activate_final=activate_final)
    x = torch.randn(*x_shape).requires_grad_(input_grad)
    got = _run(net, x, True, monkeypatch)
    want = _run(net, x, False, monkeypatch)
    _same(got, want, 1e-5)


def test_published_size_with_onednn_products_agrees(monkeypatch):
    """1024 rows and 512-wide layers: the products go through oneDNN, the GELU derivative inside
    the input-gradient product (the "mul" post-op), also where the default leaves them on MKL."""
    op = cpu_matmul._checked_op()
    if op is None:
        pytest.skip("oneDNN linear operator unavailable")
    monkeypatch.setitem(cpu_matmul._state, "op", op)
    torch.manual_seed(0)
    actor = GaussianActor(8, 2, (512, 512, 512))
    x = torch.randn(1024, 8, requires_grad=True)

    def run(fuse):
        monkeypatch.setattr(fused, "eligible", lambda mlp, inp: fuse and mlp.fusable)
        actor.zero_grad(set_to_none=True)
        xx = x.detach().clone().requires_grad_(True)
        mean, _ = actor(xx)
        (mean * torch.linspace(-1, 1, mean.numel()).reshape(mean.shape)).sum().backward()
        return mean.detach(), xx.grad, [p.grad.clone() for p in actor.parameters()]

    _same(run(True), run(False), 2e-4)


@pytest.mark.parametrize("const_std", [True, False])
def test_actor_with_its_mean_layer_in_the_function_agrees(const_std, monkeypatch):
    torch.manual_seed(0)
    actor = GaussianActor(6, 3, (32, 16), const_std=const_std)
    x = torch.randn(40, 6)

    def run(fuse):
        monkeypatch.setattr(fused, "eligible", lambda mlp, inp: fuse and mlp.fusable)
        actor.zero_grad(set_to_none=True)
        mean, log_std = actor(x)
        assert (type(mean.grad_fn).__name__ == "_GeluMLPBackward") == fuse
        (mean * torch.linspace(-1, 1, mean.numel()).reshape(mean.shape) + log_std).sum().backward()
        return mean.detach(), None, [p.grad.clone() for p in actor.parameters()]

    _same(run(True), run(False), 1e-5)


def test_state_dependent_std_keeps_the_mean_layer_separate():
    torch.manual_seed(0)
    x = torch.randn(10, 6)
    mean, log_std = GaussianActor(6, 2, (16, 16), state_dependent_std=True)(x)
    assert type(mean.grad_fn).__name__ != "_GeluMLPBackward"
    mean, _ = GaussianActor(6, 2, (16, 16))(x)
    assert type(mean.grad_fn).__name__ == "_GeluMLPBackward"


def test_frozen_parameters_get_no_gradient(monkeypatch):
    torch.manual_seed(0)
    net = MLP(6, (32, 32), out_dim=2)
    for p in list(net.parameters())[:2]:  # the first layer frozen
        p.requires_grad_(False)
    x = torch.randn(10, 6)
    got = _run(net, x, True, monkeypatch)
    want = _run(net, x, False, monkeypatch)
    assert got[2][0] is None and got[2][1] is None
    _same(got, want, 1e-5)


def test_used_where_it_applies_and_not_elsewhere():
    torch.manual_seed(0)
    x = torch.randn(10, 6)
    assert type(MLP(6, (16, 16), 2)(x).grad_fn).__name__ == "_GeluMLPBackward"
    assert type(MLP(6, (16, 16), 2, layer_norm=True)(x).grad_fn).__name__ != "_GeluMLPBackward"
    assert type(MLP(6, (16, 16), 2, activation="relu")(x).grad_fn).__name__ != "_GeluMLPBackward"
    assert type(MLP(6, (16, 16), 2, ensemble=2)(x).grad_fn).__name__ != "_GeluMLPBackward"
    with torch.no_grad():
        assert MLP(6, (16, 16), 2)(x).grad_fn is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert type(MLP(6, (16, 16), 2)(x).grad_fn).__name__ != "_GeluMLPBackward"


def test_flop_count_of_a_fused_network(monkeypatch):
    """bench's FLOP count sees every product, the oneDNN ones with the derivative post-op included."""
    from torch.utils.flop_counter import FlopCounterMode
    monkeypatch.setattr(cpu_matmul, "MIN_MACS", 1)  # every product through oneDNN
    torch.manual_seed(0)
    net, x = MLP(8, (32, 32), out_dim=4), torch.randn(64, 8)
    counter = FlopCounterMode(display=False, custom_mapping=cpu_matmul.flop_formulas())
    with counter:
        out = net(x)
        assert type(out.grad_fn).__name__ == "_GeluMLPBackward"
        out.sum().backward()
    forward = 2 * 64 * (8 * 32 + 32 * 32 + 32 * 4)
    input_grads = 2 * 64 * (32 * 32 + 32 * 4)  # none for the network's input
    assert counter.get_total_flops() == 2 * forward + input_grads
