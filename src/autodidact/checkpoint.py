"""Checkpoints: safetensors for every tensor, JSON for everything else. Never pickle.

A checkpoint is a directory `checkpoints/step_00001000/` holding
  model.safetensors  the method's state_dict (networks, target networks, buffers)
  optim.safetensors  optimizer tensors (Adam moments, step counts) and the torch RNG state
  state.json         format version, step, optimizer structure, sampler RNG state, trainer state
It is built in a hidden temporary directory and renamed into place, then `latest.json` is
replaced atomically, so a kill at any moment leaves the previous checkpoint intact.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from autodidact.errors import UserError
from autodidact.io import _os_error, atomic_write_json, read_json

CHECKPOINT_VERSION = 1


def _flatten_optimizer(name, opt):
    sd = opt.state_dict()
    tensors, state = {}, {}
    for pid, pstate in sd["state"].items():
        entry = {}
        for k, v in pstate.items():
            if torch.is_tensor(v):
                tensors[f"{name}/{pid}/{k}"] = v.detach().cpu().contiguous()
                entry[k] = {"tensor": f"{name}/{pid}/{k}"}
            else:
                entry[k] = v
        state[str(pid)] = entry
    return tensors, {"state": state, "param_groups": sd["param_groups"]}


def _unflatten_optimizer(meta, tensors):
    state = {}
    for pid, entry in meta["state"].items():
        state[int(pid)] = {k: (tensors[v["tensor"]] if isinstance(v, dict) and "tensor" in v else v)
                           for k, v in entry.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(ckpt_root, step, method, trainer_state):
    """Write checkpoint `step` under `ckpt_root` atomically and point latest.json at it."""
    ckpt_root = Path(ckpt_root)
    final = ckpt_root / f"step_{step:08d}"
    try:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=ckpt_root))
        model = {k: v.detach().cpu().contiguous() for k, v in method.state_dict().items()}
        save_file(model, tmp / "model.safetensors")
        opt_tensors, opt_meta = {}, {}
        for name, opt in method.optimizers().items():
            t, m = _flatten_optimizer(name, opt)
            opt_tensors.update(t)
            opt_meta[name] = m
        opt_tensors["rng/torch"] = torch.get_rng_state()
        save_file(opt_tensors, tmp / "optim.safetensors")
        state = {"format_version": CHECKPOINT_VERSION, "step": step, "optimizers": opt_meta, **trainer_state}
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except OSError as exc:
        shutil.rmtree(locals().get("tmp", final.with_suffix(".none")), ignore_errors=True)
        raise _os_error(final, exc) from None
    atomic_write_json(ckpt_root / "latest.json", {"step": step, "dir": final.name})
    return final


def prune_checkpoints(ckpt_root, keep):
    """Keep the newest `keep` checkpoints (and leave stray temp dirs of dead runs to be removed)."""
    ckpt_root = Path(ckpt_root)
    dirs = sorted(d for d in ckpt_root.glob("step_*") if d.is_dir())
    for d in dirs[:-keep] if keep > 0 else []:
        shutil.rmtree(d, ignore_errors=True)
    for d in ckpt_root.glob(".step_*"):
        shutil.rmtree(d, ignore_errors=True)


def latest_checkpoint(ckpt_root):
    """Path of the newest complete checkpoint, or None."""
    ckpt_root = Path(ckpt_root)
    latest = ckpt_root / "latest.json"
    if latest.exists():
        d = ckpt_root / read_json(latest, "checkpoint index")["dir"]
        if (d / "state.json").exists():
            return d
    complete = sorted(d for d in ckpt_root.glob("step_*") if (d / "state.json").exists())
    return complete[-1] if complete else None


def load_checkpoint(ckpt_dir, method, restore_optimizers=True, restore_rng=True):
    """Restore weights (and optimizers, torch RNG); return state.json's dict."""
    ckpt_dir = Path(ckpt_dir)
    state = read_json(ckpt_dir / "state.json", "checkpoint state")
    if state.get("format_version", 0) > CHECKPOINT_VERSION:
        raise UserError(f"{ckpt_dir}: checkpoint format {state['format_version']} is newer than this "
                        f"autodidact reads ({CHECKPOINT_VERSION}); upgrade autodidact")
    try:
        model = load_file(ckpt_dir / "model.safetensors")
        opt_tensors = load_file(ckpt_dir / "optim.safetensors") if restore_optimizers or restore_rng else {}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise UserError(f"{ckpt_dir}: corrupt checkpoint ({exc.__class__.__name__}: {exc})") from None
    missing, unexpected = method.load_state_dict(model, strict=False)
    if missing or unexpected:
        raise UserError(f"{ckpt_dir}/model.safetensors: does not match the method's networks "
                        f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    if restore_optimizers:
        for name, opt in method.optimizers().items():
            opt.load_state_dict(_unflatten_optimizer(state["optimizers"][name], opt_tensors))
    if restore_rng and "rng/torch" in opt_tensors:
        torch.set_rng_state(opt_tensors["rng/torch"])
    return state
