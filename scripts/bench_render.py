"""Rendering speed and faithfulness of autodidact's fast frames against OGBench's own renderer.

Measures, side by side in one run (so both see the same machine load):

1. faithfulness: mean and max |pixel difference| between `render_frames(..., FAST)` and OGBench's
   default `env.render()` (settings=None) on the same states, taken from real play data (the
   state recipe of each dataset, collected here with OGBench's oracles);
2. frame cost: CPU milliseconds per frame of each renderer in one process (from 1.), and each
   fast setting alone (where the time goes);
3. collection: end-to-end frames/s of `collect("visual-cube-single-play-v0", ...)` with
   render='ogbench' and render='fast' and the same workers (start-up, simulation, compression
   and writing included);
4. evaluation: env steps/s (one frame each) of `make_visual_env` with each renderer, after reset.

    python scripts/bench_render.py                      # all four, ~10 minutes on 2 busy cores
    python scripts/bench_render.py --skip collect eval  # faithfulness and frame cost only

The 1-minute load average is printed at the start of each part: on a shared machine the wall-clock
numbers (collection, evaluation) measure contention too; CPU ms per frame is the stabler figure.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from autodidact.envs.render import FAST, RenderSettings, StateRenderer, make_visual_env  # noqa: E402
from autodidact.workflows.collect import collect  # noqa: E402

DATASETS = {
    "visual-cube-single-v0": "cube-single-play-v0",
    "visual-cube-double-v0": "cube-double-play-v0",
    "visual-scene-v0": "scene-play-v0",
    "visual-puzzle-3x3-v0": "puzzle-3x3-play-v0",
}


def load():
    return f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


def play_states(dataset, episodes, steps, every, out):
    train, _ = collect(dataset, out, episodes=episodes, seed=0, max_episode_steps=steps, progress=False)
    with np.load(train) as f:
        return {k: f[k][::every] for k in ("qpos", "qvel", "button_states") if k in f.files}


def timed_frames(env_name, settings, states):
    renderer = StateRenderer(env_name, settings)
    try:
        renderer.render(**{k: v[:1] for k, v in states.items()})  # GL context and scene warm-up
        cpu, wall = time.process_time(), time.perf_counter()
        frames = renderer.render(**states)
        n = len(frames)
        return frames, (time.process_time() - cpu) / n * 1e3, (time.perf_counter() - wall) / n * 1e3
    finally:
        renderer.close()


def bench_faithfulness(args):
    print(f"\n## Faithfulness and frame cost ({load()})\n")
    print("| env | states | mean abs diff | max abs diff | pixels off by > 30 | OGBench ms/frame (CPU, wall) "
          "| fast ms/frame (CPU, wall) |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for env_name, dataset in DATASETS.items():
            states = play_states(dataset, args.episodes, args.steps, args.every, os.path.join(tmp, dataset))
            reference, ref_cpu, ref_wall = timed_frames(env_name, None, states)
            fast, fast_cpu, fast_wall = timed_frames(env_name, FAST, states)
            diff = np.abs(fast.astype(int) - reference)
            print(f"| {env_name} | {len(fast)} | {diff.mean():.3f} | {diff.max()} | {(diff > 30).mean():.2%} "
                  f"| {ref_cpu:.0f}, {ref_wall:.0f} | {fast_cpu:.0f}, {fast_wall:.0f} |", flush=True)


def bench_breakdown(args):
    """Each fast setting alone, on visual-cube-single-v0: what it saves and what it changes."""
    alone = {
        "shadow map 4096 -> 1024": RenderSettings(shadow_size=1024, mesh_keep=1.0, floor_grid_spacing=0.01),
        "translucent meshes decimated to 10%": RenderSettings(shadow_size=4096, floor_grid_spacing=0.01),
        "floor grid 0.01 -> 0.02 m": RenderSettings(shadow_size=4096, mesh_keep=1.0),
        "all three (FAST)": FAST,
    }
    print(f"\n## Where the time goes, visual-cube-single-v0 ({load()})\n")
    print("| renderer | CPU ms/frame | mean abs diff | max abs diff |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        states = play_states("cube-single-play-v0", 1, args.steps, args.every * 2, tmp)
    reference, ref_cpu, _ = timed_frames("visual-cube-single-v0", None, states)
    print(f"| OGBench's env.render() | {ref_cpu:.0f} | 0 | 0 |")
    for label, settings in alone.items():
        frames, cpu, _ = timed_frames("visual-cube-single-v0", settings, states)
        diff = np.abs(frames.astype(int) - reference)
        print(f"| {label} | {cpu:.0f} | {diff.mean():.3f} | {diff.max()} |", flush=True)


def bench_collect(args):
    print(f"\n## Collection, visual-cube-single-play-v0, {args.collect_episodes} x {args.collect_steps} steps "
          f"(+ validation), {args.workers} workers\n")
    print("| render | frames | seconds | frames/s | load at start |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for render in ("ogbench", "fast"):
            start_load = load()
            wall = time.perf_counter()
            train, val = collect("visual-cube-single-play-v0", os.path.join(tmp, render), args.collect_episodes,
                                 workers=args.workers, max_episode_steps=args.collect_steps, progress=False,
                                 render=render)
            seconds = time.perf_counter() - wall
            frames = sum(len(np.load(p)["terminals"]) for p in (train, val))
            print(f"| {render} | {frames} | {seconds:.1f} | {frames / seconds:.1f} | {start_load} |", flush=True)


def bench_eval(args):
    print(f"\n## Evaluation env, visual-cube-single-v0, {args.eval_steps} steps after reset\n")
    print("| render | steps/s (one frame each) | load at start |")
    print("|---|---|---|")
    for render, settings in (("ogbench", None), ("fast", FAST)):
        env = make_visual_env("visual-cube-single-v0", settings)
        try:
            env.reset(seed=0)
            rng = np.random.default_rng(0)
            start_load = load()
            wall = time.perf_counter()
            for _ in range(args.eval_steps):
                env.step(rng.uniform(-1, 1, 5))
            rate = args.eval_steps / (time.perf_counter() - wall)
        finally:
            env.close()
        print(f"| {render} | {rate:.1f} | {start_load} |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=2, help="play episodes per env for the faithfulness states")
    p.add_argument("--steps", type=int, default=250, help="steps per such episode")
    p.add_argument("--every", type=int, default=5, help="keep every k-th state (default 5: 100 states per env)")
    p.add_argument("--collect-episodes", type=int, default=2, help="training episodes of the collection run")
    p.add_argument("--collect-steps", type=int, default=200, help="steps per episode of the collection run")
    p.add_argument("--workers", type=int, default=2, help="worker processes of the collection run")
    p.add_argument("--eval-steps", type=int, default=100, help="env steps of the evaluation run")
    p.add_argument("--skip", nargs="*", default=(), choices=("faithfulness", "breakdown", "collect", "eval"),
                   help="parts to leave out")
    args = p.parse_args()
    print(f"# bench_render ({load()})")
    if "faithfulness" not in args.skip:
        bench_faithfulness(args)
    if "breakdown" not in args.skip:
        bench_breakdown(args)
    if "collect" not in args.skip:
        bench_collect(args)
    if "eval" not in args.skip:
        bench_eval(args)


if __name__ == "__main__":
    main()
