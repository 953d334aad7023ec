"""Pointmaze data: OGBench's BFS waypoint oracle with Gaussian action noise.

Follows OGBench's `data_gen_scripts/generate_locomaze.py` for the point agent. The oracle is the
maze's own `get_oracle_subgoal` (BFS over the cell grid to the neighbouring cell closest to the
goal); the point agent's expert action is the unit vector towards that waypoint, so no learned
policy is involved. Two episode shapes:

- navigate: start anywhere, chase a goal on a "vertex" cell, and draw a new vertex goal every time
  the current one is reached, for the whole episode (long, multi-goal trajectories).
- stitch: start anywhere, goal exactly `stitch_cells` BFS steps away, then hover there (short
  trajectories that a learner must stitch together to cross the maze).

Everything random is drawn from the per-episode generator `rng` handed in by the caller, except
what the environment itself draws (start/goal jitter from global np.random, physics noise from
its own np_random), which the caller seeds per episode.
"""

from collections import defaultdict, deque

import numpy as np

import ogbench.locomaze  # noqa: F401  (registers the maze environments with gymnasium)

from autodidact.envs import make_env

# The four grid moves, in the order OGBench's BFS expands them.
_MOVES = ((-1, 0), (0, -1), (1, 0), (0, 1))


def free_cells(maze_map):
    """All (i, j) cells that are not walls, in row-major order."""
    return [(int(i), int(j)) for i, j in zip(*np.nonzero(maze_map == 0))]


def is_hallway(maze_map, cell):
    """A cell with walls on both sides and openings at both ends, in either direction.

    OGBench draws navigate goals only from the other ("vertex") cells: corners, junctions and dead
    ends, so goals sit where decisions happen rather than midway along a corridor. Mazes have an
    outer wall, so the neighbours of a free cell are always inside the grid.
    """
    i, j = cell
    vertical = maze_map[i - 1, j] == 0 and maze_map[i + 1, j] == 0
    horizontal = maze_map[i, j - 1] == 0 and maze_map[i, j + 1] == 0
    walled_left_right = maze_map[i, j - 1] == 1 and maze_map[i, j + 1] == 1
    walled_above_below = maze_map[i - 1, j] == 1 and maze_map[i + 1, j] == 1
    return (vertical and walled_left_right) or (horizontal and walled_above_below)


def bfs_distances(maze_map, start):
    """Grid distance (4-connected moves through free cells) from `start` to every reachable cell."""
    dist = {start: 0}
    queue = deque([start])
    while queue:
        i, j = queue.popleft()
        for di, dj in _MOVES:
            nxt = (i + di, j + dj)
            inside = 0 <= nxt[0] < maze_map.shape[0] and 0 <= nxt[1] < maze_map.shape[1]
            if inside and maze_map[nxt] == 0 and nxt not in dist:
                dist[nxt] = dist[(i, j)] + 1
                queue.append(nxt)
    return dist


def _pick(cells, rng):
    return cells[rng.integers(len(cells))]


class MazeCollector:
    """Runs navigate or stitch episodes in one pointmaze environment, reused across episodes."""

    def __init__(self, recipe, max_episode_steps):
        self.recipe = recipe
        # terminate_at_goal=False: reaching a goal must not end the episode, so every episode is
        # exactly max_episode_steps long, as in OGBench's datasets.
        # make_env, not gymnasium.make: it also reclaims the model file the maze constructor leaks.
        self.env = make_env(recipe.env_name, terminate_at_goal=False, max_episode_steps=max_episode_steps)
        self.maze = self.env.unwrapped
        self.free_cells = free_cells(self.maze.maze_map)
        self.vertex_cells = [c for c in self.free_cells if not is_hallway(self.maze.maze_map, c)]

    def _sample_task(self, rng):
        init_ij = _pick(self.free_cells, rng)
        if self.recipe.kind == "navigate":
            return init_ij, _pick(self.vertex_cells, rng)
        dist = bfs_distances(self.maze.maze_map, init_ij)
        ring = [cell for cell, d in dist.items() if d == self.recipe.stitch_cells]
        # A start with nothing at that distance (a small pocket) gets a stay-in-place episode.
        return init_ij, (_pick(ring, rng) if ring else init_ij)

    def _oracle_direction(self):
        """Unit vector from the agent towards the next BFS waypoint: the point agent's expert action."""
        xy = self.maze.get_xy()
        waypoint, _ = self.maze.get_oracle_subgoal(xy, self.maze.cur_goal_xy)
        direction = waypoint - xy
        return direction / (np.linalg.norm(direction) + 1e-6)

    def run_episode(self, rng, env_seed):
        """One episode as per-step lists: observations, actions, terminals, qpos, qvel."""
        init_ij, goal_ij = self._sample_task(rng)
        task = dict(task_info=dict(init_ij=init_ij, goal_ij=goal_ij))
        ob, _ = self.env.reset(seed=env_seed, options=task)
        steps = defaultdict(list)
        done = False
        while not done:
            action = self._oracle_direction() + rng.normal(0.0, self.recipe.noise, size=2)
            action = np.clip(action, -1.0, 1.0)
            next_ob, _, terminated, truncated, info = self.env.step(action)
            done = terminated or truncated
            if info["success"] and self.recipe.kind == "navigate":
                self.maze.set_goal(goal_ij=_pick(self.vertex_cells, rng))
            # OGBench stores the state *before* the step (prev_qpos), aligned with `ob`.
            steps["observations"].append(ob)
            steps["actions"].append(action)
            steps["terminals"].append(done)
            steps["qpos"].append(info["prev_qpos"])
            steps["qvel"].append(info["prev_qvel"])
            ob = next_ob
        return steps
