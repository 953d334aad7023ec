"""Run directories: their format, and building a run's method from what it saved.

A run directory holds everything needed to understand and continue a run:

  run.json          format version, method, dataset, env, seed, steps, eval and speed settings
  config.json       the method's full config, with its `type`
  command.txt       every command that started or resumed this run, one per line
  metrics.csv       training metrics (mean over each logging interval), namespaced
  eval.csv          success per task and overall at each evaluation
  tb/               the same metrics for TensorBoard
  checkpoints/      see checkpoint.py; latest.json names the newest
  eval/             JSON results of evaluations; videos/ when asked for
  figures/          what the method learned, drawn (HILP's phi, Play-LMP's plan latents)

A fine-tuning run (`autodidact finetune`, finetune.py) has `kind: finetune` in run.json, and
episodes.csv and a replay buffer in each checkpoint besides.

Format versions: 1 (autodidact 0.1.0) kept every goal-relabeling setting as a flat config key
(`value_p_curgoal`), in every method's config whether it used them or not; 2 nests them
(`value_goals.p_curgoal`) in the methods that use them and adds `kernels`. Version-1 runs load,
resume and evaluate: `migrate` rewrites what they saved, in memory (the files stay as they are).
"""

import shlex
import sys
from pathlib import Path

import torch

from autodidact import kernels
from autodidact.core import config as cfglib
from autodidact.core.errors import UserError
from autodidact.core.io import atomic_write_json, atomic_write_text, write_error
from autodidact.core.io import read_json
from autodidact.methods import get_trainable
from autodidact.workflows.checkpoint import latest_checkpoint, load_checkpoint

RUN_FORMAT_VERSION = 2
_GOAL_KEYS = ("p_curgoal", "p_trajgoal", "p_randomgoal")


def read_run(run_dir):
    """run.json of `run_dir`, migrated to the current format; a UserError if it is not a run."""
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").exists():
        raise UserError(f"{run_dir}: not a run directory (no run.json)")
    run_cfg = read_json(run_dir / "run.json", "run file")
    if not isinstance(run_cfg, dict) or not isinstance(run_cfg.get("format_version", 1), int):
        raise UserError(f"{run_dir}/run.json: not a run file (expected an object with an integer format_version)")
    if run_cfg.get("format_version", 1) > RUN_FORMAT_VERSION:
        raise UserError(f"{run_dir}/run.json: run format {run_cfg['format_version']} is newer than this "
                        "autodidact reads; upgrade autodidact")
    return migrate(run_cfg)


def migrate(run_cfg):
    """A run.json of any earlier format, as the current format would hold it."""
    run_cfg = dict(run_cfg)
    if run_cfg.get("format_version", 1) < 2:
        cls = get_trainable(run_cfg["method"])
        fields = {name.split(".")[0] for name in cfglib.keys(cls.Config)}
        old = dict(run_cfg["config"])
        new = {k: v for k, v in old.items() if k == "type" or (k in fields and k != "gc_negative")}
        for prefix in ("value", "actor"):
            keys = {f"{prefix}_{k}": k for k in _GOAL_KEYS} | {f"{prefix}_geom_sample": "geom_sample"}
            if f"{prefix}_goals" in fields:
                new[f"{prefix}_goals"] = {short: old[k] for k, short in keys.items() if k in old}
        if "gc_negative" in fields and "gc_negative" in old:
            new["gc_negative"] = old["gc_negative"]
        # 0.1.0 presets were flat keys too; none named a goal setting.
        run_cfg.update(config=new, format_version=RUN_FORMAT_VERSION, kernels=kernels.DEFAULT)
    return run_cfg


def build_method(run_cfg):
    """Construct the method of a run from its saved config and shapes, seeded."""
    if run_cfg.get("kind") == "finetune":
        raise UserError(f"a fine-tuning run ({run_cfg['method']} on {run_cfg['env']}): continue it with "
                        "`autodidact finetune --resume`; its evaluations are in eval.csv and eval/")
    cls = get_trainable(run_cfg["method"])
    saved = {k: v for k, v in run_cfg["config"].items() if k != "type"}
    # A run saved before a config field existed was trained with that field's old behaviour.
    saved = {**{k: v for k, v in cls.legacy_defaults.items() if k not in saved}, **saved}
    cfg = cfglib.from_dict(cls.Config, saved)
    torch.manual_seed(run_cfg["seed"])
    return cls(cfg, tuple(run_cfg["obs_shape"]), run_cfg["action_dim"])


def load_run(run_dir, checkpoint=None):
    """(run_cfg, method with the newest weights, checkpoint dir, its step) of a finished or running run."""
    run_dir = Path(run_dir)
    run_cfg = read_run(run_dir)
    ckpt = Path(checkpoint) if checkpoint else latest_checkpoint(run_dir / "checkpoints")
    if ckpt is None:
        raise UserError(f"{run_dir}: has no checkpoint yet; train it first")
    method = build_method(run_cfg)
    state = load_checkpoint(ckpt, method, restore_optimizers=False, restore_rng=False)
    return run_cfg, method, ckpt, state["step"]


def append_command(out, argv=None):
    """Add the command line (this process's, or `argv`) to the run's command.txt."""
    argv = sys.argv if argv is None else argv
    line = " ".join(shlex.quote(a) for a in argv)
    prev = (out / "command.txt").read_text() if (out / "command.txt").exists() else ""
    atomic_write_text(out / "command.txt", prev + line + "\n")


def create_run_dir(out, run_cfg, argv=None):
    """Make a new run directory: config.json, command.txt, then run.json, written last because its
    presence marks a run (a directory killed before it is not one)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(out, exc) from None
    atomic_write_json(out / "config.json", run_cfg["config"])
    append_command(out, argv)
    atomic_write_json(out / "run.json", run_cfg)
