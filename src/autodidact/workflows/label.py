"""`autodidact label`: infer the missing actions of a dataset with an inverse dynamics model.

The model (nn/inverse.py) trains on the recorded actions: the labeled episodes of DATASET and,
with `labeled`, of a second file (say a few teleoperated episodes beside hours of action-free
play). A seeded fraction of those episodes is held out; the model's action error on them is
reported beside two baselines, predicting the training mean action and the same model before
training. Then every unlabeled step is labeled and one fully labeled file is written: DATASET's
episodes, then the labeled file's, with `action_inferred` (bool per step) set where the action was
predicted. Any method trains on that file unchanged.

Actions recorded within [-1, 1] (OGBench's) are taken as bounded: predictions are clipped to that
box and the mean absolute error is reported too. Labels a model inferred earlier never train the
model; `label` on its own output re-infers them.
"""

import dataclasses
from pathlib import Path

import numpy as np
import torch

from autodidact.core import config as cfglib
from autodidact.core.errors import UserError
from autodidact.data.dataset import Dataset
from autodidact.data.dataset import load as load_dataset
from autodidact.data.labels import INFERRED, concatenate, labeled_episodes, labeled_steps
from autodidact.data.sampler import ContextSampler
from autodidact.nn import adam
from autodidact.nn.inverse import InverseDynamics, InverseDynamicsConfig
from autodidact.workflows.runtime import denormals_flushed, keep_freed_memory, to_tensors

_STAT_ROWS = 100_000  # observations the state standardization is estimated from


def label(dataset, out, labeled=None, steps=10_000, seed=0, context=None, overrides=(), device="auto",
          progress=True):
    """Train an inverse dynamics model on the recorded actions, label the rest, write `out`.
    Returns a summary dict (the errors, the counts, the config)."""
    sources = [Path(dataset)] + ([Path(labeled)] if labeled else [])
    if any(Path(out).resolve() == p.resolve() for p in sources):
        raise UserError(f"{out}: label never overwrites its input; choose another --out")
    cfg = cfglib.apply_overrides(InverseDynamicsConfig(), list(overrides))
    if context is not None:
        cfg = dataclasses.replace(cfg, context=context)
    files = [load_dataset(p) for p in sources]
    ds, dropped = concatenate(files) if labeled else (files[0], [])
    recorded = labeled_steps(ds, recorded_only=True)
    counts, _ = labeled_episodes(ds, recorded_only=True)
    episodes = np.flatnonzero(counts)
    if len(episodes) == 0:
        raise UserError(f"{' + '.join(map(str, sources))}: no recorded action to learn from; pass --labeled "
                        "FILE.npz, a few episodes with actions in the same observation space")

    rng = np.random.default_rng(seed)
    n_val = max(1, round(cfg.val_fraction * len(episodes))) if len(episodes) >= 2 and cfg.val_fraction > 0 else 0
    held_out = np.zeros(ds.num_episodes, bool)
    held_out[rng.permutation(episodes)[:n_val]] = True
    episode = np.repeat(np.arange(ds.num_episodes), ds.episode_lengths)
    trainable = recorded & ~ds.terminals
    train_idxs = np.flatnonzero(trainable & ~held_out[episode])
    val_idxs = np.flatnonzero(trainable & held_out[episode])

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    torch.manual_seed(seed)
    model = InverseDynamics(cfg, ds.obs_shape, ds.action_dim)
    stat_rows = np.sort(rng.choice(train_idxs, min(len(train_idxs), _STAT_ROWS), replace=False))
    model.fit_statistics(np.asarray(ds.observations[stat_rows]) if not model.images else None,
                         np.asarray(ds.actions)[train_idxs])
    model.to(device)
    train_actions = np.asarray(ds.actions)[train_idxs]
    bounded = bool(np.abs(np.asarray(ds.actions)[recorded]).max() <= 1.0)
    sampler = ContextSampler(ds, train_idxs, cfg.context, seed=seed)

    errors = {}
    if len(val_idxs):
        truth = np.asarray(ds.actions)[val_idxs]
        errors["mean action"] = _errors(np.broadcast_to(train_actions.mean(0), truth.shape), truth, bounded)
        errors["random-init model"] = _errors(predict(model, sampler, val_idxs, device, bounded), truth, bounded)
    optimizer = adam(model.parameters(), lr=cfg.lr)
    from tqdm import tqdm
    model.train()
    keep_freed_memory()  # as the trainer (workflows/runtime.py)
    with denormals_flushed(), tqdm(total=steps, desc="label: inverse dynamics", unit="step",
                                   disable=not progress) as bar:
        for step in range(1, steps + 1):
            loss, info = model.loss(to_tensors(sampler.sample(cfg.batch_size), device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            bar.update(1)
            if step % 100 == 0 or step == steps:
                bar.set_postfix({"idm/loss": f"{float(info['idm/loss']):.4g}"}, refresh=False)
    if len(val_idxs):
        errors["trained model"] = _errors(predict(model, sampler, val_idxs, device, bounded), truth, bounded)

    unlabeled = np.flatnonzero(~recorded)
    actions = np.asarray(ds.actions, np.float32).copy()
    if len(unlabeled):
        actions[unlabeled] = predict(model, sampler, unlabeled, device, bounded)
    extras = {k: v for k, v in ds.extras.items() if k != INFERRED}
    extras[INFERRED] = ~recorded
    Dataset(observations=ds.observations, terminals=ds.terminals, actions=actions, rewards=ds.rewards,
            extras=extras).save(out)
    return {"out": str(out), "sources": [str(p) for p in sources], "config": cfglib.to_dict(cfg), "steps": steps,
            "seed": seed, "episodes": ds.num_episodes, "labeled_episodes": len(episodes),
            "held_out_episodes": n_val, "train_transitions": len(train_idxs), "held_out_transitions": len(val_idxs),
            "inferred_steps": len(unlabeled), "steps_total": len(ds), "bounded": bounded, "errors": errors,
            "dropped_extras": dropped}


@torch.no_grad()
def predict(model, sampler, idxs, device, bounded, chunk=None):
    """The model's actions at steps `idxs` (numpy), clipped to [-1, 1] when `bounded`."""
    chunk = chunk or (256 if model.images else 8192)
    was_training = model.training
    model.eval()
    out = []
    for s in range(0, len(idxs), chunk):
        obs = to_tensors({"o": sampler.batch(idxs[s:s + chunk])["observations"]}, device)["o"]
        out.append(model(obs).float().cpu().numpy())
    model.train(was_training)
    pred = np.concatenate(out)
    return np.clip(pred, -1.0, 1.0) if bounded else pred


def _errors(pred, truth, bounded):
    err = {"mse": float(np.mean((pred - truth) ** 2))}
    if bounded:
        err["mae"] = float(np.mean(np.abs(pred - truth)))
    return err


def format_label_result(r):
    cfg = r["config"]
    k = cfg["context"]
    lines = [f"inverse dynamics: a_t from o_(t-{k})..o_(t+{k + 1}), {r['steps']} steps, seed {r['seed']}; "
             f"{r['labeled_episodes']} labeled episodes of {r['episodes']} ({r['held_out_episodes']} held out: "
             f"{r['held_out_transitions']} transitions; {r['train_transitions']} train)"]
    if r["errors"]:
        cols = "MSE        MAE" if r["bounded"] else "MSE"
        lines.append(f"held-out action error   {cols}")
        for name, e in r["errors"].items():
            mae = f"  {e['mae']:.4g}" if "mae" in e else ""
            lines.append(f"  {name:<20} {e['mse']:<9.4g}{mae}")
    else:
        lines.append("held-out action error   not measured (one labeled episode, or val_fraction=0)")
    if r["dropped_extras"]:
        lines.append(f"dropped extra fields not in every file alike: {', '.join(r['dropped_extras'])}")
    lines.append(f"wrote {r['out']}: {r['episodes']} episodes, {r['inferred_steps']}/{r['steps_total']} steps' "
                 f"actions inferred (field {INFERRED})")
    return "\n".join(lines)
