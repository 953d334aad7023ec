"""The `autodidact` command line.

User errors (bad files, flags, config values) print one line `autodidact: error: ...` and exit
with code 2, with no traceback. Heavy imports happen inside each subcommand so `--help` is fast.
"""

import argparse
import os
import sys
import warnings

from autodidact.core.errors import UserError

EPILOG = """examples:
  autodidact collect pointmaze-medium-navigate-v0 --out data --episodes 100
  autodidact info data/pointmaze-medium-navigate-v0.npz
  autodidact label data/play-10pct-labeled.npz --out data/play-idm.npz
  autodidact convert ~/.minari/datasets/mujoco/pusher/expert-v0 data/pusher.npz
  autodidact train --method gcbc --dataset data/pointmaze-medium-navigate-v0.npz --out runs/gcbc --steps 20000
  autodidact train --resume runs/gcbc
  autodidact finetune --env pointmaze-medium-singletask-task1-v0 --method rlpd --prior data/pointmaze-medium-navigate-v0.npz --out runs/rlpd --env-steps 20000
  autodidact eval runs/gcbc --episodes 20 --video
  autodidact prompt runs/hilp --goal all --episodes 20
  autodidact report runs/gcbc runs/hilp --out report.html
  autodidact export runs/gcbc --format onnx --out policy.onnx
"""


class _Parser(argparse.ArgumentParser):
    """argparse that raises UserError instead of printing usage and exiting."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message}")


def _nonneg_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _pos_int(text):
    v = _nonneg_int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _fraction(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return v


def build_parser():
    from autodidact import __version__
    p = _Parser(prog="autodidact", description="Teach agents to act from unlabeled interaction data.",
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"autodidact {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    c = sub.add_parser("collect", help="generate a dataset with OGBench's scripted oracles",
                       description="Generate DIR/NAME.npz and DIR/NAME-val.npz (OGBench naming and layout) "
                                   "with the oracles shipped in the ogbench package.")
    c.add_argument("name", help="OGBench dataset name, e.g. pointmaze-medium-navigate-v0, cube-single-play-v0")
    c.add_argument("--out", required=True, help="output directory (created if missing)")
    c.add_argument("--episodes", type=_pos_int, default=None,
                   help="training episodes (default: OGBench's count); validation gets a tenth, at least 1")
    c.add_argument("--seed", type=_nonneg_int, default=0, help="random seed; output is identical for any --workers")
    c.add_argument("--workers", type=_pos_int, default=1, help="worker processes (default 1)")
    c.add_argument("--max-episode-steps", type=_pos_int, default=None, metavar="N",
                   help="episode length (default: OGBench's, e.g. 1001 for play data); shorter for quick tests")
    c.add_argument("--render", choices=("fast", "ogbench"), default="fast",
                   help="visual- datasets only: how frames are drawn. 'fast' (default) renders a copy of the "
                        "scene with a 1024 shadow map, decimated translucent arm meshes and a coarser floor "
                        "grid, ~4-5x faster on a CPU, mean pixel difference below 1 gray level (see "
                        "docs/COLLECTION.md); 'ogbench' uses the env's own renderer unchanged")
    c.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    i = sub.add_parser("info", help="summarize a dataset file",
                       description="Print episodes, transitions, shapes, value ranges, episode-length stats "
                                   "and state coverage of a dataset in any OGBench layout.")
    i.add_argument("path", help="dataset .npz")
    i.add_argument("--grid", type=_pos_int, default=20,
                   help="cells per axis of the coverage grid when the env's maze is unknown (default 20)")
    i.add_argument("--figure", default=None, help="also write a coverage figure (PNG) to this path")

    v = sub.add_parser("convert", help="import a Minari, LeRobot, robomimic or D4RL dataset, or change layout",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Read SOURCE and write it as an OGBench-layout dataset .npz: observations (states\n"
                                   "or uint8 images), actions and rewards where present, and the source's episode\n"
                                   "boundaries. SOURCE is an OGBench .npz (any layout), a Minari dataset directory, a\n"
                                   "LeRobotDataset directory (Parquet plus MP4 video) or a robomimic / D4RL HDF5 file;\n"
                                   "the format is recognized from SOURCE or named with --from. docs/FORMATS.md says\n"
                                   "what each field becomes.",
                       epilog="examples:\n"
                              "  autodidact convert ~/.minari/datasets/mujoco/pusher/expert-v0 pusher.npz\n"
                              "  autodidact convert lerobot/pusht pusht.npz\n"
                              "  autodidact convert lerobot/pusht pusht-images.npz --obs-keys observation.image\n"
                              "  autodidact convert low_dim.hdf5 lift.npz --obs-keys robot0_eef_pos,object\n"
                              "  autodidact convert data.npz data-mmap.npz --uncompressed\n"
                              "  autodidact convert data.npz data-10pct.npz --label-fraction 0.1 --seed 0")
    v.add_argument("src", metavar="SOURCE", help="input dataset: file or directory (never modified)")
    v.add_argument("dst", metavar="OUT.npz", help="output .npz (written atomically)")
    v.add_argument("--from", dest="source_format", choices=["ogbench", "minari", "lerobot", "hdf5"], default=None,
                   help="format of SOURCE (default: recognized from it). hdf5 covers robomimic (data/demo_N) "
                        "and D4RL (flat observations, actions, ...) files")
    v.add_argument("--obs-keys", default=None, metavar="KEY[,KEY...]",
                   help="which source fields form the observation: Dict-space keys (minari, default "
                        "'observation'), obs/ keys (robomimic, default every vector key in sorted order), "
                        "features (lerobot, default observation.state; a camera such as "
                        "observation.images.top gives uint8 images). Several vector keys are concatenated "
                        "in the order given")
    v.add_argument("--layout", choices=["ogbench", "compact", "regular"], default="ogbench",
                   help="ogbench: OGBench's file layout (default); compact: with valids; regular: with "
                        "next_observations")
    v.add_argument("--uncompressed", action="store_true", help="store members uncompressed (memory-mappable)")
    v.add_argument("--label-fraction", type=_fraction, default=None, metavar="F",
                   help="keep the actions of a seeded fraction F of the episodes (at least one) and hide the "
                        "rest through action_mask, their actions zeroed; 0 drops the actions field (an "
                        "action-free file). See docs/ACTIONFREE.md")
    v.add_argument("--seed", type=_nonneg_int, default=0, help="which episodes --label-fraction keeps (default 0)")
    v.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    lb = sub.add_parser("label", help="infer missing actions with an inverse dynamics model",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Train a non-causal inverse dynamics model (a_t from o_(t-K)..o_(t+K+1), as VPT's)\n"
                                    "on the recorded actions of DATASET and of --labeled FILE, report its action error\n"
                                    "on held-out labeled episodes beside two baselines (the mean action, the untrained\n"
                                    "model), then write OUT: every episode with an action at every step, and the bool\n"
                                    "field action_inferred set where the model supplied it. Any method trains on OUT.\n"
                                    "See docs/ACTIONFREE.md.",
                        epilog="examples:\n"
                               "  autodidact convert data.npz data-10pct.npz --label-fraction 0.1\n"
                               "  autodidact label data-10pct.npz --out data-idm.npz\n"
                               "  autodidact label play-no-actions.npz --labeled demos.npz --out play-idm.npz\n"
                               "  autodidact label visual-data.npz --labeled demos.npz --out idm.npz --set encoder=impala_small")
    lb.add_argument("dataset", metavar="DATASET", help="dataset .npz whose unlabeled steps get actions (never modified)")
    lb.add_argument("--out", required=True, metavar="OUT.npz", help="fully labeled dataset to write (atomically)")
    lb.add_argument("--labeled", default=None, metavar="FILE.npz",
                    help="a second file with actions (same observations); it trains the model, and its episodes "
                         "follow DATASET's in OUT")
    lb.add_argument("--context", type=_nonneg_int, default=None, metavar="K",
                    help="observations on each side of the action (default 1: o_(t-1)..o_(t+2))")
    lb.add_argument("--steps", type=_pos_int, default=10_000, help="gradient steps (default 10000)")
    lb.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the held-out split, networks and batches")
    lb.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a model setting (repeatable): context, hidden_dims, layer_norm, lr, batch_size, "
                         "val_fraction, encoder (impala_small for frames)")
    lb.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    lb.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    ic = sub.add_parser("icvf", help="pretrain an ICVF representation from observations alone",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Train an intention-conditioned value function (ICVF, Ghosh et al. 2023) on\n"
                                    "DATASET without reading its actions or rewards, and write its representation\n"
                                    "phi(s), psi(g) to OUT (safetensors). GCIVL's value network can start from it:\n"
                                    "`train --method gcivl --set icvf=OUT` (fine-tuned; icvf_frozen=true freezes it).\n"
                                    "See docs/ACTIONFREE.md.",
                        epilog="examples:\n"
                               "  autodidact icvf data/play-no-actions.npz --out icvf.safetensors --steps 100000\n"
                               "  autodidact train --method gcivl --dataset data/play-idm.npz --out runs/gcivl-icvf \\\n"
                               "      --set icvf=icvf.safetensors --set icvf_frozen=true")
    ic.add_argument("dataset", metavar="DATASET", help="dataset .npz (actions, if any, are ignored)")
    ic.add_argument("--out", required=True, metavar="OUT.safetensors", help="representation file (written atomically)")
    ic.add_argument("--steps", type=_pos_int, default=100_000, help="gradient steps (default 100000)")
    ic.add_argument("--seed", type=_nonneg_int, default=0, help="seed of networks and batches")
    ic.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a setting (repeatable): lr, batch_size, hidden_dims, layer_norm, discount, tau, "
                         "expectile, p_samegoal, goals.p_curgoal/p_trajgoal/p_randomgoal, encoder")
    ic.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    ic.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    pt = sub.add_parser(
        "pretrain", help="pretrain an observation encoder with a self-supervised objective",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train an observation encoder (IMPALA for frames, an MLP for states) on DATASET with a\n"
                    "self-supervised OBJECTIVE into RUN_DIR, through the same loop as `train` (progress,\n"
                    "metrics.csv with the objective's losses and the embeddings' RankMe, checkpoints,\n"
                    "bit-identical --resume). When it ends, RUN_DIR/encoder.safetensors holds the encoder and\n"
                    "RUN_DIR/encoder_health.json its RankMe and a linear probe to the simulator state (qpos),\n"
                    "each beside a random-init encoder. Objectives:\n"
                    "  spr     predict future embeddings through a latent transition model (needs actions)\n"
                    "  dynamo  latent inverse + forward dynamics over windows, covariance regularizer\n"
                    "  byol    predict an EMA target's embedding of a future observation (BYOL-gamma)\n"
                    "  barlow  Barlow Twins on temporal views\n"
                    "  vicreg  VICReg on temporal views\n"
                    "  idm     predict a_t from the embeddings of o_t and o_t+1 (needs actions)\n"
                    "Settings: `autodidact methods --config OBJECTIVE`. See docs/PRETRAIN.md.",
        epilog="examples:\n"
               "  autodidact pretrain --objective vicreg --dataset data/cube-single-play-v0.npz --out runs/enc-vicreg\n"
               "  autodidact pretrain --objective dynamo --dataset data/visual-cube-single-play-v0.npz \\\n"
               "      --out runs/enc-dynamo --steps 20000\n"
               "  autodidact pretrain --resume runs/enc-dynamo")
    pt.add_argument("--objective", help="spr, dynamo, byol, barlow, vicreg or idm")
    pt.add_argument("--dataset", help="dataset .npz (frames: visual-* names get impala_small, batch 256, p_aug 0.5)")
    pt.add_argument("--out", help="run directory to create")
    pt.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its newest checkpoint")
    pt.add_argument("--steps", type=_pos_int, default=None,
                    help="total gradient steps (default 100000; with --resume, a new total extends the run)")
    pt.add_argument("--seed", type=_nonneg_int, default=0, help="seed for networks and batches")
    pt.add_argument("--log-every", type=_nonneg_int, default=0, help="log metrics every N steps (default steps/100)")
    pt.add_argument("--checkpoint-every", type=_nonneg_int, default=0,
                    help="checkpoint every N steps (default steps/10)")
    pt.add_argument("--keep-checkpoints", type=_pos_int, default=2, help="checkpoints kept on disk (default 2)")
    pt.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    pt.add_argument("--precision", choices=["float32", "bf16"], default="float32",
                    help="float32 (default), or bf16 autocast as `train --precision bf16`")
    pt.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override an objective setting (repeatable); see `autodidact methods --config OBJECTIVE`")
    pt.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    t = sub.add_parser("train", help="pretrain a method on a dataset, or resume a run",
                       description="Train METHOD on DATASET into RUN_DIR (config, metrics, checkpoints, exact "
                                   "command), or continue a killed run with --resume RUN_DIR. --encoder RUN starts "
                                   "the method's observation and goal encoders from a pretrained encoder "
                                   "(`autodidact pretrain`), fine-tuned, or fixed with --freeze.")
    t.add_argument("--method", help="method name (see `autodidact methods`)")
    t.add_argument("--dataset", help="dataset .npz (OGBench names pick the env and published hyperparameters)")
    t.add_argument("--out", help="run directory to create")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its newest checkpoint")
    t.add_argument("--steps", type=_pos_int, default=None, help="total gradient steps (default 100000; with "
                   "--resume, a new total extends the run)")
    t.add_argument("--eval-every", type=_nonneg_int, default=10_000, help="evaluate every N steps (default 10000)")
    t.add_argument("--eval-episodes", type=_nonneg_int, default=10,
                   help="episodes per task at each evaluation; 0 disables evaluation (default 10)")
    t.add_argument("--seed", type=_nonneg_int, default=0, help="seed for networks, sampler and evaluation")
    t.add_argument("--log-every", type=_nonneg_int, default=0, help="log metrics every N steps (default steps/100)")
    t.add_argument("--checkpoint-every", type=_nonneg_int, default=0,
                   help="checkpoint every N steps (default: --eval-every, or steps/10 without evaluation)")
    t.add_argument("--keep-checkpoints", type=_pos_int, default=2, help="checkpoints kept on disk (default 2)")
    t.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    t.add_argument("--precision", choices=["float32", "bf16"], default="float32",
                   help="float32 (default), or bf16: bfloat16 matmuls under autocast with float32 weights, "
                        "optimizer state and output layers (faster on CPUs with AVX512-BF16 or AMX and on "
                        "GPUs with bf16 tensor cores; elsewhere emulated and many times slower, with a warning)")
    t.add_argument("--kernels", choices=["torch", "tuned"], default="tuned",
                   help="tuned (default): CPU speed-ups for large float32 layers (oneDNN dense layers, big "
                        "ensembles member by member; on GPUs and small layers the same as torch); torch: plain "
                        "PyTorch, the better choice on Intel CPUs, where MKL is the faster kernel. The same "
                        "results to float32 rounding either way. See docs/PERFORMANCE.md")
    t.add_argument("--compile", choices=["on", "off"], default="off",
                   help="torch.compile the training loss (default off; needs a C++ compiler on CPU)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a method config field (repeatable); see `autodidact methods --config M`")
    t.add_argument("--encoder", metavar="RUN",
                   help="start every observation and goal encoder of the method (target networks included) from "
                        "a pretrained encoder: a run directory of `autodidact pretrain` or its encoder.safetensors. "
                        "Its architecture replaces the method's encoder settings; networks that read [s; g] through "
                        "one stacked encoder read the two separately. The run records the file's absolute path "
                        "(config key pretrained_encoder); see docs/PRETRAIN.md")
    t.add_argument("--freeze", action="store_true",
                   help="with --encoder: keep the pretrained weights fixed (no gradient, not in the optimizer, "
                        "bit-identical after training); without it they are fine-tuned with the rest")
    t.add_argument("--wandb", action="store_true",
                   help="also log the metrics to Weights & Biases (pip install 'autodidact[wandb]'); "
                        "WANDB_MODE=offline logs without a network into RUN_DIR/wandb/, WANDB_PROJECT names "
                        "the project (default autodidact); a resumed run keeps logging")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    f = sub.add_parser(
        "finetune", help="learn a single-task policy online, from scratch or with reward-free prior data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Interact with an OGBench single-task environment (sparse task reward) and learn a policy\n"
                    "online into RUN_DIR (config, command, metrics.csv, episodes.csv, eval.csv, checkpoints\n"
                    "with the replay buffer), or continue a killed run exactly with --resume RUN_DIR.\n"
                    "Methods: rlpd (Ball et al. 2023: SAC, half of every batch from the prior data, LayerNorm\n"
                    "critic ensemble, several critic updates per env step; without --prior, the same learner\n"
                    "from scratch), explore (Li et al. 2023: RLPD whose prior data is labeled with a reward\n"
                    "model plus an RND bonus) and supe (Wilcoxson et al. 2025: ExPLORe one level up, a policy\n"
                    "over the frozen skills of a skill-vae or HILP run, --skills, each run for skill_horizon env\n"
                    "steps, the prior data labeled with those skills). --init RUN starts rlpd or explore from a\n"
                    "pretrained goal-conditioned run prompted with the task's goal. `autodidact methods --config\n"
                    "rlpd` lists settings.",
        epilog="CPU defaults vs published (rlpd, explore, supe):\n"
               "  utd (critic updates per env step)   2    published 20 (supe: per update, 4 updates\n"
               "                                           per 4-step skill, so also 20 per env step)\n"
               "  num_critics                         2    published 10\n"
               "  num_min_critics                     2    published 2 (explore: 1)\n"
               "  everything else (batch 256 = 128 prior + 128 online, 256x256 MLPs, lr 3e-4, discount 0.99,\n"
               "  tau 0.005, target entropy -action_dim/2, start_training 5000) as published.\n"
               "  --published applies the published settings; --set key=value overrides any one.\n"
               "Prior transitions are reward-free: rlpd labels them with reward 0 (prior_reward) and mask 1.\n"
               "See docs/FINETUNE.md.\n\n"
               "examples:\n"
               "  autodidact finetune --env pointmaze-medium-singletask-task1-v0 --method rlpd --out runs/scratch\n"
               "  autodidact finetune --env pointmaze-medium-singletask-task1-v0 --method explore \\\n"
               "      --prior data/pointmaze-medium-navigate-v0.npz --out runs/explore --env-steps 50000\n"
               "  autodidact train --method skill-vae --dataset data/pointmaze-medium-navigate-v0.npz --out runs/vae\n"
               "  autodidact finetune --env pointmaze-medium-singletask-task1-v0 --method supe --skills runs/vae \\\n"
               "      --prior data/pointmaze-medium-navigate-v0.npz --out runs/supe --env-steps 50000\n"
               "  autodidact train --method gciql --dataset data/pointmaze-medium-navigate-v0.npz --out runs/gciql\n"
               "  autodidact finetune --env pointmaze-medium-singletask-task1-v0 --method rlpd --init runs/gciql \\\n"
               "      --prior data/pointmaze-medium-navigate-v0.npz --out runs/improved --env-steps 50000\n"
               "  autodidact finetune --resume runs/explore --env-steps 100000")
    f.add_argument("--env", metavar="ENV",
                   help="OGBench single-task environment, e.g. pointmaze-medium-singletask-task1-v0 or "
                        "cube-single-singletask-task1-v0 (dataset-style names such as "
                        "pointmaze-medium-navigate-singletask-task1-v0 map to their env)")
    f.add_argument("--method", help="rlpd, explore or supe")
    f.add_argument("--prior", metavar="DATASET", default=None,
                   help="reward-free prior data (.npz with observations and actions of the env's shapes); "
                        "without it, learn from scratch")
    f.add_argument("--skills", metavar="RUN", default=None,
                   help="supe: a run of `autodidact train --method skill-vae` (SUPE's trajectory VAE) or "
                        "`--method hilp` on the prior data, whose skill policy the online high-level policy composes")
    f.add_argument("--init", metavar="RUN", default=None,
                   help="rlpd, explore: start from a pretrained goal-conditioned run (autodidact train: gcbc, gciql, "
                        "hiql, hilp, ...) prompted with the task's goal; it acts during the first start_training "
                        "steps and the actor is pulled towards it, a pull that decays over init_bc_steps")
    f.add_argument("--out", help="run directory to create")
    f.add_argument("--resume", metavar="RUN_DIR", help="continue this run exactly from its newest checkpoint")
    f.add_argument("--env-steps", type=_pos_int, default=None, metavar="N",
                   help="total environment steps (default 100000; with --resume, a new total extends the run)")
    f.add_argument("--seed", type=_nonneg_int, default=0, help="seed for networks, actions, batches and episodes")
    f.add_argument("--eval-every", type=_nonneg_int, default=10_000, metavar="N",
                   help="evaluate the deterministic policy every N env steps (default 10000)")
    f.add_argument("--eval-episodes", type=_nonneg_int, default=10, metavar="N",
                   help="episodes per evaluation; 0 disables evaluation (default 10)")
    f.add_argument("--log-every", type=_nonneg_int, default=0, metavar="N",
                   help="write a metrics.csv row every N env steps (default env steps/100)")
    f.add_argument("--checkpoint-every", type=_nonneg_int, default=0, metavar="N",
                   help="checkpoint every N env steps (default: --eval-every, or env steps/10 without evaluation)")
    f.add_argument("--keep-checkpoints", type=_pos_int, default=2, metavar="N", help="checkpoints kept on disk (default 2)")
    f.add_argument("--published", action="store_true",
                   help="use the method's published settings (UTD 20, 10 critics) instead of the CPU defaults")
    f.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a method config field (repeatable), e.g. --set utd=20 --set num_critics=10")
    f.add_argument("--video", action="store_true",
                   help="also render one episode of the last evaluation to RUN_DIR/videos/ (mp4)")
    f.add_argument("--max-episode-steps", type=_pos_int, default=None, metavar="N",
                   help="end episodes after N steps instead of the env's limit (quick looks; success rates are "
                        "then not comparable with OGBench's)")
    f.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    e = sub.add_parser("eval", help="evaluate a run on its environment's tasks",
                       description="Evaluate the newest checkpoint of RUN_DIR on OGBench's evaluation tasks; "
                                   "writes RUN_DIR/eval/final.json (and videos with --video).")
    e.add_argument("run_dir", help="run directory")
    e.add_argument("--episodes", type=_pos_int, default=20, help="episodes per task (default 20)")
    e.add_argument("--video", action="store_true", help="also render one episode per task to RUN_DIR/videos/")
    e.add_argument("--seed", type=_nonneg_int, default=None, help="evaluation seed (default: the run's seed)")
    e.add_argument("--max-steps", type=_pos_int, default=None,
                   help="cap episode length for a quick look (default: the env's own limit; capped "
                        "success rates are not comparable with OGBench's)")
    e.add_argument("--perturb", default=None, metavar="TARGET[@WHEN]",
                   help="displace something once per episode to measure recovery (retrying until success): "
                        "TARGET is object, arm (= agent in mazes) or both; WHEN is success (undo the first "
                        "success), a step (50) or a window of the time limit (default 0.1-0.3). Results go "
                        "to RUN_DIR/eval/final_perturbed.json")
    e.add_argument("--perturb-cells", type=_pos_int, default=2, metavar="N",
                   help="mazes: how many corridor cells away the agent lands at most (default 2)")
    e.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    pr = sub.add_parser(
        "prompt", help="prompt a pretrained policy with a goal or a reward, zero-shot",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Prompt the newest checkpoint of RUN_DIR without further training and evaluate it: with a "
                    "goal (each task's goal observation, or one from a file), or with a reward (a task of the "
                    "env's OGBench single-task variant, computed for dataset states, or your own reward-labeled "
                    "samples). Prints a table and writes RUN_DIR/prompt/NAME.json. `autodidact methods` lists "
                    "which prompts each method accepts.",
        epilog="examples:\n"
               "  autodidact prompt runs/hilp --goal all --episodes 20\n"
               "  autodidact prompt runs/hilp --goal 3 --plan\n"
               "  autodidact prompt runs/hilp --goal-file goal.npy --task 2\n"
               "  autodidact prompt runs/hilp --reward-task 2\n"
               "  autodidact prompt runs/hilp --reward-samples labeled.npz --task 2")
    pr.add_argument("run_dir", help="run directory")
    what = pr.add_mutually_exclusive_group(required=True)
    what.add_argument("--goal", metavar="TASK_ID",
                      help="goal prompt: reach the goal of these evaluation tasks (an id, ids like 1,3, or 'all'); "
                           "the goal observation comes from the env each episode")
    what.add_argument("--goal-file", metavar="OBS.npy",
                      help="goal prompt: reach this one observation (a .npy of one observation); episodes start "
                           "as --task's and success is that task's check, so use a goal of that task")
    what.add_argument("--reward-task", metavar="TASK_ID",
                      help="reward prompt: maximize the reward of task TASK_ID of the env's single-task variant "
                           "(e.g. cube-single-singletask-task2-v0), computed for --num-samples dataset states; "
                           "evaluated by its return there")
    what.add_argument("--reward-samples", metavar="FILE.npz",
                      help="reward prompt from your samples: an .npz with observations and rewards (the reward "
                           "of each observation; with next_observations, the reward of reaching it); evaluated "
                           "by its return in the single-task env of --task")
    pr.add_argument("--task", metavar="TASK_ID", default=None,
                    help="with --goal-file: tasks to start from and check success on (default all); with "
                         "--reward-samples: the single-task env to score returns in (default the env's default task)")
    pr.add_argument("--plan", action="store_true",
                    help="goal prompts: steer through HILP's recursive midpoint subgoals in phi space over "
                         "dataset states (test-time planning)")
    pr.add_argument("--plan-recursions", type=_nonneg_int, metavar="N", default=3,
                    help="midpoint recursions: the subgoal lies 2^-N of the way to the goal (default 3, published)")
    pr.add_argument("--plan-knns", type=_pos_int, metavar="N", default=50,
                    help="dataset states averaged into each midpoint (default 50, published)")
    pr.add_argument("--plan-states", type=_pos_int, metavar="N", default=50_000,
                    help="random dataset states the subgoals are chosen among (default 50000, published)")
    pr.add_argument("--num-samples", type=_pos_int, metavar="N", default=10_000,
                    help="reward prompts: samples in the least-squares fit of the skill (default 10000, as HILP)")
    pr.add_argument("--dataset", default=None, metavar="PATH",
                    help="dataset .npz whose states are labeled with rewards or planned over (default: the run's)")
    pr.add_argument("--episodes", type=_pos_int, default=20, metavar="N", help="episodes per task (default 20)")
    pr.add_argument("--seed", type=_nonneg_int, default=None,
                    help="seed of the episodes and of the sampled states (default: the run's seed)")
    pr.add_argument("--max-steps", type=_pos_int, default=None,
                    help="cap episode length for a quick look (default: the env's own limit; capped results "
                         "are not comparable with OGBench's)")
    pr.add_argument("--checkpoint", default=None, metavar="DIR",
                    help="checkpoint directory to load (default: the newest)")
    pr.add_argument("--name", default=None,
                    help="result name: writes RUN_DIR/prompt/NAME.json (default from the prompt, e.g. reward-task2)")
    pr.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    r = sub.add_parser("report", help="one self-contained HTML page about one or more runs",
                       description="Write one HTML file (no network needed to view it) with each run's learning "
                                   "curves, success per task beside OGBench's published number, config and "
                                   "command, evaluation videos and the figures its method drew; with several "
                                   "runs, a comparison table and overlaid curves. Run `autodidact eval RUN "
                                   "--video` first to have videos in it. See docs/REPORT.md.")
    r.add_argument("runs", nargs="+", metavar="RUN", help="run directories (never modified)")
    r.add_argument("--out", required=True, help="HTML file to write (atomically)")
    r.add_argument("--title", default=None, help="page title (default: the run names)")
    r.add_argument("--no-videos", action="store_true",
                   help="leave the evaluation videos out (a smaller file; videos are re-encoded to WebM)")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    x = sub.add_parser("export", help="write a run's policy as ONNX or TorchScript",
                       description="Write the newest checkpoint's policy (temperature 0, actions clipped to "
                                   "[-1, 1]) as a file that runs without autodidact: onnxruntime for ONNX, "
                                   "torch.jit.load for TorchScript. Inputs: observations [B, *obs] and goals "
                                   "[B, *obs] (or HILP's skills [B, skill_dim] with --prompt skill; BESO adds "
                                   "noise [B, chunk*action_dim] of standard normals); output: actions "
                                   "[B, action_dim]. See docs/EXPORT.md.")
    x.add_argument("run_dir", help="run directory")
    x.add_argument("--format", choices=["onnx", "torchscript"], required=True,
                   help="onnx (needs pip install 'autodidact[export]') or torchscript")
    x.add_argument("--out", required=True, help="file to write (atomically), e.g. policy.onnx")
    x.add_argument("--prompt", choices=["goal", "skill"], default="goal",
                   help="goal (default): the policy takes goal observations; skill: HILP's latent skill z")
    x.add_argument("--checkpoint", default=None, metavar="DIR", help="checkpoint directory (default: the newest)")

    m = sub.add_parser("methods", help="list methods, or show one method's config",
                       description="One line per method; --config NAME lists its config fields and defaults.")
    m.add_argument("--config", metavar="METHOD", help="show this method's config fields")

    b = sub.add_parser("bench", help="measure a method's steady-state training speed",
                       description="Steady-state training steps/s (after warm-up), sampler batches/s, update "
                                   "FLOPs against this machine's matmul rate, and peak memory.")
    b.add_argument("--method", required=True, help="method name")
    b.add_argument("--dataset", required=True, help="dataset .npz (OGBench names apply published presets)")
    b.add_argument("--steps", type=_pos_int, default=50, help="timed steps after warm-up (default 50)")
    b.add_argument("--warmup", type=_nonneg_int, default=10, help="untimed warm-up steps (default 10)")
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable)")
    b.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    b.add_argument("--precision", choices=["float32", "bf16"], default="float32",
                   help="float32 (default) or bf16 autocast, as `train --precision`")
    b.add_argument("--kernels", choices=["torch", "tuned"], default="tuned",
                   help="the tuned CPU kernels (default) or plain PyTorch, as `train --kernels`")
    b.add_argument("--compile", choices=["on", "off"], default="off",
                   help="torch.compile the loss, as `train --compile` (default off)")
    b.add_argument("--json", default=None, metavar="OUT", help="also write the result as JSON")

    d = sub.add_parser("demo", help="collect, train, evaluate on a small pointmaze dataset",
                       description="The whole job on an embedded default: collect a small "
                                   "pointmaze-medium-navigate-v0 dataset, train for a few CPU minutes, "
                                   "evaluate on OGBench's 5 tasks and print the success rate.")
    d.add_argument("--out", default="demo", help="working directory (default ./demo)")
    d.add_argument("--steps", type=_pos_int, default=None, help="training steps (default: demo preset)")
    d.add_argument("--seed", type=_nonneg_int, default=0, help="seed")
    d.add_argument("--method", default=None, help="method to train (default: the best one for the demo budget)")
    return p


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"autodidact: warning: {message}\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    warnings.formatwarning = _one_line_warning  # a person reads these; no source lines
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return 0
        return _dispatch(args, ["autodidact", *argv]) or 0
    except UserError as exc:
        print(f"autodidact: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # The environment refused a read or write (disk full, read-only, permission): one line.
        from autodidact.core.io import write_error
        print(f"autodidact: error: {write_error(exc.filename or 'output', exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autodidact: interrupted", file=sys.stderr)
        return 130


def _dispatch(args, argv):
    cmd = args.command
    if cmd == "collect":
        from autodidact.workflows.collect import collect
        train, val = collect(args.name, args.out, episodes=args.episodes, seed=args.seed,
                             workers=args.workers, progress=not args.no_progress,
                             max_episode_steps=args.max_episode_steps, render=args.render)
        print(f"wrote {train}\nwrote {val}")
    elif cmd == "info":
        from autodidact.workflows.info import print_info
        print_info(args.path, grid=args.grid, figure=args.figure)
    elif cmd == "convert":
        from autodidact.workflows.convert import convert
        keys = [k.strip() for k in args.obs_keys.split(",") if k.strip()] if args.obs_keys else None
        print(convert(args.src, args.dst, fmt=args.source_format, obs_keys=keys, layout=args.layout,
                      compressed=not args.uncompressed, progress=not args.no_progress,
                      label_fraction=args.label_fraction, seed=args.seed))
    elif cmd == "label":
        from autodidact.workflows.label import format_label_result, label
        print(format_label_result(label(args.dataset, args.out, labeled=args.labeled, steps=args.steps,
                                        seed=args.seed, context=args.context, overrides=args.overrides,
                                        device=args.device, progress=not args.no_progress)))
    elif cmd == "icvf":
        from autodidact.workflows.icvf import format_icvf_result, pretrain_icvf
        print(format_icvf_result(pretrain_icvf(args.dataset, args.out, steps=args.steps, seed=args.seed,
                                               overrides=args.overrides, device=args.device,
                                               progress=not args.no_progress)))
    elif cmd == "train":
        return _train(args, argv)
    elif cmd == "pretrain":
        return _pretrain(args, argv)
    elif cmd == "finetune":
        return _finetune(args, argv)
    elif cmd == "eval":
        return _eval(args)
    elif cmd == "prompt":
        return _prompt(args)
    elif cmd == "report":
        from autodidact.workflows.report import write_report
        path = write_report(args.runs, args.out, title=args.title, videos=not args.no_videos,
                            progress=not args.no_progress)
        print(f"wrote {path}")
    elif cmd == "export":
        _require_run_dir(args.run_dir)
        from autodidact.workflows.export import export_policy
        info = export_policy(args.run_dir, args.format, args.out, prompt=args.prompt, checkpoint=args.checkpoint)
        print(f"wrote {info['path']} ({info['bytes'] / 1024:.1f} KiB, {args.format}, {info['method']} @ step "
              f"{info['step']}) in {info['seconds']:.2f} s: {', '.join(info['inputs'])} -> actions")
    elif cmd == "methods":
        _methods(args)
    elif cmd == "bench":
        from autodidact.workflows.bench import bench, format_bench
        result = bench(args.method, args.dataset, steps=args.steps, warmup=args.warmup,
                       overrides=args.overrides, device=args.device, precision=args.precision,
                       kernels_name=args.kernels, compile_mode=args.compile)
        print(format_bench(result))
        if args.json:
            from autodidact.core.io import atomic_write_json
            atomic_write_json(args.json, result)
    elif cmd == "demo":
        from autodidact.workflows.demo import run_demo
        run_demo(args.out, steps=args.steps, seed=args.seed, method=args.method)


def _require_run_dir(path):
    """A mistyped run directory answers at once, before torch is imported (seconds on a slow CPU)."""
    from pathlib import Path
    if not (Path(path) / "run.json").exists():
        raise UserError(f"{path}: not a run directory (no run.json)")


def _pretrain(args, argv):
    from autodidact.methods import get_objective
    from autodidact.workflows.train import TrainSettings

    def settings():
        return TrainSettings(
            method=args.objective, dataset=args.dataset, out=args.out, steps=args.steps or 100_000,
            eval_every=0, eval_episodes=0, seed=args.seed, log_every=args.log_every,
            checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints, device=args.device,
            precision=args.precision, overrides=tuple(args.overrides), progress=not args.no_progress)

    _new_or_resume(args, argv, "pretrain", "objective", get_objective, settings)


def _train(args, argv):
    if args.resume:
        _require_run_dir(args.resume)
    if args.wandb:
        from autodidact.workflows.tracking import require_wandb
        require_wandb()  # a missing extra fails before anything is written
    if args.freeze and not args.encoder:
        raise UserError("--freeze keeps a pretrained encoder fixed; add --encoder RUN (a run of `autodidact pretrain`)")
    from autodidact.methods import get_method
    from autodidact.workflows.train import TrainSettings

    def settings():
        return TrainSettings(
            method=args.method, dataset=args.dataset, out=args.out, steps=args.steps or 100_000,
            eval_every=args.eval_every, eval_episodes=args.eval_episodes, seed=args.seed,
            log_every=args.log_every, checkpoint_every=args.checkpoint_every,
            keep_checkpoints=args.keep_checkpoints, device=args.device, precision=args.precision,
            kernels=args.kernels, compile=args.compile, overrides=tuple(args.overrides) + _encoder_overrides(args),
            progress=not args.no_progress, wandb=args.wandb)

    _new_or_resume(args, argv, "train", "method", get_method, settings, other_flags=("encoder", "freeze"),
                   wandb=args.wandb)


def _new_or_resume(args, argv, command, name_flag, check_name, settings, other_flags=(), wandb=False):
    """`command --resume RUN`, which refuses --NAME_FLAG, --dataset, --out, `other_flags` and --set
    (a run keeps its saved settings), or a new run from `settings()`: an unknown name fails first,
    listing the valid ones, then any missing flag."""
    from autodidact.workflows import train as trainer
    if args.resume:
        extra = [f for f in (name_flag, "dataset", "out", *other_flags) if getattr(args, f)]
        if extra or args.overrides:
            raise UserError("--resume continues a run with its saved settings; drop "
                            + ", ".join(f"--{f}" for f in extra + (["set"] if args.overrides else [])))
        run = trainer.resume_run(args.resume, argv=argv, steps=args.steps, device=args.device,
                                 progress=not args.no_progress, wandb=wandb)
    else:
        if getattr(args, name_flag):
            check_name(getattr(args, name_flag))
        missing = [f"--{f}" for f in (name_flag, "dataset", "out") if not getattr(args, f)]
        if missing:
            raise UserError(f"{command} needs {', '.join(missing)} (or --resume RUN_DIR)")
        run = trainer.new_run(settings(), argv=argv)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run: {run}")


def _encoder_overrides(args):
    """--encoder RUN [--freeze] as the config keys they set (new_run resolves RUN to its absolute file)."""
    if not args.encoder:
        return ()
    if any(o.split("=", 1)[0].strip() in ("pretrained_encoder", "freeze_encoder") for o in args.overrides):
        raise UserError("--encoder and --freeze set pretrained_encoder and freeze_encoder; drop those --set keys")
    return (f"pretrained_encoder={args.encoder}", f"freeze_encoder={str(args.freeze).lower()}")


def _finetune(args, argv):
    if args.resume:
        _require_run_dir(args.resume)
        extra = [f for f in ("env", "method", "prior", "skills", "init", "out") if getattr(args, f)]
        if extra or args.overrides or args.published:
            raise UserError("--resume continues a run with its saved settings; drop "
                            + ", ".join(f"--{f}" for f in extra + (["set"] if args.overrides else [])
                                        + (["published"] if args.published else [])))
    elif args.method:
        from autodidact.methods import get_finetune_method
        get_finetune_method(args.method)  # unknown names fail first, listing the valid ones
    from autodidact.workflows import finetune
    if args.resume:
        run = finetune.resume_run(args.resume, argv=argv, env_steps=args.env_steps, progress=not args.no_progress)
    else:
        missing = [f"--{f}" for f in ("env", "method", "out") if not getattr(args, f)]
        if missing:
            raise UserError(f"finetune needs {', '.join(missing)} (or --resume RUN_DIR)")
        s = finetune.FinetuneSettings(
            env=args.env, method=args.method, out=args.out, prior=args.prior, skills=args.skills, init=args.init,
            env_steps=args.env_steps or 100_000,
            eval_every=args.eval_every, eval_episodes=args.eval_episodes, seed=args.seed, log_every=args.log_every,
            checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
            published=args.published, overrides=tuple(args.overrides), max_episode_steps=args.max_episode_steps,
            video=args.video, progress=not args.no_progress)
        run = finetune.new_run(s, argv=argv)
    print(f"run: {run}")


def _eval(args):
    from pathlib import Path

    _require_run_dir(args.run_dir)
    from autodidact.core.io import atomic_write_json
    from autodidact.workflows.evaluate import evaluate_run, format_result
    from autodidact.workflows.runs import load_run
    run_cfg, method, ckpt, step = load_run(args.run_dir)
    video_dir = Path(args.run_dir) / "videos" if args.video else None
    perturb = None
    if args.perturb:
        from autodidact.workflows.evaluate import Perturbation
        perturb = Perturbation.parse(args.perturb, cells=args.perturb_cells)  # bad spec: one-line UserError
    result = evaluate_run(method, run_cfg, episodes=args.episodes, video_dir=video_dir,
                                    progress=not args.no_progress, seed=args.seed,
                                    max_episode_steps=args.max_steps, perturb=perturb)
    result["checkpoint_step"] = step
    # A perturbed evaluation must not overwrite the plain one.
    name = "final.json" if perturb is None else "final_perturbed.json"
    atomic_write_json(Path(args.run_dir) / "eval" / name, result)
    print(format_result(result, title=f"{run_cfg['method']} @ step {step} on {run_cfg['env']}"))
    if result.get("video"):
        print(f"video: {result['video']}")


def _prompt(args):
    from pathlib import Path

    _require_run_dir(args.run_dir)
    from autodidact.core.io import atomic_write_json
    from autodidact.workflows.prompt import format_prompt_result, run_prompt
    name, result = run_prompt(
        args.run_dir, goal=args.goal, goal_file=args.goal_file, reward_task=args.reward_task,
        reward_samples=args.reward_samples, tasks=args.task, plan=args.plan, episodes=args.episodes,
        num_samples=args.num_samples, plan_states=args.plan_states, plan_recursions=args.plan_recursions,
        plan_knns=args.plan_knns, dataset=args.dataset, seed=args.seed, max_episode_steps=args.max_steps,
        checkpoint=args.checkpoint, progress=not args.no_progress, name=args.name)
    path = Path(args.run_dir) / "prompt" / f"{name}.json"
    atomic_write_json(path, result)
    print(format_prompt_result(name, result))
    print(f"wrote {path}")


def _methods(args):
    from autodidact.core.config import describe
    from autodidact.methods import FINETUNE_METHODS, METHODS, OBJECTIVES, get_method
    if args.config:
        cls = (FINETUNE_METHODS.get(args.config) or OBJECTIVES.get(args.config) or get_method(args.config))
        print(f"{cls.name} config (override with --set key=value):")
        for name, typ, default, help_ in describe(cls.Config):
            print(f"  {name:<26} {typ:<16} {default!s:<18} {help_}")
        return
    for name, cls in METHODS.items():
        data = (f"{cls.data}, some actions" if cls.learns_from_unlabeled
                else cls.data + (" with actions" if cls.needs_actions else ""))
        print(f"{name:<10} prompts: {','.join(cls.prompts):<12} data: {data:<25} {cls.summary}")
    print("\nencoder objectives (`autodidact pretrain --objective NAME`):")
    for name, cls in OBJECTIVES.items():
        print(f"{name:<10} {'needs actions' if cls.needs_actions else 'no actions':<14} {cls.summary}")


if __name__ == "__main__":
    sys.exit(main())
