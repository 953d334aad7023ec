"""OGBench environments: dataset name -> env id, env construction, task lists.

OGBench names a dataset `<env>-<dataset type>-v0` (e.g. `pointmaze-medium-navigate-v0`) and the
environment it was collected in `<env>-v0` (`pointmaze-medium-v0`); single-task datasets put
`singletask[-taskN]` after the dataset type (`cube-single-play-singletask-task2-v0` ->
`cube-single-singletask-task2-v0`). See `ogbench.utils.make_env_and_datasets`.

ogbench (and so mujoco) is imported lazily: the core of autodidact imports without it.
"""

import functools
import os
import re

from autodidact.errors import UserError

# Dataset size suffixes OGBench uses for its larger releases (e.g. `...-play-100m-v0`).
_SIZE_TOKEN = re.compile(r"^\d+[mk]$")
_VERSION_TOKEN = re.compile(r"^v\d+$")


def _register():
    """Import ogbench so its gymnasium ids exist, with headless rendering configured first.

    mujoco picks its OpenGL backend once, when it is first imported, from MUJOCO_GL; without it,
    it tries GLFW, which needs an X display. EGL renders headless (on a GPU, or with Mesa's
    software rasterizer on a plain CPU box). A user's own MUJOCO_GL wins.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
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
    return gymnasium.make(env_name, disable_env_checker=True, **kwargs)


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
        return tuple(info["task_name"] for info in infos), single_task_id(env)
    finally:
        env.close()


def task_names(env_name):
    """Names of all the env's tasks; task id k (1-based) is `task_names(env_name)[k - 1]`."""
    return _task_table(env_name)[0]


def task_ids(env_name):
    """The task ids evaluated by default: 1..N, or the one fixed task of a `-singletask` env."""
    names, fixed = _task_table(env_name)
    return (fixed,) if fixed is not None else tuple(range(1, len(names) + 1))


def num_tasks(env_name):
    """How many tasks `evaluate` runs by default for this env."""
    return len(task_ids(env_name))
