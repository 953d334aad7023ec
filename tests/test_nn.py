"""Ensemble networks compute the same thing however their members are run (nn.MLP's note)."""

import pytest
import torch

from autodidact.nn import MLP


def _run(mlp, x, max_macs, monkeypatch):
    monkeypatch.setattr(MLP, "STACKED_MAX_MACS", max_macs)
    mlp.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    out = mlp(x)
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    return out.detach(), x.grad, [p.grad.clone() for p in mlp.parameters()]


@pytest.mark.parametrize("layer_norm", [True, False])
@pytest.mark.parametrize("x_shape", [(32, 5), (3, 32, 5), (3, 4, 8, 5)])  # shared; per member; extra dim
def test_stacked_and_member_by_member_ensembles_agree(layer_norm, x_shape, monkeypatch):
    torch.manual_seed(0)
    mlp = MLP(5, (16, 16), out_dim=1, layer_norm=layer_norm, ensemble=3)
    with torch.no_grad():  # LayerNorm parameters away from their initial 1 and 0
        for p in mlp.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(*x_shape)
    stacked = _run(mlp, x, 1 << 40, monkeypatch)
    members = _run(mlp, x, 0, monkeypatch)
    lead = x_shape[:-1] if len(x_shape) == 2 else x_shape[1:-1]
    assert stacked[0].shape == members[0].shape == (3, *lead, 1)
    torch.testing.assert_close(stacked[0], members[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(stacked[1], members[1], rtol=1e-5, atol=1e-5)
    for got, want in zip(stacked[2], members[2]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_stacked_ensemble_output_layer_stays_float32_under_autocast(monkeypatch):
    monkeypatch.setattr(MLP, "STACKED_MAX_MACS", 1 << 40)
    mlp = MLP(5, (16, 16), out_dim=1, ensemble=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert mlp(torch.randn(8, 5)).dtype == torch.float32


def test_wrong_number_of_members_is_rejected():
    with pytest.raises(ValueError, match="an ensemble of 2"):
        MLP(5, (16,), out_dim=1, ensemble=2)(torch.randn(3, 8, 5))
