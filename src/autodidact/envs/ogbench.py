"""OGBench environments: dataset name -> env id, env construction, task lists.

OGBench names a dataset `<env>-<dataset type>-v0` (e.g. `pointmaze-medium-navigate-v0`) and the
environment it was collected in `<env>-v0` (`pointmaze-medium-v0`); single-task datasets put
`singletask[-taskN]` after the dataset type (`cube-single-play-singletask-task2-v0` ->
`cube-single-singletask-task2-v0`). See `ogbench.utils.make_env_and_datasets`.

Also here, because it reaches into OGBench env internals: `seed_reset_sampling` (makes resets
reproducible). Perturbations, rewards of dataset states and observation layouts have modules of
their own in this package.

ogbench (and so mujoco) is imported lazily: the core of autodidact imports without it.
"""

import contextlib
import functools
import inspect
import os
import re
import tempfile
import warnings

import numpy as np

from autodidact.core.errors import UserError

# mujoco picks its OpenGL backend once, when it is first imported, from MUJOCO_GL; without it, it
# tries GLFW, which needs an X display. EGL renders headless (on a GPU, or with Mesa's software
# rasterizer on a plain CPU box). Set here, on import, so that every module that reaches ogbench
# through this package (the collectors import ogbench's oracles directly) renders headless. A
# user's own MUJOCO_GL wins.
os.environ.setdefault("MUJOCO_GL", "egl")
# OGBench's manipulation envs declare float64 space bounds; gymnasium casts them to float32 and says
# so on every env built, in every worker process. Nothing for a user to do about it.
warnings.filterwarnings("ignore", message=r".*Box (low|high)'s precision lowered by casting to float32")

# Dataset size suffixes OGBench uses for its larger releases (e.g. `...-play-100m-v0`).
_SIZE_TOKEN = re.compile(r"^\d+[mk]$")
_VERSION_TOKEN = re.compile(r"^v\d+$")


def _register():
    """Import ogbench so its gymnasium ids exist (headless rendering is set up on this module's import)."""
    try:
        import ogbench  # noqa: F401  (registers the env ids)
    except ImportError as e:
        raise UserError(f"evaluating in OGBench environments needs the ogbench package ({e})") from e
    import gymnasium

    return gymnasium


def _is_registered(env_id):
    return env_id in _register().registry


def env_name_for_dataset(name_or_path):
    """The gymnasium id of the OGBench env a dataset was collected in, or None if it isn't one.

    Accepts a dataset name or a path to its file (`.npz`, with or without the `-val` split suffix).
    An env id passed as is maps to itself. `oraclerep` datasets map to None: their goals are oracle
    representations, which a plain env id cannot reproduce.
    """
    name = os.path.basename(str(name_or_path))
    if name.endswith(".npz"):
        name = name[: -len(".npz")]
    if name.endswith("-val"):
        name = name[: -len("-val")]
    parts = name.split("-")
    if len(parts) < 2 or not _VERSION_TOKEN.match(parts[-1]) or "oraclerep" in parts:
        return None
    if "singletask" in parts:
        # <env>-<type>-singletask[-taskN]-v0: drop the dataset type just before 'singletask'.
        pos = parts.index("singletask")
        head = parts[: pos - 1]
        if head and _SIZE_TOKEN.match(parts[pos - 1]) and len(head) > 1:
            head = head[:-1]
        candidates = ["-".join(head + parts[pos:])]
    else:
        # <env>-<type>[-<size>]-v0: drop the type (and size) tokens; an env id maps to itself.
        candidates = ["-".join(parts[:-2] + parts[-1:])]
        if len(parts) > 3 and _SIZE_TOKEN.match(parts[-2]):
            candidates.append("-".join(parts[:-3] + parts[-1:]))
    # Derived ids first; an env id passed as is comes last and maps to itself.
    candidates.append(name)
    return next((env_id for env_id in candidates if _is_registered(env_id)), None)


def make_env(env_name, **kwargs):
    """gymnasium.make for an OGBench env id; an unknown id is a UserError, not a registry traceback.

    kwargs go to gymnasium.make (e.g. `max_episode_steps`, `render_mode`, `width`, `height`).
    """
    gymnasium = _register()
    if env_name not in gymnasium.registry:
        hint = env_name_for_dataset(env_name)
        msg = f"unknown OGBench environment '{env_name}'"
        msg += f" (that is a dataset name; its env is '{hint}')" if hint and hint != env_name else ""
        raise UserError(msg)
    # The passive checker only re-validates OGBench's own spaces and warns about their float64 bounds.
    with _reclaim_model_files():
        return gymnasium.make(env_name, disable_env_checker=True, **kwargs)


def _open_model_files():
    """{fd: path} of this process's open `.xml` files in the temp directory (Linux; else {})."""
    tmp = os.path.realpath(tempfile.gettempdir()) + os.sep
    found = {}
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since the listing (e.g. the listing's own descriptor)
            continue
        if path.startswith(tmp) and path.endswith(".xml"):
            found[int(fd)] = path
    return found


@contextlib.contextmanager
def _reclaim_model_files():
    """Close and delete the model files an OGBench env constructor leaves behind.

    The maze (and ant-ball) envs write their generated MuJoCo model with `tempfile.mkstemp` and
    never close the descriptor or delete the file, so every env built leaked an open file and 7 KB
    in the temp directory (one test-suite run left 1,248 of them). MuJoCo has parsed the model by
    the time the constructor returns, so both are reclaimed here.
    """
    before = _open_model_files()
    try:
        yield
    finally:
        for fd, path in _open_model_files().items():
            if before.get(fd) == path:
                continue
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)


def env_kind(env):
    """'maze', 'ballmaze', 'manip' (cube, scene), 'puzzle', or None for other envs."""
    u = env.unwrapped
    if hasattr(u, "maze_map"):
        return "ballmaze" if hasattr(u, "set_agent_ball_xy") else "maze"
    if hasattr(u, "_arm_sampling_bounds"):
        if hasattr(u, "_num_rows"):
            return "puzzle"
        return "manip" if hasattr(u, "_num_cubes") else None
    return None


def single_task_id(env):
    """The fixed task of a `-singletask` env (its reset ignores `task_id`), else None."""
    return getattr(env.unwrapped, "_reward_task_id", None)


@functools.lru_cache(maxsize=None)
def _task_table(env_name):
    # Building a manipulation env takes seconds, so look once per process.
    env = make_env(env_name)
    try:
        infos = getattr(env.unwrapped, "task_infos", None)
        if not infos:
            raise UserError(f"environment '{env_name}' defines no evaluation tasks")
        return tuple(info["task_name"] for info in infos), single_task_id(env), env_kind(env)
    finally:
        env.close()


def kind_of(env_name):
    """`env_kind` of the named env (looked up once per process)."""
    return _task_table(env_name)[2]


def task_names(env_name):
    """Names of all the env's tasks; task id k (1-based) is `task_names(env_name)[k - 1]`."""
    return _task_table(env_name)[0]


def task_ids(env_name):
    """The task ids evaluated by default: 1..N, or the one fixed task of a `-singletask` env."""
    names, fixed, _ = _task_table(env_name)
    return (fixed,) if fixed is not None else tuple(range(1, len(names) + 1))


def num_tasks(env_name):
    """How many tasks `evaluate` runs by default for this env."""
    return len(task_ids(env_name))


def time_limit(env_name, max_episode_steps=None):
    """Steps per episode: the override if given, else the env's registered limit (None if it has none)."""
    if max_episode_steps is not None:
        return int(max_episode_steps)
    return _register().spec(env_name).max_episode_steps


# ---------------------------------------------------------------- reproducible resets

@functools.lru_cache(maxsize=None)
def _with_fixed_action_space(cls):
    """`cls` with `action_space` read from the instance instead of built anew on each access."""
    return type(cls.__name__, (cls,), {
        "__module__": cls.__module__,
        "action_space": property(lambda self: self._fixed_action_space),
    })


def seed_reset_sampling(env, seed):
    """Make the next `env.reset(seed=seed)` reproducible.

    OGBench's resets take a few random "settle" steps (`action_space.sample()`) before they record
    the goal observation, and `reset(seed)` leaves the action space's RNG alone: antmaze goals
    then differ between two resets with the same seed (joint angles), and the manipulation envs
    build a fresh, entropy-seeded action space on every access, so their goals (arm pose) differ
    too. We seed the action space; for the manipulation envs we first swap in a subclass whose
    `action_space` is one stored instance (same bounds), since a property cannot be seeded.
    """
    u = env.unwrapped
    if isinstance(inspect.getattr_static(type(u), "action_space", None), property) and \
            "_fixed_action_space" not in vars(u):
        space = u.action_space
        u.__class__ = _with_fixed_action_space(type(u))
        u._fixed_action_space = space
    # A stream of its own: the env's np_random is seeded with `seed` itself.
    u.action_space.seed(int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0]))
