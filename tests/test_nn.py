"""Ensemble networks: the stacked ensemble computes exactly what its members would, each run on its
own with plain torch; output layers stay float32 under autocast (nn.layers' note)."""

import pytest
import torch
import torch.nn.functional as F

from autodidact.nn import MLP, EnsembleLayerNorm, EnsembleLinear


def _member_forward(mlp, e, x):
    """Member `e` of `mlp` run alone with plain torch functions on x [..., in]."""
    h = x
    for layer in mlp.net:
        if isinstance(layer, EnsembleLinear):
            h = F.linear(h, layer.weight[e].t(), layer.bias[e, 0])
        elif isinstance(layer, EnsembleLayerNorm):
            h = F.layer_norm(h, h.shape[-1:], layer.weight[e], layer.bias[e], layer.eps)
        else:  # the activation
            h = layer(h)
    return h


def _grads(mlp, x, forward):
    mlp.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    out = forward(x)
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    return out.detach(), x.grad, [p.grad.clone() for p in mlp.parameters()]


@pytest.mark.parametrize("layer_norm", [True, False])
@pytest.mark.parametrize("x_shape", [(32, 5), (3, 32, 5), (3, 4, 8, 5)])  # shared; per member; extra dim
def test_stacked_ensemble_equals_each_member_run_alone(layer_norm, x_shape):
    torch.manual_seed(0)
    mlp = MLP(5, (16, 16), out_dim=1, layer_norm=layer_norm, ensemble=3)
    with torch.no_grad():  # LayerNorm parameters away from their initial 1 and 0
        for p in mlp.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(*x_shape)
    shared = len(x_shape) == 2

    def members(x):
        return torch.stack([_member_forward(mlp, e, x if shared else x[e]) for e in range(3)])

    stacked = _grads(mlp, x, mlp)
    alone = _grads(mlp, x, members)
    lead = x_shape[:-1] if shared else x_shape[1:-1]
    assert stacked[0].shape == alone[0].shape == (3, *lead, 1)
    torch.testing.assert_close(stacked[0], alone[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(stacked[1], alone[1], rtol=1e-5, atol=1e-5)
    for got, want in zip(stacked[2], alone[2]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_members_are_independent():
    """Each member's weights (LayerNorms included) only change its own output."""
    torch.manual_seed(0)
    mlp = MLP(5, (16, 16), out_dim=1, layer_norm=True, ensemble=3)
    x = torch.randn(8, 5)
    before = mlp(x).detach()
    with torch.no_grad():
        for p in mlp.parameters():
            p[1].add_(0.5)
    after = mlp(x).detach()
    assert torch.equal(before[0], after[0]) and torch.equal(before[2], after[2])
    assert not torch.equal(before[1], after[1])


def test_stacked_ensemble_output_layer_stays_float32_under_autocast():
    torch.manual_seed(0)
    mlp = MLP(5, (16, 16), out_dim=1, ensemble=2)
    x = torch.randn(8, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mlp(x)
        hidden = MLP(5, (16, 16), ensemble=2)(x)
    assert out.dtype == torch.float32
    assert hidden.dtype == torch.bfloat16  # the hidden layers do run in bfloat16
    torch.testing.assert_close(out, mlp(x), atol=5e-2, rtol=5e-2)


def test_wrong_number_of_members_is_rejected():
    with pytest.raises(ValueError, match="an ensemble of 2"):
        MLP(5, (16,), out_dim=1, ensemble=2)(torch.randn(3, 8, 5))
