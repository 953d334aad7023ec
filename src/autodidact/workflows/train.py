"""One training loop for every method: seeding, steps, evaluation, logging, checkpoints, resume.

`--resume RUN_DIR` restores step, weights, optimizers, target networks, the torch RNG and the
sampler RNG, so a killed run continues with exactly the batches and updates it would have made.
The run directory's layout is described in runs.py.

Under `torchrun` every process samples its own batches (seed + rank), gradients are averaged
across processes before each step, and only rank 0 writes or evaluates.
"""

import csv
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from autodidact import kernels
from autodidact.core import config as cfglib
from autodidact.core.errors import UserError
from autodidact.core.io import atomic_path, atomic_write_json
from autodidact.data.dataset import load as load_dataset
from autodidact.data.labels import label_summary
from autodidact.envs import env_name_for_dataset
from autodidact.methods import OBJECTIVES, get_trainable
from autodidact.methods.presets import preset_for
from autodidact.workflows import compiling
from autodidact.workflows.checkpoint import latest_checkpoint, load_checkpoint, prune_checkpoints, save_checkpoint
from autodidact.workflows.evaluate import evaluate_run
from autodidact.workflows.figures import write_figures
from autodidact.workflows.pretrain import export_encoder
from autodidact.workflows.runs import RUN_FORMAT_VERSION, append_command, build_method, create_run_dir, read_run
from autodidact.workflows.runtime import (PRECISIONS, autocast, denormals_flushed, keep_freed_memory,
                                          precision_warning, to_tensors)


@dataclass
class TrainSettings:
    method: str
    dataset: str
    out: str
    steps: int = 100_000
    eval_every: int = 10_000
    eval_episodes: int = 10      # per task; 0 disables evaluation during training
    seed: int = 0
    log_every: int = 0           # 0: steps // 100, at least 1
    checkpoint_every: int = 0    # 0: same as eval_every (or steps // 10 with evaluation off)
    keep_checkpoints: int = 2
    device: str = "auto"
    precision: str = "float32"   # or "bf16": autocast the update's matmuls to bfloat16 (see nn/layers.py)
    kernels: str = kernels.DEFAULT  # "tuned" (CPU speed-ups, autodidact.kernels) or "torch" (plain PyTorch)
    compile: str = "off"         # "on": torch.compile the loss
    wandb: bool = False          # also log to Weights & Biases (tracking.py; the `wandb` extra)
    overrides: tuple = ()
    progress: bool = True

    def validate(self):
        if self.steps < 1:
            raise UserError(f"--steps must be >= 1, got {self.steps}")
        if self.eval_every < 0 or self.eval_episodes < 0 or self.log_every < 0 or self.checkpoint_every < 0:
            raise UserError("--eval-every, --eval-episodes, --log-every and --checkpoint-every must be >= 0")
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'")
        if self.kernels not in kernels.KERNELS:
            raise UserError(f"--kernels must be one of {', '.join(kernels.KERNELS)}, got '{self.kernels}'")
        if self.compile not in compiling.MODES:
            raise UserError(f"--compile must be one of {', '.join(compiling.MODES)}, got '{self.compile}'")
        if self.keep_checkpoints < 1:
            raise UserError(f"--keep-checkpoints must be >= 1, got {self.keep_checkpoints}")


def _dist_info():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return world, rank


def _device(name):
    if name == "auto":
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            return torch.device(f"cuda:{local}")
        return torch.device("cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name}: not a torch device (use auto, cpu, cuda or cuda:N)") from None


def new_run(s: TrainSettings, argv=None):
    """Create the run directory for settings `s`, then train."""
    s.validate()
    out = Path(s.out)
    world, rank = _dist_info()
    # Only rank 0 checks: it writes run.json, and another rank could otherwise see that file and
    # take this very run for an old one. If rank 0 refuses, torchrun stops the other ranks.
    if rank == 0 and (out / "run.json").exists():
        raise UserError(f"{out}: a run already exists there; continue it with "
                        f"`autodidact train --resume {out}` or choose another --out")
    cls = get_trainable(s.method)
    dataset_path = Path(s.dataset)
    env_name = env_name_for_dataset(dataset_path.name)
    preset = preset_for(dataset_path.name, cls.name)
    cfg = cfglib.apply_overrides(cfglib.apply_overrides(cls.Config(), preset), list(s.overrides))
    if cfg.pretrained_encoder and "encoder" in preset:
        # A pretrained encoder decides the architecture; only the user's own --set encoder may disagree with it.
        preset = {k: v for k, v in preset.items() if k != "encoder"}
        cfg = cfglib.apply_overrides(cfglib.apply_overrides(cls.Config(), preset), list(s.overrides))
    dataset = load_dataset(dataset_path)  # validate before anything is written
    cfg = cfglib.apply_overrides(cfg, cls.pretrained_overrides(cfg, dataset.obs_shape))
    if cls.needs_actions:
        refuse_unlabeled(dataset, cls.name)
    run_cfg = {
        "format_version": RUN_FORMAT_VERSION, "method": cls.name, "dataset": str(dataset_path.resolve()),
        "env": env_name, "seed": s.seed, "steps": s.steps, "eval_every": s.eval_every,
        "eval_episodes": s.eval_episodes if env_name and "goal" in cls.prompts else 0, "log_every": s.log_every or max(1, s.steps // 100),
        "checkpoint_every": s.checkpoint_every or (s.eval_every if s.eval_every and s.eval_episodes and env_name
                                                   else max(1, s.steps // 10)),
        "keep_checkpoints": s.keep_checkpoints, "preset": preset, "precision": s.precision,
        "kernels": s.kernels, "compile": s.compile, "wandb": s.wandb,
        "obs_shape": list(dataset.obs_shape), "action_dim": dataset.action_dim,
        "config": {"type": cls.name, **cfglib.to_dict(cfg)},
    }
    if rank == 0:
        create_run_dir(out, run_cfg, argv)
    return _train(out, run_cfg, dataset, s.device, s.progress, resume=False)


def resume_run(run_dir, argv=None, steps=None, device="auto", progress=True, wandb=False):
    """Continue the run in `run_dir` from its newest checkpoint (to `steps` in all, if given). A run
    of an earlier format is continued in the current one, and its run.json rewritten so. A run that
    logged to W&B keeps logging; `wandb=True` starts it for one that did not."""
    run_dir = Path(run_dir)
    run_cfg = read_run(run_dir)
    if steps is not None:
        run_cfg["steps"] = steps
    if wandb:
        run_cfg["wandb"] = True
    dataset = load_dataset(run_cfg["dataset"])
    world, rank = _dist_info()
    if rank == 0:
        append_command(run_dir, argv)
        atomic_write_json(run_dir / "config.json", run_cfg["config"])
        atomic_write_json(run_dir / "run.json", run_cfg)
    return _train(run_dir, run_cfg, dataset, device, progress, resume=True)


def refuse_unlabeled(dataset, method_name):
    """One line when a method that learns from actions is given a file with no action label."""
    if dataset.actions is not None and len(dataset.labeled_idxs):
        return
    what = ("field 'actions': missing" if dataset.actions is None
            else "field 'action_mask': every transition is unlabeled")
    raise UserError(f"{dataset.path}: {what}, and method '{method_name}' learns from actions; infer them with "
                    f"`autodidact label {dataset.path} --out LABELED.npz` (add --labeled FILE.npz, a few episodes "
                    "with actions, when this file has none) and train on LABELED.npz, or learn latent actions with "
                    "--method lapo, which needs actions on a few episodes only")


def _labels_note(dataset, method):
    """A partially labeled file trains an action-learning method on its labeled transitions only."""
    if not method.needs_actions or dataset.action_mask is None:
        return None
    labels = label_summary(dataset)
    if labels["labeled_transitions"] == labels["transitions"]:
        return None
    carry = (f"{dataset.path}: {labels['labeled_transitions']}/{labels['transitions']} transitions carry actions "
             f"({labels['labeled_episodes']}/{labels['episodes']} episodes)")
    if method.learns_from_unlabeled:
        return f"{carry}; '{method.name}' learns from every transition and reads actions on those"
    return (f"{carry}; '{method.name}' learns from those only (its goals may still be any state). "
            "`autodidact label` infers the rest, `--method lapo` learns latent actions from all of them")


class CsvLog:
    """Append-only CSV with a fixed header; on resume, rows past the checkpoint are dropped so the
    file reads as if the run had never been interrupted (and rows `keep(step)` rejects: a final row
    written off the logging grid by a run that ended there)."""

    def __init__(self, path, resume_step=None, keep=None):
        self.path = Path(path)
        self.fields = None
        if self.path.exists() and resume_step is not None:
            with open(self.path, newline="") as f:
                rows = list(csv.DictReader(f))
            if rows:
                self.fields = list(rows[0].keys())
            kept = [r for r in rows if int(float(r["step"])) <= resume_step
                    and (keep is None or keep(int(float(r["step"]))))]
            with atomic_path(self.path) as tmp:
                with open(tmp, "w", newline="") as f:
                    if self.fields:
                        w = csv.DictWriter(f, self.fields)
                        w.writeheader()
                        w.writerows(kept)
        elif self.path.exists():
            self.path.unlink()

    def write(self, row):
        new = self.fields is None
        if new:
            self.fields = list(row.keys())
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
            f.flush()


def _train(run_dir, run_cfg, dataset, device_name, progress, resume):
    keep_freed_memory()
    world, rank = _dist_info()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = _device(device_name)
    ckpt = latest_checkpoint(run_dir / "checkpoints") if resume else None
    method = build_method(run_cfg)
    if ckpt is None:  # a new run, or one killed before its first checkpoint
        method.load_pretrained()
    method.to(device)
    kernels.apply(method, run_cfg.get("kernels", kernels.DEFAULT))  # recorded in run.json
    seed = run_cfg["seed"]
    if note := _labels_note(dataset, method):
        _log(rank, note)
    sampler = method.make_sampler(dataset, seed + 1000 * rank)
    start = 0
    if resume:
        if ckpt is not None:
            state = load_checkpoint(ckpt, method)
            start = state["step"]
            sampler.load_state_dict(state["sampler"][rank] if isinstance(state["sampler"], list)
                                    else state["sampler"])
    if world > 1 and not resume:
        for p in method.state_dict().values():
            dist.broadcast(p, 0)  # identical start on every process

    total, bs = run_cfg["steps"], method.cfg.batch_size
    precision = run_cfg.get("precision", "float32")
    if start >= total:
        _log(rank, f"run already at step {start} of {total}; nothing to train")
        return run_dir
    if warning := precision_warning(device, precision):
        _log(rank, warning)
    first_batch = None
    if run_cfg.get("compile") == "on":
        _log(rank, "compiling the loss; this takes a few seconds to a minute")
        first_batch = to_tensors(sampler.sample(bs), device)  # also the first step's batch
        compiling.compile_loss(method, first_batch, lambda: autocast(device, precision), lambda m: _log(rank, m))
    log_every, ckpt_every = run_cfg["log_every"], run_cfg["checkpoint_every"]
    eval_every = run_cfg["eval_every"] if run_cfg["eval_episodes"] else 0
    writer = metrics = evals = tracker = None
    if rank == 0:
        metrics = CsvLog(run_dir / "metrics.csv", start if resume else None)
        evals = CsvLog(run_dir / "eval.csv", start if resume else None)
        writer = _tensorboard(run_dir / "tb", start)
        if run_cfg.get("wandb"):
            from autodidact.workflows.tracking import WandbLog
            tracker = WandbLog(run_dir, run_cfg)

    from tqdm import tqdm
    bar = tqdm(total=total, initial=start, desc=f"{run_cfg['method']}", unit="step", dynamic_ncols=True,
               disable=not progress or rank != 0, smoothing=0.05)
    sums, count, t_last, sample_time = {}, 0, time.perf_counter(), 0.0
    method.train()
    # Denormal floats flushed to zero in the updates, as XLA (and so OGBench's reference) does
    # (runtime.py).
    with denormals_flushed():
        for step in range(start + 1, total + 1):
            t0 = time.perf_counter()
            batch = first_batch if first_batch is not None else to_tensors(sampler.sample(bs), device)
            first_batch = None
            sample_time += time.perf_counter() - t0
            with autocast(device, precision):
                info = method.update(batch)
            for k, v in info.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            bar.update(1)
            if step % log_every == 0 or step == total:
                now = time.perf_counter()
                row = {"step": step, **{k: float(v) / count for k, v in sums.items()},
                       "time/steps_per_s": count / max(now - t_last, 1e-9),
                       "time/sample_fraction": sample_time / max(now - t_last, 1e-9)}
                if rank == 0:
                    metrics.write(row)
                    _scalars(writer, tracker, row, step)
                    loss_key = next((k for k in row if k.endswith("/loss")), None)
                    if loss_key:
                        bar.set_postfix({loss_key: f"{row[loss_key]:.4g}"}, refresh=False)
                sums, count, t_last, sample_time = {}, 0, now, 0.0
            if rank == 0 and eval_every and (step % eval_every == 0 or step == total):
                with denormals_flushed(False):  # the simulator runs as it does in `autodidact eval`
                    result = evaluate_run(method, run_cfg, episodes=run_cfg["eval_episodes"], progress=False)
                row = {"step": step, "evaluation/overall_success": result["overall_success"],
                       **{f"evaluation/{t['task_name']}_success": t["success"] for t in result["tasks"]}}
                evals.write(row)
                _scalars(writer, tracker, row, step)
                atomic_write_json(run_dir / "eval" / f"step_{step:08d}.json", result)
                per_task = ", ".join(f"{t['success']:.2f}" for t in result["tasks"])
                bar.write(f"step {step}: success {result['overall_success']:.3f} ({per_task})")
            if step % ckpt_every == 0 or step == total:
                _checkpoint(run_dir, step, method, sampler, rank, world, run_cfg)
    bar.close()
    if writer is not None:
        writer.close()
    if tracker is not None:
        tracker.close()
    if rank == 0:
        method.eval()
        with torch.no_grad():
            for path in write_figures(method, run_dir, dataset, env=run_cfg.get("env")):
                _log(rank, f"wrote {path}")
            if method.name in OBJECTIVES:
                for path in export_encoder(method, run_dir, dataset, run_cfg):
                    _log(rank, f"wrote {path}")
    if world > 1:
        dist.barrier()
    return run_dir


def _checkpoint(run_dir, step, method, sampler, rank, world, run_cfg):
    sampler_state = sampler.state_dict()
    if world > 1:
        states = [None] * world
        dist.all_gather_object(states, sampler_state)
        sampler_state = states
    if rank == 0:
        save_checkpoint(run_dir / "checkpoints", step, method, {"sampler": sampler_state})
        prune_checkpoints(run_dir / "checkpoints", run_cfg["keep_checkpoints"])


def _scalars(writer, tracker, row, step):
    """One metric row to TensorBoard and, with --wandb, to W&B: the same scalars at the same step."""
    for k, v in row.items():
        if k != "step":
            writer.add_scalar(k, v, step)
    if tracker is not None:
        tracker.log(row, step)


def _tensorboard(log_dir, start):
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(log_dir=str(log_dir), purge_step=start + 1 if start else None)


def _log(rank, msg):
    if rank == 0:
        print(msg, file=sys.stderr)
