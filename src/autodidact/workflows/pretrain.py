"""What `autodidact pretrain` adds to a training run of an encoder objective, when it ends:

- RUN/encoder.safetensors: the encoder alone (nn/representation.py's format), which `train
  --encoder RUN` starts a method's encoders from;
- RUN/encoder_health.json: the encoder's diagnostics beside the same encoder at its random
  initialization (the objective's seed):
  - `rankme`: RankMe, the effective rank of the embeddings of up to 4,096 observations drawn from
    the dataset (seed 0), between 1 (collapsed) and the embedding width;
  - `probe_r2`: where the dataset keeps the simulator state (`qpos`, as OGBench files do), the R^2
    of a linear (ridge 1e-3) probe from the embedding to qpos, fitted on the observations of
    even-numbered episodes and scored on the odd ones (up to 20,000 observations).

Training itself is `train`'s loop (workflows/train.py): progress, metrics.csv, checkpoints and
bit-identical resume are the same.
"""

import numpy as np
import torch

from autodidact.core.io import atomic_path, atomic_write_json
from autodidact.methods import OBJECTIVES
from autodidact.nn.diagnostics import linear_probe_r2, rankme
from autodidact.nn.representation import ENCODER_FILE, encoder_file

HEALTH_FILE = "encoder_health.json"


def _embed(method, observations, chunk=1024):
    device = next(method.parameters()).device
    out = [method.embed(torch.as_tensor(np.asarray(observations[i:i + chunk])).to(device)).float().cpu()
           for i in range(0, len(observations), chunk)]
    return torch.cat(out).double().numpy()


def encoder_health(method, dataset, seed=0, max_rankme=4096, max_probe=20_000):
    """{rankme, rankme_random_init, probe_r2, probe_r2_random_init, ...} of `method`'s encoder on
    `dataset` (probe entries only where the dataset has qpos)."""
    rng = np.random.default_rng(0)
    n = len(dataset.observations)
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the run's own initialization, as build_method seeds it
        untrained = type(method)(method.cfg, method.obs_shape, method.action_dim).to(next(method.parameters()).device)
    untrained.eval()
    out = {"observations_rankme": int(min(n, max_rankme)), "embed_dim": int(method.embed_dim)}
    idx = np.sort(rng.choice(n, min(n, max_rankme), replace=False))
    for key, model in (("rankme", method), ("rankme_random_init", untrained)):
        out[key] = float(rankme(torch.as_tensor(_embed(model, dataset.observations[idx]))))
    qpos = dataset.extras.get("qpos")
    if qpos is not None and len(qpos) == n:
        idx = np.sort(rng.choice(n, min(n, max_probe), replace=False))
        episode = np.searchsorted(dataset.episode_ends, idx)
        fit = episode % 2 == 0
        if fit.all() or not fit.any():  # one episode: split its steps instead
            fit = rng.random(len(idx)) < 0.5
        y = np.asarray(qpos[idx], dtype=np.float64)
        for key, model in (("probe_r2", method), ("probe_r2_random_init", untrained)):
            z = _embed(model, dataset.observations[idx])
            out[key] = linear_probe_r2(z[fit], y[fit], z[~fit], y[~fit])
        out.update(probe_target="qpos", probe_fit=int(fit.sum()), probe_eval=int((~fit).sum()))
    return out


def export_encoder(method, run_dir, dataset, run_cfg):
    """Write RUN/encoder.safetensors and RUN/encoder_health.json; returns their paths."""
    from safetensors.torch import save_file
    health = encoder_health(method, dataset, seed=run_cfg["seed"])
    cfg = method.cfg
    tensors, meta = encoder_file(method.encoder, method.obs_shape, cfg.encoder, method.state_dims, objective=method.name,
                                 dataset=run_cfg["dataset"], steps=run_cfg["steps"], rankme=health["rankme"],
                                 probe_r2=health.get("probe_r2"))
    path = run_dir / ENCODER_FILE
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    health_path = run_dir / HEALTH_FILE
    atomic_write_json(health_path, {"objective": method.name, "dataset": run_cfg["dataset"], **health})
    return [path, health_path]
