"""`autodidact icvf`: pretrain ICVF (methods/icvf.py) on any dataset, actions or not, and write
the representation phi / psi of its first head as one safetensors file (with its architecture in
the metadata). `train --method gcivl --set icvf=FILE` starts GCIVL's value network from it.

The file is written once at the end (atomically); an interrupted pretraining starts again.
"""

import numpy as np
import torch

from autodidact.core import config as cfglib
from autodidact.core.io import atomic_path
from autodidact.data.dataset import load as load_dataset
from autodidact.methods.icvf import ICVF, ICVFConfig, representation_tensors
from autodidact.workflows.runtime import denormals_flushed, keep_freed_memory, to_tensors


def pretrain_icvf(dataset, out, steps=100_000, seed=0, overrides=(), device="auto", progress=True):
    """Train ICVF for `steps` on `dataset`, write the representation to `out`; returns a summary dict."""
    from safetensors.torch import save_file
    from tqdm import tqdm

    cfg = cfglib.apply_overrides(ICVFConfig(), list(overrides))
    ds = load_dataset(dataset)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    torch.manual_seed(seed)
    icvf = ICVF(cfg, ds.obs_shape).to(device)
    sampler = icvf.make_sampler(ds, seed)
    keep_freed_memory()
    sums, count, first = {}, 0, None
    with denormals_flushed(), tqdm(total=steps, desc="icvf", unit="step", disable=not progress) as bar:
        for step in range(1, steps + 1):
            info = icvf.update(to_tensors(sampler.sample(cfg.batch_size), device))
            for k, v in info.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
            bar.update(1)
            if step % max(1, steps // 20) == 0 or step == steps:
                means = {k: v / count for k, v in sums.items()}
                first = first or means
                bar.set_postfix({"icvf/loss": f"{means['icvf/loss']:.4g}"}, refresh=False)
                sums, count = {}, 0
    tensors, meta = representation_tensors(icvf.cpu())
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return {"out": str(out), "dataset": str(dataset), "steps": steps, "seed": seed, "config": cfglib.to_dict(cfg),
            "first": first, "last": means, "parameters": int(sum(np.prod(t.shape) for t in tensors.values()))}


def format_icvf_result(r):
    first, last = r["first"], r["last"]
    return "\n".join([
        f"icvf: {r['steps']} steps on {r['dataset']}, seed {r['seed']}",
        f"  loss {first['icvf/loss']:.4g} -> {last['icvf/loss']:.4g}   V(s, z, z) {first['icvf/v_zz']:.3g} -> "
        f"{last['icvf/v_zz']:.3g}   share of steps towards the intent {last['icvf/accept']:.2f}",
        f"wrote {r['out']} (phi and psi, {r['parameters']} parameters); use it with "
        f"`autodidact train --method gcivl --set icvf={r['out']}` (add --set icvf_frozen=true to freeze it)",
    ])
