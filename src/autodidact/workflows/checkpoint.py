"""Checkpoints: safetensors for every tensor, JSON for everything else. Never pickle.

A checkpoint is a directory `checkpoints/step_00001000/` holding
  model.safetensors  the method's state_dict (networks, target networks, buffers)
  optim.safetensors  optimizer tensors (Adam moments, step counts) and the torch RNG state
  state.json         format version, step, optimizer structure, sampler RNG state, trainer state
  replay.safetensors online runs only (`autodidact finetune`): the replay buffer's transitions
It is built in a hidden temporary directory and renamed into place, then `latest.json` is
replaced atomically, so a kill at any moment leaves the previous checkpoint intact.
"""

import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from autodidact.core.errors import UserError
from autodidact.core.io import atomic_write_json, current_umask, read_json, write_error

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


def _saved_optimizer(saved, name):
    """The saved optimizer that optimizer `name` restores from. Before 0.2.0 each method named its
    one optimizer its own way ("actor", "all", "score"); now every method's is "main"."""
    if name not in saved and len(saved) == 1:
        name = next(iter(saved))
    return saved[name]


def _unflatten_optimizer(meta, tensors):
    state = {}
    for pid, entry in meta["state"].items():
        state[int(pid)] = {k: (tensors[v["tensor"]] if isinstance(v, dict) and "tensor" in v else v)
                           for k, v in entry.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def _expand_shared_member_states(opt):
    """Runs saved before 0.1.0 shared one LayerNorm between an ensemble's members; the weights are
    copied to each member when loaded (nn.EnsembleLayerNorm), and so is their optimizer state
    (Adam's moments) here."""
    for group in opt.param_groups:
        for p in group["params"]:
            for key, value in opt.state.get(p, {}).items():
                if torch.is_tensor(value) and value.dim() and value.shape != p.shape and value.shape == p.shape[1:]:
                    opt.state[p][key] = value.expand_as(p).clone()


def _as_os_error(exc):
    """safetensors reports write failures (disk full...) as SafetensorError("... (os error 28)")."""
    m = re.search(r"os error (\d+)", str(exc))
    code = int(m.group(1)) if m else errno.EIO
    return OSError(code, os.strerror(code))


def _remove_dir(d):
    """Delete checkpoint dir `d` without ever leaving a partial `step_*` dir behind: a plain rmtree
    killed half-way would leave a step dir with some files and not others. Renaming it to a hidden
    `.step_*` name first is atomic; prune_checkpoints removes hidden leftovers of killed runs."""
    trash = Path(tempfile.mkdtemp(prefix=f".{d.name}.del.", dir=d.parent))
    os.replace(d, trash / d.name)
    shutil.rmtree(trash, ignore_errors=True)


def save_checkpoint(ckpt_root, step, method, trainer_state, replay=None):
    """Write checkpoint `step` under `ckpt_root` atomically and point latest.json at it; `replay`
    ({name: numpy array}) goes to replay.safetensors in the same directory."""
    ckpt_root = Path(ckpt_root)
    final = ckpt_root / f"step_{step:08d}"
    tmp = None
    try:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=ckpt_root))
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp's 0700 would hide checkpoints from other users
        model = {k: v.detach().cpu().contiguous() for k, v in method.state_dict().items()}
        save_file(model, tmp / "model.safetensors")
        opt_tensors, opt_meta = {}, {}
        for name, opt in method.optimizers().items():
            t, m = _flatten_optimizer(name, opt)
            opt_tensors.update(t)
            opt_meta[name] = m
        opt_tensors["rng/torch"] = torch.get_rng_state()
        save_file(opt_tensors, tmp / "optim.safetensors")
        if replay is not None:
            save_file({k: torch.from_numpy(v).contiguous() for k, v in replay.items()}, tmp / "replay.safetensors")
        state = {"format_version": CHECKPOINT_VERSION, "step": step, "optimizers": opt_meta, **trainer_state}
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            _remove_dir(final)
        os.replace(tmp, final)
    except (OSError, SafetensorError) as exc:
        # SafetensorError is how safetensors reports a full disk.
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(final, exc if isinstance(exc, OSError) else _as_os_error(exc)) from None
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_json(ckpt_root / "latest.json", {"step": step, "dir": final.name})
    return final


def prune_checkpoints(ckpt_root, keep):
    """Keep the newest `keep` checkpoints (and leave stray temp dirs of dead runs to be removed)."""
    ckpt_root = Path(ckpt_root)
    dirs = sorted(d for d in ckpt_root.glob("step_*") if d.is_dir())
    for d in dirs[:-keep] if keep > 0 else []:
        try:
            _remove_dir(d)
        except OSError:
            pass
    for d in ckpt_root.glob(".step_*"):
        shutil.rmtree(d, ignore_errors=True)


def latest_checkpoint(ckpt_root):
    """Path of the newest complete checkpoint, or None."""
    ckpt_root = Path(ckpt_root)
    latest = ckpt_root / "latest.json"
    if latest.exists():
        index = read_json(latest, "checkpoint index")
        name = index.get("dir") if isinstance(index, dict) else None
        if not isinstance(name, str) or not name.startswith("step_") or "/" in name or "\\" in name:
            raise UserError(f"{latest}: not a checkpoint index (expected {{\"dir\": \"step_...\"}})")
        d = ckpt_root / name
        if (d / "state.json").exists():
            return d
    complete = sorted(d for d in ckpt_root.glob("step_*") if (d / "state.json").exists())
    return complete[-1] if complete else None


def load_checkpoint(ckpt_dir, method, restore_optimizers=True, restore_rng=True):
    """Restore weights (and optimizers, torch RNG); return state.json's dict."""
    ckpt_dir = Path(ckpt_dir)
    state = read_json(ckpt_dir / "state.json", "checkpoint state")
    if not isinstance(state, dict) or not isinstance(state.get("format_version", 0), int):
        raise UserError(f"{ckpt_dir}/state.json: corrupt checkpoint state (expected an object with an "
                        "integer format_version)")
    if state.get("format_version", 0) > CHECKPOINT_VERSION:
        raise UserError(f"{ckpt_dir}: checkpoint format {state['format_version']} is newer than this "
                        f"autodidact reads ({CHECKPOINT_VERSION}); upgrade autodidact")
    try:
        model = load_file(ckpt_dir / "model.safetensors")
        opt_tensors = load_file(ckpt_dir / "optim.safetensors") if restore_optimizers or restore_rng else {}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise UserError(f"{ckpt_dir}: corrupt checkpoint ({exc.__class__.__name__}: {exc})") from None
    # A state.json or optim.safetensors of the wrong structure, or tensors of the wrong shape: one line.
    try:
        try:
            missing, unexpected = method.load_state_dict(model, strict=False)
        except RuntimeError as exc:  # "Error(s) in loading state_dict...:\n\tsize mismatch for ..."
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            raise UserError(f"{ckpt_dir}/model.safetensors: does not match the method's networks "
                            f"({lines[1] if len(lines) > 1 else lines[0] if lines else 'load failed'})") from None
        if missing or unexpected:
            raise UserError(f"{ckpt_dir}/model.safetensors: does not match the method's networks "
                            f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        if not isinstance(state.get("step"), int):
            raise KeyError("step")
        if restore_optimizers:
            for name, opt in method.optimizers().items():
                opt.load_state_dict(_unflatten_optimizer(_saved_optimizer(state["optimizers"], name), opt_tensors))
                _expand_shared_member_states(opt)
        if restore_rng and "rng/torch" in opt_tensors:
            torch.set_rng_state(opt_tensors["rng/torch"])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
        raise UserError(f"{ckpt_dir}: corrupt checkpoint ({exc.__class__.__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return state


def load_replay(ckpt_dir):
    """{name: numpy array} of a checkpoint's replay.safetensors."""
    path = Path(ckpt_dir) / "replay.safetensors"
    try:
        return {k: v.numpy() for k, v in load_file(path).items()}
    except FileNotFoundError:
        raise UserError(f"{ckpt_dir}: checkpoint has no replay buffer (replay.safetensors)") from None
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise UserError(f"{path}: corrupt replay buffer ({exc.__class__.__name__}: {exc})") from None
