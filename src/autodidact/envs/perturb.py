"""Displacing part of an OGBench env's state mid-episode (the evaluator's perturbation mode)."""

import collections

import numpy as np

from autodidact.core.errors import UserError
from autodidact.envs.ogbench import env_kind, kind_of


# 'agent' is another name for 'arm' (the controlled body: the arm, or the maze agent).
PERTURB_TARGETS = ("object", "arm", "agent", "both")
# Where a displaced cube may land (xy distances in m; a cube's side is 0.04, success is within 0.04
# of the target): clear of the other cubes, of a low gripper, of its own target (a perturbation
# never completes a task), and far enough from where it was to count as displaced.
_MANIP_FREE_CUBE_GAP = 0.07
_MANIP_GRIPPER_GAP, _MANIP_LOW_GRIPPER = 0.08, 0.12
_MANIP_TARGET_GAP = 0.08
_MANIP_MIN_DISPLACEMENT = 0.1


def perturb_targets(kind):
    """The perturbation targets an env of this kind (`env_kind`) supports (empty: none)."""
    if kind == "maze":
        return ("arm", "agent", "both")
    return PERTURB_TARGETS if kind else ()


def check_perturb_target(env_name, target):
    """UserError unless `target` is a perturbation target and `env_name` supports it."""
    if target not in PERTURB_TARGETS:
        raise UserError(f"perturbation target must be one of {', '.join(PERTURB_TARGETS)}; got '{target}'")
    supported = perturb_targets(kind_of(env_name))
    if target not in supported:
        if not supported:
            raise UserError(f"{env_name}: perturbations are implemented for OGBench's maze and manipulation envs only")
        raise UserError(f"{env_name} has no object to displace; perturbation targets here: {', '.join(supported)}")


def goal_reached(env):
    """Whether the env's task is achieved in its current state (what its next success check sees)."""
    u = env.unwrapped
    if env_kind(env) in ("maze", "ballmaze"):
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
    kind = env_kind(env)
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
