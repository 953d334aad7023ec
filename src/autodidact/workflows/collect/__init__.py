"""Generate OGBench datasets locally with OGBench's own scripted oracles.

`collect(name, out_dir)` writes `out_dir/NAME.npz` and `out_dir/NAME-val.npz` in OGBench's layout
(observations, actions, terminals, qpos, qvel, and button_states where the env has buttons), so
`ogbench.load_dataset` reads them like the official files. Recipes (episode counts, lengths, noise)
are OGBench's `data_gen_scripts/commands.sh`; see docs/COLLECTION.md for measured statistics.

Reproducibility: every episode gets its own seeds from (seed, split, episode index), so the data
does not depend on how episodes are spread over worker processes, and the first k training
episodes are the same whatever `episodes` is. Within an episode, our noise and goal draws come
from a numpy Generator; the OGBench envs and oracles also draw from global np.random and from the
env's np_random, so those are seeded per episode too.

The oracle modules (maze, manip) import mujoco and ogbench, so they are imported only when data is
actually collected: `import autodidact.workflows.collect` stays cheap for the CLI.
"""

import functools
import multiprocessing
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autodidact.core.errors import UserError

KINDS = ("navigate", "stitch", "play")


@dataclass(frozen=True)
class Recipe:
    env_name: str  # OGBench environment the data is collected in (dataset name minus its type word)
    kind: str  # 'navigate' | 'stitch' (maze.py) or 'play' (manip.py)
    episodes: int  # training episodes; the validation file gets max(1, episodes // 10)
    max_episode_steps: int  # steps per episode: envs never end early, so every episode has this many
    noise: float  # navigate/stitch: std of Gaussian action noise; play: PlanOracle plan-noise scale
    noise_smoothing: float = 0.0  # play: std (in steps) of the Gaussian filter on the plan noise
    stitch_cells: int = 4  # stitch: the goal cell is exactly this many BFS moves from the start
    oracle_tasks: tuple = ()  # play: tasks the env proposes, each tracked by its PlanOracle
    p_stack_range: tuple = (0.5, 0.5)  # play: per-episode P(stack a cube on a cube) ~ U(range)
    gripper_always_closed: bool = False  # play: button oracle presses with a closed gripper (puzzle)
    health_check: bool = False  # play: redraw episodes where the cube leaves the view (scene)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Recipe.kind must be one of {KINDS}, got {self.kind!r}")


def _navigate(env_name, episodes=1000, max_episode_steps=1001):
    return Recipe(env_name, "navigate", episodes, max_episode_steps, noise=0.5)


def _stitch(env_name):
    return Recipe(env_name, "stitch", episodes=5000, max_episode_steps=201, noise=0.5)


def _play(env_name, oracle_tasks, **kwargs):
    return Recipe(
        env_name, "play", 1000, 1001, noise=0.1, noise_smoothing=0.5, oracle_tasks=oracle_tasks, **kwargs
    )


# Dataset name -> recipe, values from OGBench's data_gen_scripts/commands.sh.
RECIPES = {
    "pointmaze-medium-navigate-v0": _navigate("pointmaze-medium-v0"),
    "pointmaze-large-navigate-v0": _navigate("pointmaze-large-v0"),
    "pointmaze-giant-navigate-v0": _navigate("pointmaze-giant-v0", episodes=500, max_episode_steps=2001),
    "pointmaze-medium-stitch-v0": _stitch("pointmaze-medium-v0"),
    "pointmaze-large-stitch-v0": _stitch("pointmaze-large-v0"),
    "pointmaze-giant-stitch-v0": _stitch("pointmaze-giant-v0"),
    # A single cube has nothing to stack on; OGBench hard-codes p_stack per cube count.
    "cube-single-play-v0": _play("cube-single-v0", ("cube",), p_stack_range=(0.0, 0.0)),
    "cube-double-play-v0": _play("cube-double-v0", ("cube",), p_stack_range=(0.0, 0.25)),
    "scene-play-v0": _play("scene-v0", ("cube", "button", "drawer", "window"), health_check=True),
    "puzzle-3x3-play-v0": _play("puzzle-3x3-v0", ("button",), gripper_always_closed=True),
    # Visual twins: the same oracles in the `visual-` env, whose observation is its 64x64 camera
    # frame (data_gen_scripts/commands.sh runs generate_manipspace.py with --env_name=visual-...).
    "visual-cube-single-play-v0": _play("visual-cube-single-v0", ("cube",), p_stack_range=(0.0, 0.0)),
    "visual-cube-double-play-v0": _play("visual-cube-double-v0", ("cube",), p_stack_range=(0.0, 0.25)),
    "visual-scene-play-v0": _play("visual-scene-v0", ("cube", "button", "drawer", "window"), health_check=True),
    "visual-puzzle-3x3-play-v0": _play("visual-puzzle-3x3-v0", ("button",), gripper_always_closed=True),
}

# OGBench collects these with a trained locomotion expert (SAC checkpoints it downloads), which we
# neither ship nor can train here.
EXPERT_POLICY_PREFIXES = ("antmaze-", "humanoidmaze-", "antsoccer-")

# Per-step fields and the dtypes OGBench's own scripts write them with (camera frames stay uint8).
FIELD_DTYPES = {
    "observations": np.float32,
    "actions": np.float32,
    "terminals": bool,
    "qpos": np.float32,
    "qvel": np.float32,
    "button_states": np.int64,
}

TRAIN, VAL = 0, 1  # split ids, part of every episode's seed


def get_recipe(name):
    """The recipe for dataset `name`, or a UserError that says what is available."""
    if name in RECIPES:
        return RECIPES[name]
    if name.startswith(EXPERT_POLICY_PREFIXES):
        raise UserError(
            f"cannot collect {name}: OGBench generates it with a trained expert locomotion policy "
            f"that is not available here; download the official {name}.npz and {name}-val.npz "
            f"(ogbench.download_datasets) and load those instead"
        )
    raise UserError(f"unknown dataset {name!r}; collectable datasets: {', '.join(RECIPES)}")


def collect(name, out_dir, episodes=None, seed=0, workers=1, progress=True, max_episode_steps=None, render="fast"):
    """Collect dataset `name` into out_dir/NAME.npz and out_dir/NAME-val.npz; return both paths.

    episodes: training episodes (default: the recipe's); validation gets max(1, episodes // 10).
    max_episode_steps: override the recipe's episode length (for quick tests and previews).
    render: how `visual-` datasets draw their frames, 'fast' (autodidact.envs.render.FAST) or
    'ogbench' (the env's own renderer, ~5x slower on a CPU); ignored for state datasets.
    Nothing is written until every episode is done, and each file is written atomically.
    """
    from autodidact.envs.render import settings_for

    settings_for(render)  # an unknown preset fails before any work
    recipe = get_recipe(name)
    episodes = recipe.episodes if episodes is None else episodes
    max_episode_steps = recipe.max_episode_steps if max_episode_steps is None else max_episode_steps
    counts = dict(episodes=episodes, workers=workers, max_episode_steps=max_episode_steps)
    for flag, value in counts.items():
        if not isinstance(value, numbers.Integral) or value < 1:
            raise UserError(f"{flag} must be a positive integer, got {value!r}")
    if not isinstance(seed, numbers.Integral) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
    episodes, workers, max_episode_steps, seed = map(int, (episodes, workers, max_episode_steps, seed))
    jobs = [(TRAIN, i) for i in range(episodes)] + [(VAL, i) for i in range(max(1, episodes // 10))]
    results = _run_jobs((name, max_episode_steps, render), seed, jobs, workers, progress)
    train = _concat([r for (split, _), r in zip(jobs, results) if split == TRAIN])
    val = _concat([r for (split, _), r in zip(jobs, results) if split == VAL])
    return _write_pair(Path(out_dir), name, train, val)


# ---------------------------------------------------------------------------------------------
# Episode seeding and execution (runs in the worker processes, or in-process for workers=1).


def _make_collector(name, max_episode_steps, render):
    import autodidact.envs  # noqa: F401  (headless MUJOCO_GL before the oracles import mujoco)

    recipe = RECIPES[name]
    if recipe.kind == "play":
        from autodidact.workflows.collect.manip import PlayCollector

        return PlayCollector(recipe, max_episode_steps, render)
    from autodidact.workflows.collect.maze import MazeCollector

    return MazeCollector(recipe, max_episode_steps)


def _run_episode(collector, seed, split, index):
    """Seed every random stream the episode touches from (seed, split, index), then run it."""
    root = np.random.SeedSequence(seed, spawn_key=(split, index))
    ours, env_seq, global_seq, action_space_seq = root.spawn(4)
    # OGBench's oracles and maze start/goal jitter use the legacy global generator.
    np.random.seed(global_seq.generate_state(4))
    # The maze reset takes a few random actions with action_space.sample() to settle the agent.
    collector.env.unwrapped.action_space.seed(int(action_space_seq.generate_state(1)[0]))
    env_seed = int(env_seq.generate_state(1)[0])
    steps = collector.run_episode(np.random.default_rng(ours), env_seed)
    # Cast per episode: float32 arrays pickle back from workers at half the size of lists of float64.
    return {k: _as_field(k, v) for k, v in steps.items()}


def _as_field(key, values):
    values = np.asarray(values)
    if key == "observations" and values.dtype == np.uint8:
        return values  # camera frames, as OGBench stores them
    return values.astype(FIELD_DTYPES[key], copy=False)


# One collector (environment + oracles) per worker process, built once by the pool initializer.
_worker_collector = None


def _init_worker(collector_args):
    global _worker_collector
    _worker_collector = _make_collector(*collector_args)


def _run_chunk(seed, chunk):
    return [_run_episode(_worker_collector, seed, split, index) for split, index in chunk]


def _run_jobs(collector_args, seed, jobs, workers, progress):
    """Run all (split, index) episodes and return their arrays in job order.

    collector_args: (dataset name, max_episode_steps, render preset) for `_make_collector`.
    """
    from tqdm import tqdm

    with tqdm(total=len(jobs), unit="ep", desc=f"collect {collector_args[0]}", disable=not progress) as bar:
        if workers == 1:
            return _run_in_process(collector_args, seed, jobs, bar)
        return _run_in_pool(collector_args, seed, jobs, workers, bar)


def _run_in_process(collector_args, seed, jobs, bar):
    collector = _make_collector(*collector_args)
    # Per-episode seeding overwrites global np.random; give the caller theirs back afterwards.
    saved_state = np.random.get_state()
    try:
        results = []
        for split, index in jobs:
            results.append(_run_episode(collector, seed, split, index))
            bar.update(1)
        return results
    finally:
        np.random.set_state(saved_state)
        collector.env.close()


def _run_in_pool(collector_args, seed, jobs, workers, bar):
    # Small chunks keep the bar moving and balance the load (episodes vary in cost, e.g. scene
    # retries); the chunking itself cannot change the data since every episode is seeded alone.
    chunk_size = max(1, min(8, len(jobs) // (4 * workers)))
    chunks = [jobs[i : i + chunk_size] for i in range(0, len(jobs), chunk_size)]
    # 'spawn': a fresh interpreter per worker, so no forked MuJoCo/OpenGL or torch state.
    context = multiprocessing.get_context("spawn")
    results = []
    with context.Pool(workers, initializer=_init_worker, initargs=(collector_args,)) as pool:
        # imap keeps chunk order, so results come back in job order.
        for chunk_results in pool.imap(functools.partial(_run_chunk, seed), chunks):
            results.extend(chunk_results)
            bar.update(len(chunk_results))
    return results


# ---------------------------------------------------------------------------------------------
# Assembling and writing the files.


def _concat(episodes):
    return {k: np.concatenate([ep[k] for ep in episodes]) for k in episodes[0]}


def _write_pair(out_dir, name, train, val):
    from autodidact.data.dataset import ogbench_npz_arrays
    from autodidact.core.io import atomic_path, write_npz

    train_path, val_path = out_dir / f"{name}.npz", out_dir / f"{name}-val.npz"
    # Both files are complete in temp files before either is renamed; the val file is renamed
    # first and the train file last, so a train file present always has its matching val twin.
    with atomic_path(train_path) as train_tmp, atomic_path(val_path) as val_tmp:
        write_npz(train_tmp, ogbench_npz_arrays(train))
        write_npz(val_tmp, ogbench_npz_arrays(val))
    return train_path, val_path
