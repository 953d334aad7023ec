"""What OGBench observations hold: maze geometry, and the manipulation envs' state layout.

Figures and summaries that read meaning into raw observation vectors take it from here, so that
method and figure code hold no environment-specific indices.
"""

from pathlib import Path

import numpy as np

from autodidact.envs.ogbench import make_env


def maze_cells(env_name):
    """(free-cell ij list, xy -> ij function) for a maze env, or None for other envs."""
    if not env_name or "maze" not in env_name:
        return None
    env = make_env(env_name)
    try:
        u = env.unwrapped
        free = [(i, j) for i in range(u.maze_map.shape[0]) for j in range(u.maze_map.shape[1])
                if u.maze_map[i, j] == 0]
        unit, off_x, off_y = u._maze_unit, u._offset_x, u._offset_y
    finally:
        env.close()

    def to_ij(xy):
        # The maze's own xy_to_ij, vectorized: cells are `unit` wide, centred on integer multiples.
        i = np.floor((xy[:, 1] + off_y + 0.5 * unit) / unit).astype(np.int64)
        j = np.floor((xy[:, 0] + off_x + 0.5 * unit) / unit).astype(np.int64)
        return i, j

    return free, to_ij


def maze_positions(env_name, observations):
    """The agent's x-y of state observations [N, D] in an OGBench maze (its first two dims), or
    None for other envs."""
    if not env_name or "maze" not in env_name or observations.ndim != 2:
        return None
    return observations[:, :2]


# OGBench manipspace state layout (`ogbench/manipspace/envs/{cube,scene,puzzle}_env.py`,
# `compute_observation`): 19 proprioceptive dims (6 joint positions, 6 joint velocities, effector
# xyz, cos/sin yaw, gripper opening, gripper contact), then per cube 9 (xyz scaled by 10,
# quaternion, cos/sin yaw), per button 4 (2-way one-hot state, position scaled by 120, velocity),
# and in scene the drawer (position x18, velocity) and window (position x15, velocity).
_PROPRIO, _CUBE, _BUTTON = 19, 9, 4
_DIRECTIONS = ("+x", "-x", "+y", "-y", "up", "down")


def _direction(delta):
    """Dominant direction of a cube's xyz displacement [N, 3]: lifts count when z dominates."""
    axis = np.abs(delta).argmax(-1)
    sign = np.take_along_axis(delta, axis[:, None], -1)[:, 0] < 0
    return np.array([_DIRECTIONS[2 * a + s] for a, s in zip(axis, sign)])


def window_labels(dataset_name, windows):
    """What happened in each window of states [N, T, D]: a short label per window (which object
    moved most, and where) for OGBench's cube, scene and puzzle states; elsewhere the dominant
    direction the first two state dims moved. Returns (labels [N] of str, description)."""
    name = Path(str(dataset_name)).name
    windows = windows.reshape(windows.shape[0], windows.shape[1], -1)  # images: fall through below
    n, _, d = windows.shape
    start, end = windows[:, 0], windows[:, -1]
    kind = name.split("-")[0]
    # Object scores are in units of "clearly moved" (thresholds in the scaled observation units):
    # the largest above 1 names the window; below 1 everywhere the arm moved alone.
    scores, names = [], []
    if kind == "cube" and d > _PROPRIO and (d - _PROPRIO) % _CUBE == 0:
        for i in range((d - _PROPRIO) // _CUBE):
            lo = _PROPRIO + _CUBE * i
            delta = end[:, lo:lo + 3] - start[:, lo:lo + 3]
            scores.append(np.linalg.norm(delta, axis=-1) / 0.2)              # 2 cm
            prefix = "cube " if d == _PROPRIO + _CUBE else f"cube {i} "
            names.append(np.char.add(prefix, _direction(delta)))
        description = "cube that moved and its main direction"
    elif kind == "scene" and d == _PROPRIO + _CUBE + 2 * _BUTTON + 4:
        delta = end[:, _PROPRIO:_PROPRIO + 3] - start[:, _PROPRIO:_PROPRIO + 3]
        scores.append(np.linalg.norm(delta, axis=-1) / 0.2)
        names.append(np.char.add("cube ", _direction(delta)))
        for i in range(2):
            lo = _PROPRIO + _CUBE + _BUTTON * i
            scores.append(np.abs(end[:, lo:lo + 2] - start[:, lo:lo + 2]).max(-1) * 2.0)  # a state flip
            names.append(np.full(n, f"button {i}"))
        for what, lo in (("drawer", d - 4), ("window", d - 2)):
            delta = end[:, lo] - start[:, lo]
            scores.append(np.abs(delta) / 0.5)
            names.append(np.where(delta > 0, f"{what} +", f"{what} -"))
        description = "object that moved most (cube direction, button, drawer/window sign)"
    elif kind == "puzzle" and d > _PROPRIO and (d - _PROPRIO) % _BUTTON == 0:
        # Pressing one button flips its neighbours' states too (lights out), so name the button that
        # was physically pushed: the largest excursion of its position during the window.
        for i in range((d - _PROPRIO) // _BUTTON):
            pos = windows[:, :, _PROPRIO + _BUTTON * i + 2]
            scores.append(np.abs(pos - pos[:, :1]).max(-1) / 0.5)
            names.append(np.full(n, f"button {i}"))
        description = "button pressed in the window"
    else:
        delta = end[:, :2] - start[:, :2]
        norm = np.linalg.norm(delta, axis=-1)
        angle = np.degrees(np.arctan2(delta[:, 1], delta[:, 0]))
        labels = np.array(["+x", "+y", "-x", "-y"])[np.round(angle / 90.0).astype(int) % 4]
        labels = np.where(norm < 0.25 * np.median(norm), "still", labels)
        return labels.astype(str), "main direction the first two state dims moved"
    scores, names = np.stack(scores, 1), np.stack(names, 1)
    best = scores.argmax(1)
    labels = np.where(scores.max(1) >= 1.0, names[np.arange(n), best], "arm only")
    return labels.astype(str), description
