"""`--kernels tuned` computes what `--kernels torch` computes: same outputs and gradients (to float32
rounding), same parameters and checkpoints, and it can be switched off again."""

import pytest
import torch
from safetensors.torch import load_file

from autodidact import kernels
from autodidact.core.errors import UserError
from autodidact.kernels import onednn
from autodidact.methods import get_method
from autodidact.nn import MLP, GaussianActor, Linear
from autodidact.workflows import train
from pointenv import goal_batch, point_play_dataset, settings

needs_onednn = pytest.mark.skipif(not onednn.available(), reason="no oneDNN linear operator in this torch build")


@pytest.fixture
def everything_tuned(monkeypatch):
    """Thresholds at zero, so the tiny test networks take the tuned paths."""
    monkeypatch.setattr(onednn, "MIN_MACS", 0)
    monkeypatch.setattr(onednn, "MIN_FUNCTION_MACS", 0)
    monkeypatch.setattr(kernels.TunedEnsembleMLP, "STACKED_MAX_MACS", -1)


def _outputs_and_grads(module, *inputs):
    inputs = [x.clone().requires_grad_(True) for x in inputs]
    module.zero_grad(set_to_none=True)
    out = module(*inputs)
    out = out[0] if isinstance(out, tuple) else out
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), [x.grad for x in inputs], {k: p.grad.clone() for k, p in module.named_parameters()}


def _assert_same(a, b):
    (out_a, xg_a, pg_a), (out_b, xg_b, pg_b) = a, b
    torch.testing.assert_close(out_a, out_b, rtol=1e-5, atol=1e-5)
    for x, y in zip(xg_a, xg_b):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)
    assert pg_a.keys() == pg_b.keys()
    for k in pg_a:
        torch.testing.assert_close(pg_a[k], pg_b[k], rtol=1e-5, atol=1e-5, msg=k)


class _Holder(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, *x):
        return self.net(*x)


def _compare(net, *inputs):
    holder = _Holder(net)
    plain = _outputs_and_grads(holder, *inputs)
    assert kernels.apply(holder, "tuned")
    tuned = _outputs_and_grads(holder, *inputs)
    _assert_same(plain, tuned)
    assert kernels.apply(holder, "torch") == []
    assert {type(m) for m in holder.modules()} & {kernels.TunedLinear, kernels.TunedEnsembleMLP} == set()


@needs_onednn
@pytest.mark.parametrize("in_dim, out_dim", [(4, 64), (64, 64), (64, 1)])
def test_dense_layers_match_torch(everything_tuned, in_dim, out_dim):
    """Forward, input gradient, weight and bias gradients; (4, 64) is a narrow-input layer whose
    weight gradient is computed the other way round."""
    torch.manual_seed(0)
    _compare(MLP(in_dim, (64, 64), out_dim=out_dim), torch.randn(37, in_dim))


@pytest.mark.parametrize("layer_norm", [True, False])
@pytest.mark.parametrize("per_member", [False, True])
def test_ensembles_member_by_member_match_the_stacked_ensemble(everything_tuned, layer_norm, per_member):
    torch.manual_seed(0)
    net = MLP(6, (32, 32), out_dim=1, layer_norm=layer_norm, ensemble=2)
    x = torch.randn(2, 19, 6) if per_member else torch.randn(19, 6)
    _compare(net, x)


def test_output_layers_stay_float32_under_bf16_autocast(everything_tuned):
    torch.manual_seed(0)
    holder = _Holder(MLP(6, (32,), out_dim=3, ensemble=2))
    kernels.apply(holder, "tuned")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = holder(torch.randn(9, 6))
    assert out.dtype == torch.float32 and out.shape == (2, 9, 3)


def test_a_tuned_method_trains_as_the_plain_one(everything_tuned):
    """Ten GCIVL updates with tuned and with plain kernels from the same start: the same losses and
    weights up to float32 rounding, and the same checkpoint keys."""
    cls = get_method("gcivl")
    runs = []
    for name in ("torch", "tuned"):
        torch.manual_seed(0)
        m = cls(cls.Config(actor_hidden_dims=(32, 32), value_hidden_dims=(32, 32)), (3,), 2)
        used = kernels.apply(m, name)
        assert bool(used) == (name == "tuned")
        losses = [m.update(goal_batch(n=64, seed=s))["value/loss"] for s in range(10)]
        runs.append((torch.stack(losses), m.state_dict()))
    (loss_a, state_a), (loss_b, state_b) = runs
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-4, atol=1e-5)
    assert state_a.keys() == state_b.keys()
    for k in state_a:
        torch.testing.assert_close(state_a[k], state_b[k], rtol=1e-4, atol=1e-5, msg=k)


def test_tuned_runs_resume_bit_identically(tmp_path, everything_tuned):
    """20 steps in one go, or 10, a kill, and a resume: the same weights to the bit."""
    data = point_play_dataset(tmp_path / "point.npz", episodes=5)
    overrides = ("batch_size=32", "actor_hidden_dims=32,32", "value_hidden_dims=32,32")
    full = train.new_run(settings("gciql", tmp_path, data, 20, out="full", overrides=overrides, kernels="tuned",
                                  checkpoint_every=5), argv=["x"])
    part = train.new_run(settings("gciql", tmp_path, data, 10, out="part", overrides=overrides, kernels="tuned",
                                  checkpoint_every=5), argv=["x"])
    train.resume_run(part, argv=["resume"], steps=20, progress=False)
    a, b = (load_file(r / "checkpoints" / "step_00000020" / "model.safetensors") for r in (full, part))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_gaussian_actor_keeps_its_parameters():
    torch.manual_seed(0)
    actor = GaussianActor(4, 2, (16, 16))
    before = {k: v.clone() for k, v in actor.state_dict().items()}
    kernels.apply(actor, "tuned")
    assert actor.state_dict().keys() == before.keys()
    assert all(torch.equal(actor.state_dict()[k], v) for k, v in before.items())
    assert isinstance(actor.mean, Linear)


def test_unknown_kernels_are_a_one_line_error():
    with pytest.raises(UserError, match="--kernels must be one of torch, tuned, got 'fast'"):
        kernels.apply(torch.nn.Linear(2, 2), "fast")


@needs_onednn
def test_flop_count_sees_the_onednn_products(everything_tuned):
    from torch.utils.flop_counter import FlopCounterMode
    holder = _Holder(MLP(8, (16,), out_dim=4))
    kernels.apply(holder, "tuned")
    counter = FlopCounterMode(display=False, custom_mapping=onednn.flop_formulas())
    with counter:
        holder(torch.randn(10, 8)).sum().backward()
    # forward 2*10*(8*16 + 16*4), input gradients of the second layer, weight gradients of both
    assert counter.get_total_flops() == 2 * 10 * (8 * 16 + 16 * 4) * 2 + 2 * 10 * 16 * 4


def test_pieces_select_what_tuned_changes():
    holder = _Holder(torch.nn.ModuleList([Linear(8, 8), MLP(8, (8,), out_dim=1, ensemble=2)]))
    assert kernels.apply(holder, "tuned", pieces=("ensembles",)) == ["ensembles"]
    assert not any(isinstance(m, kernels.TunedLinear) for m in holder.modules())
    with pytest.raises(UserError, match="unknown kernel pieces \\['gelu'\\]: choose from onednn, ensembles"):
        kernels.apply(holder, "tuned", pieces=("gelu",))
