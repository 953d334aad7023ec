#!/usr/bin/env python
"""HILP zero-shot prompting beside HIQL and GCIVL, same data, same steps, same reduced CPU config.

For each dataset: train hilp, hiql and gcivl for --steps at batch 256 with 3x256 networks (the
published 1024 / 3x512 is ~6x the compute; per-dataset presets such as HIQL's subgoal_steps still
apply), then evaluate, with the same episodes per task and seeds:
- goal prompting on the environment's 5 evaluation tasks (HILP: z = normalize(phi(g) - phi(s))
  every step; HILP-Plan too with --plan);
- zero-shot reward prompting on each task's OGBench single-task variant (HILP only: z by least
  squares of the task's rewards, computed for --num-samples dataset states, on phi); its
  undiscounted return and success, beside a uniform random policy's.
Prints markdown tables and writes OUT/bench_hilp.json. Runs already trained in OUT are reused
(or extended to --steps), so an interrupted benchmark picks up where it stopped.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_hilp.py \\
        --datasets /tmp/benchdata/pointmaze-medium-navigate-v0.npz /tmp/playdata/cube-single-play-v0.npz \\
        --steps 20000 --episodes 10 --out runs/bench_hilp
    # smoke test (a minute or two):
    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_hilp.py --datasets D.npz --steps 200 --episodes 1 \\
        --max-steps 50 --num-samples 2000 --out /tmp/bench_hilp_smoke
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REDUCED = ("batch_size=256", "actor_hidden_dims=256,256,256", "value_hidden_dims=256,256,256")


def train(method, dataset, out, steps, seed, overrides, device):
    """Train (or reuse / extend) OUT; returns (run dir, wall seconds spent here, steps/s)."""
    from autodidact.workflows import train as trainer
    from autodidact.workflows.checkpoint import latest_checkpoint
    run = Path(out)
    t0 = time.perf_counter()
    if (run / "run.json").exists():
        ckpt = latest_checkpoint(run / "checkpoints")
        done = json.loads((ckpt / "state.json").read_text())["step"] if ckpt else 0
        if done >= steps:
            return run, 0.0, None
        trainer.resume_run(run, argv=["bench_hilp.py", "resume"], steps=steps, device=device, progress=True)
        trained = steps - done
    else:
        s = trainer.TrainSettings(method=method, dataset=str(dataset), out=str(run), steps=steps, eval_episodes=0,
                                  seed=seed, overrides=tuple(overrides), device=device, progress=True)
        trainer.new_run(s, argv=["bench_hilp.py", method, str(dataset)])
        trained = steps
    wall = time.perf_counter() - t0
    return run, wall, trained / max(wall, 1e-9)


class RandomPolicy:
    def __init__(self, action_dim, seed):
        self.rng, self.action_dim = np.random.default_rng(seed), action_dim

    def act(self, observations, goals=None):
        return self.rng.uniform(-1, 1, (len(observations), self.action_dim)).astype(np.float32)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", required=True, help="dataset .npz files named like OGBench datasets")
    p.add_argument("--methods", default="hilp,hiql,gcivl", help="comma-separated methods (default hilp,hiql,gcivl)")
    p.add_argument("--steps", type=int, default=20_000, help="gradient steps per method (default 20000)")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per task (default 10)")
    p.add_argument("--max-steps", type=int, default=None, help="cap episode length (smoke tests only)")
    p.add_argument("--tasks", default="1,2,3,4,5", help="reward-prompt tasks (single-task variants; default all 5)")
    p.add_argument("--num-samples", type=int, default=10_000, help="reward-labeled states per prompt (HILP: 10k)")
    p.add_argument("--plan", action="store_true", help="also evaluate HILP-Plan goal prompting (3 recursions, 50 knns)")
    p.add_argument("--no-reward", action="store_true", help="skip the reward prompts")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"config override for every method, after the reduced config {' '.join(REDUCED)}")
    p.add_argument("--hilp-set", dest="hilp_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override for hilp only (e.g. skill_dim=8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="training device (auto, cpu, cuda)")
    p.add_argument("--out", default="runs/bench_hilp", help="directory for runs and bench_hilp.json")
    args = p.parse_args(argv)

    from autodidact.envs import env_name_for_dataset
    from autodidact.core.errors import UserError
    from autodidact.workflows.evaluate import evaluate
    from autodidact.core.io import atomic_write_json
    from autodidact.envs.rewards import singletask_env_name
    from autodidact.workflows.prompt import run_prompt

    out = Path(args.out)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    reward_tasks = [int(t) for t in args.tasks.split(",") if t.strip()]
    results = {"config": {"reduced": list(REDUCED), "overrides": args.overrides, "hilp_overrides": args.hilp_overrides,
                          "steps": args.steps, "episodes_per_task": args.episodes, "max_episode_steps": args.max_steps,
                          "seed": args.seed, "num_samples": args.num_samples, "argv": sys.argv},
               "goal": [], "reward": []}
    common = dict(episodes=args.episodes, seed=args.seed, max_episode_steps=args.max_steps, progress=True)
    for dataset in map(Path, args.datasets):
        name = dataset.name.removesuffix(".npz")
        env = env_name_for_dataset(dataset.name)
        if env is None:
            raise SystemExit(f"{dataset}: not named like an OGBench dataset, so no environment to evaluate in")
        t0 = time.perf_counter()
        res = evaluate(env, RandomPolicy(_dataset_action_dim(dataset), args.seed), episodes_per_task=args.episodes,
                       seed=args.seed, max_episode_steps=args.max_steps, progress=False)
        results["goal"].append({"dataset": name, "method": "random", "steps": 0, "train_seconds": 0.0,
                                "steps_per_s": None, "eval_seconds": round(time.perf_counter() - t0, 1),
                                "overall_success": res["overall_success"],
                                "tasks": {t["task_name"]: t["success"] for t in res["tasks"]}})
        for method in methods:
            overrides = [*REDUCED, *args.overrides, *(args.hilp_overrides if method == "hilp" else [])]
            run, wall, sps = train(method, dataset, out / name / method, args.steps, args.seed, overrides, args.device)
            variants = [("", False)] + ([("-plan", True)] if args.plan and method == "hilp" else [])
            for suffix, plan in variants:
                t0 = time.perf_counter()
                _, res = run_prompt(run, goal="all", plan=plan, name=f"bench-goal{suffix}", **common)
                atomic_write_json(run / "prompt" / f"bench-goal{suffix}.json", res)
                results["goal"].append({
                    "dataset": name, "method": method + suffix, "steps": res["checkpoint_step"],
                    "train_seconds": round(wall, 1), "steps_per_s": sps and round(sps, 2),
                    "eval_seconds": round(time.perf_counter() - t0, 1), "overall_success": res["overall_success"],
                    "tasks": {t["task_name"]: t["success"] for t in res["tasks"]}})
            if method == "hilp" and not args.no_reward:
                for task in reward_tasks:
                    try:
                        _, res = run_prompt(run, reward_task=task, num_samples=args.num_samples, **common)
                    except UserError as exc:  # e.g. no sampled state reaches the task's goal
                        print(f"reward prompt {name} task {task}: {exc}", file=sys.stderr)
                        results["reward"].append({"dataset": name, "env": singletask_env_name(env, task),
                                                  "task": task, "error": str(exc)})
                        continue
                    atomic_write_json(run / "prompt" / f"bench-reward-task{task}.json", res)
                    t = res["tasks"][0]
                    rand = evaluate(singletask_env_name(env, task), RandomPolicy(_action_dim(run), args.seed),
                                    episodes_per_task=args.episodes, seed=args.seed,
                                    max_episode_steps=args.max_steps, progress=False)["tasks"][0]
                    results["reward"].append({
                        "dataset": name, "env": res["env"], "task": task, "return": t["return"],
                        "success": t["success"], "fit_r2": res["prompt"]["fit"]["r2"],
                        "positive_fraction": _positive(res), "random_return": rand["return"],
                        "random_success": rand["success"]})
            atomic_write_json(out / "bench_hilp.json", results)
    print(format_tables(results))
    atomic_write_json(out / "bench_hilp.json", results)
    print(f"\nwrote {out / 'bench_hilp.json'}")


def _dataset_action_dim(path):
    from autodidact.data.dataset import load
    return load(path).action_dim


def _action_dim(run):
    return json.loads((Path(run) / "run.json").read_text())["action_dim"]


def _positive(res):
    f = res["prompt"]["fit"]
    # Rewards are -1 or 0 per state in OGBench's single-task mazes and cube-single, so the mean
    # reward + 1 is the fraction of sampled states inside the task's goal region.
    return round(f["reward_mean"] - f["reward_min"], 4) if f["reward_max"] - f["reward_min"] == 1 else None


def format_tables(results):
    cfg = results["config"]
    lines = [f"Goal prompting: success rate, {cfg['episodes_per_task']} episodes per task, "
             f"{cfg['steps']} steps at {' '.join(cfg['reduced'] + cfg['overrides'])}", ""]
    task_names = []
    for r in results["goal"]:
        task_names += [t for t in r["tasks"] if t not in task_names]
    short = [t.split("_")[0] for t in task_names]
    lines.append("| dataset | method | steps | train s | " + " | ".join(short) + " | overall |")
    lines.append("|---|---|---|---|" + "---|" * len(short) + "---|")
    for r in results["goal"]:
        cells = [f"{r['tasks'][t]:.2f}" if t in r["tasks"] else "" for t in task_names]
        lines.append(f"| {r['dataset']} | {r['method']} | {r['steps']} | {r['train_seconds']:.0f} | "
                     + " | ".join(cells) + f" | **{r['overall_success']:.2f}** |")
    if results["reward"]:
        lines += ["", "Zero-shot reward prompting (HILP, least squares on phi) on the single-task variants: "
                  "mean undiscounted return (success rate), beside a uniform random policy", "",
                  "| dataset | single-task env | HILP return | HILP success | random return | random success "
                  "| fit R^2 | goal states in samples |", "|---|---|---|---|---|---|---|---|"]
        for r in results["reward"]:
            if "error" in r:
                lines.append(f"| {r['dataset']} | {r['env']} | n/a: {r['error']} | | | | | |")
                continue
            pos = "" if r["positive_fraction"] is None else f"{100 * r['positive_fraction']:.2f}%"
            lines.append(f"| {r['dataset']} | {r['env']} | {r['return']:.1f} | {r['success']:.2f} | "
                         f"{r['random_return']:.1f} | {r['random_success']:.2f} | {r['fit_r2']:.3f} | {pos} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
