"""scripts/bf16_numerics.py: bf16 products done in float32 give bf16's numbers."""

import importlib.util
from pathlib import Path

import pytest
import torch

from autodidact.methods import get_method
from autodidact.trainer import autocast

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bf16_numerics.py"
spec = importlib.util.spec_from_file_location("bf16_numerics", SCRIPT)
bf16_numerics = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bf16_numerics)

bf = torch.bfloat16


@pytest.mark.parametrize("op", ["mm", "addmm", "linear", "bmm", "baddbmm", "transposed"])
def test_each_product_matches_torchs_bf16_product(op):
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(s, generator=g).to(bf) for s in ((24, 32), (32, 16), (16,)))
    a3, b3, c3 = (torch.randn(s, generator=g).to(bf) for s in ((2, 24, 32), (2, 32, 16), (2, 1, 16)))
    fn = {"mm": lambda: a @ b, "addmm": lambda: torch.addmm(c, a, b),
          "linear": lambda: torch.nn.functional.linear(a, b.t(), c), "bmm": lambda: torch.bmm(a3, b3),
          "baddbmm": lambda: torch.baddbmm(c3, a3, b3), "transposed": lambda: a.t() @ a}[op]
    real = fn()
    mode = bf16_numerics.Bf16MatmulsInFloat32()
    with mode:
        emulated = fn()
    assert mode.calls == 1 and emulated.dtype == bf
    # Both sum in float32 and round once; only a summation-order tie can land one bf16 step apart.
    assert (emulated.float() - real.float()).abs().le(real.float().abs() * 2 ** -7 + 1e-6).all()
    assert (emulated == real).float().mean() > 0.95


def test_float32_products_pass_through():
    a = torch.randn(8, 8)
    mode = bf16_numerics.Bf16MatmulsInFloat32()
    with mode:
        out = a @ a
    assert mode.calls == 0 and torch.equal(out, a @ a)


def test_updates_follow_real_bf16_closer_than_float32():
    """GCIVL updates (value ensemble, LayerNorm, AWR actor) under autocast: the emulated run ends
    far closer to torch's real bf16 run than float32 does."""
    from pointenv import point_play_dataset
    from autodidact.data.dataset import load
    from autodidact import config as cfglib
    from autodidact.trainer import to_tensors
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        ds = load(point_play_dataset(Path(tmp) / "point.npz"))
    cls = get_method("gcivl")
    cfg = cfglib.apply_overrides(cls.Config(), ["batch_size=64", "actor_hidden_dims=32,32",
                                                "value_hidden_dims=32,32"])
    torch.manual_seed(0)
    batch = to_tensors(cls(cfg, ds.obs_shape, ds.action_dim).make_sampler(ds, 0).sample(64), "cpu")
    params = {}
    for way in ("float32", "bf16", "emulated"):
        torch.manual_seed(0)
        method = cls(cfg, ds.obs_shape, ds.action_dim)
        start = torch.cat([p.detach().flatten() for p in method.parameters()])
        for _ in range(5):
            with autocast(torch.device("cpu"), "float32" if way == "float32" else "bf16"):
                if way == "emulated":
                    with bf16_numerics.Bf16MatmulsInFloat32():
                        method.update(batch)
                else:
                    method.update(batch)
        params[way] = torch.cat([p.detach().flatten() for p in method.parameters()])
    moved = (params["bf16"] - start).norm()
    emulated_off = float((params["emulated"] - params["bf16"]).norm() / moved)
    float32_off = float((params["float32"] - params["bf16"]).norm() / moved)
    assert emulated_off < 0.01 and emulated_off < float32_off / 3, (emulated_off, float32_off)
