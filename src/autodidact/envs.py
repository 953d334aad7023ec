"""OGBench environments: dataset name -> env id, env construction, task lists.

OGBench names a dataset `<env>-<dataset type>-v0` (e.g. `pointmaze-medium-navigate-v0`) and the
environment it was collected in `<env>-v0` (`pointmaze-medium-v0`); single-task datasets put
`singletask[-taskN]` after the dataset type (`cube-single-play-singletask-task2-v0` ->
`cube-single-singletask-task2-v0`). See `ogbench.utils.make_env_and_datasets`.

Also here, because they reach into OGBench env internals: `perturb` (displace the object or the
agent mid-episode, for the evaluator's perturbation mode) and `seed_reset_sampling` (makes resets
reproducible).

ogbench (and so mujoco) is imported lazily: the core of autodidact imports without it.
"""

import collections
import contextlib
import functools
import inspect
import os
import re
import tempfile

import numpy as np

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
        return tuple(info["task_name"] for info in infos), single_task_id(env), perturb_targets(env)
    finally:
        env.close()


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


# ---------------------------------------------------------------- perturbations

# 'agent' is another name for 'arm' (the controlled body: the arm, or the maze agent).
PERTURB_TARGETS = ("object", "arm", "agent", "both")
# Where a displaced cube may land (xy distances in m; a cube's side is 0.04, success is within 0.04
# of the target): clear of the other cubes, of a low gripper, of its own target (a perturbation
# never completes a task), and far enough from where it was to count as displaced.
_MANIP_FREE_CUBE_GAP = 0.07
_MANIP_GRIPPER_GAP, _MANIP_LOW_GRIPPER = 0.08, 0.12
_MANIP_TARGET_GAP = 0.08
_MANIP_MIN_DISPLACEMENT = 0.1


def _kind(env):
    u = env.unwrapped
    if hasattr(u, "maze_map"):
        return "ballmaze" if hasattr(u, "set_agent_ball_xy") else "maze"
    if hasattr(u, "_arm_sampling_bounds"):
        if hasattr(u, "_num_rows"):
            return "puzzle"
        return "manip" if hasattr(u, "_num_cubes") else None
    return None


def perturb_targets(env):
    """The perturbation targets this env supports (empty when it supports none)."""
    kind = _kind(env)
    if kind == "maze":
        return ("arm", "agent", "both")
    return PERTURB_TARGETS if kind else ()


def check_perturb_target(env_name, target):
    """UserError unless `target` is a perturbation target and `env_name` supports it."""
    if target not in PERTURB_TARGETS:
        raise UserError(f"perturbation target must be one of {', '.join(PERTURB_TARGETS)}; got '{target}'")
    supported = _task_table(env_name)[2]
    if target not in supported:
        if not supported:
            raise UserError(f"{env_name}: perturbations are implemented for OGBench's maze and manipulation envs only")
        raise UserError(f"{env_name} has no object to displace; perturbation targets here: {', '.join(supported)}")


def goal_reached(env):
    """Whether the env's task is achieved in its current state (what its next success check sees)."""
    u = env.unwrapped
    if _kind(env) in ("maze", "ballmaze"):
        return bool(u.compute_success())
    return bool(u._success)


def perturb(env, target, rng, cells=2):
    """Displace part of the env's state mid-episode, as a person knocking things about would;
    returns the env's own observation of the new state.

    - cube-* / scene-*: 'object' puts one cube (a random one, when there are several) at a random
      free spot of the table, drawn from the env's own reset bounds, at least 10 cm from where it
      was and clear of its target (scene: the cube; its drawer, window and buttons stay); 'arm'
      moves the arm to a random pose as the env's reset does (effector position uniform in the
      reset bounds, random yaw, IK from the home pose), leaving the gripper's opening, so a held
      cube drops.
    - puzzle-*: there is no loose object; 'object' presses a random button for the policy
      (it and its neighbours toggle, the puzzle's own rule, so every goal stays reachable), never
      one whose press would solve the puzzle.
    - pointmaze / antmaze / humanoidmaze: 'arm' (= 'agent') teleports the agent to a random free
      cell 1..`cells` steps away along the maze's corridors, not the goal's, with OGBench's start
      noise (+-1/4 cell); antsoccer's 'object' does the same to the ball.
    'both' does 'object' and 'arm' (where there is no object: 'arm'). Moved bodies lose their
    velocity; the simulation is brought up to date (mj_forward) and the task's success flag recomputed.
    """
    kind = _kind(env)
    u = env.unwrapped
    move_object = target in ("object", "both")
    move_agent = target in ("arm", "agent", "both")
    if kind in ("maze", "ballmaze"):
        ball = kind == "ballmaze"
        if target == "object" and not ball:
            raise UserError(f"{env.spec.id} has no object to displace")
        move_object = move_object and ball  # 'both' in a maze without a ball: the agent
        qpos, qvel = u.data.qpos.copy(), u.data.qvel.copy()
        agent_ij = u.xy_to_ij(qpos[:2])
        ball_ij = u.xy_to_ij(qpos[-7:-5]) if ball else None
        if move_agent:
            qpos[:2] = _maze_xy_nearby(u, agent_ij, cells, rng, avoid=ball_ij)
            qvel[: (len(qvel) - 6) if ball else len(qvel)] = 0.0  # the ball's 6 dofs come last
            agent_ij = u.xy_to_ij(qpos[:2])
        if move_object:
            qpos[-7:-5] = _maze_xy_nearby(u, ball_ij, cells, rng, avoid=agent_ij)
            qvel[-6:] = 0.0
        u.set_state(qpos, qvel)  # runs mj_forward
        return u.get_ob()
    if kind not in ("manip", "puzzle"):
        raise UserError(f"{env.spec.id}: perturbations are implemented for OGBench's maze and manipulation envs only")
    import mujoco

    if move_agent:
        _manip_move_arm(u, rng)
    if move_object:
        if kind == "puzzle":
            _puzzle_press(u, rng)
        else:
            _manip_move_cube(u, int(rng.integers(u._num_cubes)), rng)
    mujoco.mj_forward(u._model, u._data)
    # As the env's own reset ends: pre_step records the "previous" state (so no button counts as
    # pressed by the jump), post_step recomputes success and the success colours.
    u.pre_step()
    u.post_step()
    return u.compute_observation()


def _maze_xy_nearby(u, ij, cells, rng, avoid=None):
    """A random point in a free cell 1..cells corridor steps from `ij` (not `avoid`, nor a teleport entrance)."""
    teleports = {tuple(c) for c in (u._teleport_info or {}).get("teleport_in_ijs", ())}
    excluded = teleports | {tuple(u.xy_to_ij(u.cur_goal_xy))} | ({tuple(avoid)} if avoid is not None else set())
    height, width = u.maze_map.shape
    dist = {tuple(ij): 0}
    queue = collections.deque([tuple(ij)])
    candidates = []
    while queue:
        i, j = queue.popleft()
        if dist[(i, j)] >= cells:
            continue
        for di, dj in ((-1, 0), (0, -1), (1, 0), (0, 1)):
            n = (i + di, j + dj)
            if n not in dist and 0 <= n[0] < height and 0 <= n[1] < width and u.maze_map[n] == 0:
                dist[n] = dist[(i, j)] + 1
                queue.append(n)
                if n not in excluded:
                    candidates.append(n)
    if not candidates:  # boxed in (cannot happen in OGBench's mazes): stay, with fresh noise
        candidates = [tuple(ij)]
    cell = candidates[int(rng.integers(len(candidates)))]
    # OGBench's start/goal noise: uniform +-1/4 of a cell on each axis.
    return np.asarray(u.ij_to_xy(cell)) + rng.uniform(-1.0, 1.0, size=2) * u._maze_unit / 4


def _manip_move_arm(u, rng):
    # Mirrors ManipSpaceEnv.initialize_arm, drawing from our RNG instead of the env's.
    from ogbench.manipspace import lie

    eff_pos = rng.uniform(*u._arm_sampling_bounds)
    eff_ori = lie.SO3.from_z_radians(rng.uniform(-np.pi, np.pi)) @ u._effector_down_rotation
    T_wa = lie.SE3.from_rotation_and_translation(eff_ori, eff_pos) @ u._T_pa
    qpos = u._ik.solve(pos=T_wa.translation(), quat=T_wa.rotation().wxyz, curr_qpos=u._home_qpos)
    # OGBench indexes qpos/qvel by the arm's joint ids: its 6 hinges come first in the model.
    u._data.qpos[u._arm_joint_ids] = qpos
    u._data.qvel[u._arm_joint_ids] = 0.0


def _manip_move_cube(u, i, rng):
    import mujoco
    from ogbench.manipspace import lie

    mujoco.mj_kinematics(u._model, u._data)  # the gripper's site position after a moved arm
    joint = u._data.joint(f"object_joint_{i}")
    keep_away = [(joint.qpos[:2].copy(), _MANIP_MIN_DISPLACEMENT),
                 (u._data.mocap_pos[u._cube_target_mocap_ids[i]][:2].copy(), _MANIP_TARGET_GAP)]
    keep_away += [(u._data.joint(f"object_joint_{k}").qpos[:2].copy(), _MANIP_FREE_CUBE_GAP)
                  for k in range(u._num_cubes) if k != i]
    pinch = u._data.site_xpos[u._pinch_site_id]
    if pinch[2] < _MANIP_LOW_GRIPPER:
        keep_away.append((pinch[:2].copy(), _MANIP_GRIPPER_GAP))
    best, best_margin = None, -np.inf
    for _ in range(100):  # rejection sampling; keeps the roomiest draw if none is clear
        xy = rng.uniform(*u._object_sampling_bounds)
        margin = min(np.linalg.norm(xy - o) - gap for o, gap in keep_away)
        if margin > best_margin:
            best, best_margin = xy, margin
        if margin >= 0:
            break
    joint.qpos[:3] = (*best, 0.02)  # resting on the table, as at reset
    joint.qpos[3:] = lie.SO3.from_z_radians(rng.uniform(0, 2 * np.pi)).wxyz
    joint.qvel[:] = 0.0


def _puzzle_press(u, rng):
    def pressed(states, button):
        # PuzzleEnv.post_step's rule for a press: the button and its 4 neighbours toggle.
        states = states.copy()
        r, c = divmod(button, u._num_cols)
        for dr, dc in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
            if 0 <= r + dr < u._num_rows and 0 <= c + dc < u._num_cols:
                k = (r + dr) * u._num_cols + c + dc
                states[k] = (states[k] + 1) % u._num_button_states
        return states

    choices = [b for b in range(u._num_buttons)
               if not np.array_equal(pressed(u._cur_button_states, b), u._target_button_states)]
    u._cur_button_states = pressed(u._cur_button_states, choices[int(rng.integers(len(choices)))])
    u._apply_button_states()
