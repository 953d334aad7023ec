"""QRL: the IQE against the reference's formulation, the quasimetric's properties, its config checks
and variants. The generic checks (update, learning on the point world, resume, presets, listing)
are in test_methods.py."""

import pytest
import torch

from autodidact.methods.qrl import QRL, iqe_components


def reference_iqe(x, y, k):
    """OGBench's GCIQEValue component computation, transcribed: sort all 2k endpoints and count
    open intervals with a cumulative sum; differentiated by autograd."""
    x, y = x.unflatten(-1, (-1, k)), y.unflatten(-1, (-1, k))
    valid = x < y
    xy = torch.cat(torch.broadcast_tensors(x, y), -1)
    sxy, ixy = xy.sort(-1)
    neg_inc = torch.gather(valid, -1, ixy % k) * torch.where(ixy < k, -1, 1)
    neg_f = -1.0 * (neg_inc.cumsum(-1) < 0)
    neg_incf = torch.cat([neg_f[..., :1], neg_f[..., 1:] - neg_f[..., :-1]], -1)
    return (sxy * neg_incf).sum(-1)


def test_iqe_matches_reference_values_and_gradients():
    torch.manual_seed(0)
    x = torch.randn(300, 64, requires_grad=True)
    y = torch.randn(300, 64, requires_grad=True)
    w = torch.randn(300, 8)
    ours = iqe_components(x, y, 8)
    ref = reference_iqe(x, y, 8)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    g_ours = torch.autograd.grad((ours * w).sum(), (x, y))
    g_ref = torch.autograd.grad((ref * w).sum(), (x, y))
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b)
    # Hand-checked unions: overlapping, nested, disjoint, empty (x >= y) intervals.
    x = torch.tensor([[0.0, 1.0, 5.0, 3.0]])
    y = torch.tensor([[2.0, 3.0, 6.0, 1.0]])
    assert iqe_components(x, y, 4).item() == pytest.approx(4.0)  # [0,3] U [5,6]
    x = torch.tensor([[0.0, 1.0]]); y = torch.tensor([[4.0, 2.0]])
    assert iqe_components(x, y, 2).item() == pytest.approx(4.0)  # nested
    assert iqe_components(y, x, 2).item() == 0.0                   # reversed: every interval empty


def test_quasimetric_properties():
    torch.manual_seed(1)
    m = QRL(QRL.Config(value_hidden_dims=(32,), latent_dim=32, actor_hidden_dims=(8,)), (3,), 2)
    a, b, c = (m.phi(torch.randn(64, 3)) for _ in range(3))
    dab, dbc, dac = m.distance(a, b), m.distance(b, c), m.distance(a, c)
    assert torch.all(m.distance(a, a) == 0)
    assert torch.all(dab >= 0)
    assert torch.all(dac <= dab + dbc + 1e-5)            # triangle inequality
    assert not torch.allclose(dab, m.distance(b, a))      # asymmetric in general


def test_config_errors_are_one_line():
    from autodidact.core.errors import UserError
    with pytest.raises(UserError, match="latent_dim.*multiple of dim_per_component"):
        QRL.Config(latent_dim=100)
    with pytest.raises(UserError, match="actor_loss"):
        QRL.Config(actor_loss="sac")
    with pytest.raises(UserError, match="latent_dim.*must be even for MRN"):
        QRL.Config(quasimetric_type="mrn", latent_dim=15, dim_per_component=1)


@pytest.mark.parametrize("overrides", [{"actor_loss": "awr"}, {"quasimetric_type": "mrn"},
                                       {"const_std": False}])
def test_variants_update(overrides):
    cfg = QRL.Config(batch_size=16, actor_hidden_dims=(16,), value_hidden_dims=(16,), latent_dim=16, **overrides)
    torch.manual_seed(0)
    m = QRL(cfg, (3,), 2)
    batch = {k: torch.randn(16, 3) for k in ("observations", "next_observations", "value_goals", "actor_goals")}
    batch["actions"] = torch.rand(16, 2) * 2 - 1
    before = {k: v.clone() for k, v in m.state_dict().items()}
    info = m.update(batch)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in info.values())
    assert any(not torch.equal(before[k], v) for k, v in m.state_dict().items())
