"""Fast, faithful frames for OGBench's visual manipulation envs on a CPU-only OpenGL (Mesa llvmpipe).

OGBench renders each 64x64 observation of `visual-cube-*`, `visual-scene-*` and `visual-puzzle-*`
with MuJoCo's OpenGL renderer. Without a GPU, Mesa's llvmpipe does the work in software and a frame
costs ~150 ms of CPU. Profiling (docs/COLLECTION.md, scripts/bench_render.py) puts that time in
geometry, not pixels:

- the shadow map: the directional light renders the scene a second time into a 4096 x 4096 depth
  map (`visual.quality.shadowsize`), 16.8M depth samples to shade 4096 colour pixels;
- triangles: the UR5e arm and Robotiq gripper meshes hold ~185k faces (~3 per pixel of the frame),
  each transformed and lit in software, in both passes;
- the floor: MuJoCo draws a plane as a grid of quads with `size[2]` spacing; OGBench's 2 m floor
  at 0.01 is 40k quads.

Multisampling, reflections, the skybox, haze and glReadPixels cost little (measured). So a fast
frame renders a *render-only copy* of the env's model with three settings changed, none of which
moves a pixel boundary at 64 x 64 by more than a fraction of a pixel:

- a smaller shadow map (`shadow_size`): the shadow's edge is resampled from a coarser depth map;
- decimated meshes (`mesh_keep`): quadric edge collapse (fast-simplification) keeps a fraction of
  each large mesh's faces, after welding MuJoCo's per-face vertex copies so edges can collapse;
- a coarser floor grid (`floor_grid_spacing`): only the per-vertex interpolation of the lights
  changes, the checker texture does not.

Physics never sees the copy. Each frame copies the simulator's computed poses (bodies, geoms,
sites, cameras, lights) and the run-time colours (geom and material rgba, which OGBench's envs
change for button states and cube colours) into it, so the frame shows exactly the state
OGBench's own `env.render()` would show at that moment, including in the middle of `env.step`.

API: `make_visual_env` (an env whose observations and `render()` use these settings),
`render_frames` (frames for given qpos/qvel[/button_states] of a named env), `RenderSettings`.
"""

import functools
import math
import multiprocessing
from dataclasses import dataclass

import numpy as np

from autodidact.core.errors import UserError
from autodidact.envs.ogbench import make_env


@dataclass(frozen=True)
class RenderSettings:
    """What a fast frame changes in the render-only copy of the model (OGBench's value in brackets)."""

    shadow_size: int = 1024  # shadow map side in texels [4096]
    mesh_keep: float = 0.1  # fraction of each mesh's faces kept by decimation [1.0: all]
    min_faces: int = 200  # meshes with fewer faces than this are kept whole (they cost little)
    floor_grid_spacing: float = 0.02  # plane grid spacing in metres, never finer than the model's [0.01]

    def __post_init__(self):
        if not (isinstance(self.shadow_size, int) and 16 <= self.shadow_size <= 16384):
            raise UserError(f"RenderSettings.shadow_size must be an integer in [16, 16384], got {self.shadow_size!r}")
        if not 0.0 < self.mesh_keep <= 1.0:
            raise UserError(f"RenderSettings.mesh_keep must be in (0, 1], got {self.mesh_keep!r}")
        if not self.floor_grid_spacing > 0:
            raise UserError(f"RenderSettings.floor_grid_spacing must be positive, got {self.floor_grid_spacing!r}")


FAST = RenderSettings()
# 'ogbench' means the env's own renderer, untouched (settings None).
PRESETS = {"fast": FAST, "ogbench": None}


def settings_for(name):
    """The RenderSettings of preset `name` ('fast', or 'ogbench' for None), or a UserError."""
    if name not in PRESETS:
        raise UserError(f"unknown render preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


# ---------------------------------------------------------------------------------------------
# The render-only model.


def _weld(verts, faces):
    """Merge vertices at the same position: MuJoCo stores a mesh with per-face vertex copies, and
    a triangle soup has no shared edges for the decimator to collapse (it would tear holes)."""
    key = np.round(verts / 1e-7).astype(np.int64)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    faces = inverse.reshape(-1)[faces]
    proper = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return verts[first], faces[proper]


def _decimated_mesh(model, i, keep):
    """Mesh i of a compiled model decimated to about `keep` of its faces, in the asset's frame.

    Returns (vertices [V, 3], faces [F, 3], normals [3F, 3]): one normal per face corner, taken
    from the original mesh (the nearest original corner whose normal best matches the new face),
    since normals recomputed on the welded mesh would smooth over the model's creases and shade
    the arm visibly differently.
    """
    import fast_simplification
    import mujoco
    from scipy.spatial import cKDTree

    va, vn = model.mesh_vertadr[i], model.mesh_vertnum[i]
    fa, fn = model.mesh_faceadr[i], model.mesh_facenum[i]
    na, nn = model.mesh_normaladr[i], model.mesh_normalnum[i]
    verts = model.mesh_vert[va : va + vn].astype(np.float64)
    faces = model.mesh_face[fa : fa + fn]
    normals = model.mesh_normal[na : na + nn].astype(np.float64)
    corner_pos = verts[faces].reshape(-1, 3)
    corner_normal = normals[model.mesh_facenormal[fa : fa + fn]].reshape(-1, 3)

    new_verts, new_faces = fast_simplification.simplify(*_weld(verts, faces), target_reduction=1.0 - keep)
    tri = new_verts[new_faces]
    face_normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    face_normal /= np.maximum(np.linalg.norm(face_normal, axis=1, keepdims=True), 1e-12)
    k = min(8, len(corner_pos))
    _, near = cKDTree(corner_pos).query(tri.reshape(-1, 3), k=k)
    near = near.reshape(-1, k)
    candidates = corner_normal[near]  # [3F, k, 3]
    agreement = np.einsum("ckd,cd->ck", candidates, np.repeat(face_normal, 3, axis=0))
    new_normals = candidates[np.arange(len(near)), agreement.argmax(axis=1)]

    # The compiler stores vertices centred on the mesh's inertial frame, v = R^T (asset - pos);
    # the spec wants the asset's own coordinates back (scale already applied).
    rot = np.empty(9)
    mujoco.mju_quat2Mat(rot, model.mesh_quat[i])
    rot = rot.reshape(3, 3)
    return new_verts @ rot.T + model.mesh_pos[i], new_faces, new_normals @ rot.T


def _decimatable(model, mesh_id, settings, geomgroup):
    """Whether mesh `mesh_id` is large, untextured and drawn only translucent (in visible groups).

    OGBench's pixel envs draw the arm and gripper at alpha 0.1-0.5, so a translucent mesh's
    outline error reaches the frame damped 2-10x (its shadow stays exact up to the decimation).
    Opaque object meshes (drawer, window, buttons) have crisp edges and few faces: kept whole.
    Textures would need texture coordinates, which decimation drops.
    """
    import mujoco

    if settings.mesh_keep >= 1.0 or model.mesh_facenum[mesh_id] < settings.min_faces:
        return False
    drawn = np.asarray(geomgroup, bool)[np.clip(model.geom_group, 0, len(geomgroup) - 1)]
    uses = np.nonzero((model.geom_type == mujoco.mjtGeom.mjGEOM_MESH) & (model.geom_dataid == mesh_id) & drawn)[0]
    for g in uses:
        mat = model.geom_matid[g]
        alpha = model.mat_rgba[mat, 3] if mat >= 0 else model.geom_rgba[g, 3]
        if alpha >= 1.0 or (mat >= 0 and (model.mat_texid[mat] >= 0).any()):
            return False
    return len(uses) > 0


@functools.lru_cache(maxsize=8)
def _render_model(xml, assets_key, settings, geomgroup):
    """(render-only model, ids of its rebuilt meshes); cached per process, decimation takes seconds."""
    import mujoco

    if settings.mesh_keep < 1.0:
        try:
            import fast_simplification  # noqa: F401
        except ImportError:
            raise UserError(
                "fast rendering decimates meshes with the fast-simplification package: "
                "pip install 'autodidact[visual]', or render with OGBench's settings (render='ogbench')"
            ) from None

    assets = dict(assets_key)

    def parse():
        spec = mujoco.MjSpec.from_string(xml, assets)
        spec.assets = assets  # from_string only parses with them; compile reads the mesh files again
        return spec

    # Compiling fills a spec's meshes from their files; the spec we edit must stay unfilled.
    original = parse().compile()
    spec = parse()
    rebuilt = []
    for i, mesh in enumerate(spec.meshes):
        if not _decimatable(original, i, settings, geomgroup):
            continue
        rebuilt.append(i)
        verts, faces, normals = _decimated_mesh(original, i, settings.mesh_keep)
        mesh.file = ""
        mesh.scale = [1.0, 1.0, 1.0]
        mesh.uservert = verts.reshape(-1).tolist()
        mesh.userface = faces.reshape(-1).tolist()
        mesh.usernormal = normals.reshape(-1).tolist()
        mesh.userfacenormal = np.arange(faces.size).tolist()
        # A decimated thin part can have too little volume for the default inertia; the render
        # model's inertias are never used, a shell inertia always compiles.
        mesh.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL
    model = spec.compile()
    model.vis.quality.shadowsize = settings.shadow_size
    planes = model.geom_type == mujoco.mjtGeom.mjGEOM_PLANE
    model.geom_size[planes, 2] = np.maximum(model.geom_size[planes, 2], settings.floor_grid_spacing)
    return model, tuple(rebuilt)


# What mjv_updateScene reads from mjData to place things (the scene is drawn from these, never
# from qpos directly); copying them shows exactly the physics state, computed or stale.
_POSE_FIELDS = (
    "qpos", "mocap_pos", "mocap_quat", "xpos", "xquat", "xmat", "xipos", "ximat",
    "geom_xpos", "geom_xmat", "site_xpos", "site_xmat", "cam_xpos", "cam_xmat",
    "light_xpos", "light_xdir", "subtree_com",
)


class FastRenderer:
    """A drop-in for the `mujoco.Renderer` of an OGBench manipulation env, drawing its render-only copy."""

    def __init__(self, env, settings):
        import mujoco
        from ogbench.manipspace import mjcf_utils

        self._source = env._model
        mjcf_model = env._mjcf_model
        assets_key = tuple(sorted(mjcf_utils.get_assets(mjcf_model).items()))
        # Meshes only in hidden geom groups (collision copies) do not count as drawn.
        geomgroup = tuple(int(g) for g in env._scene_option.geomgroup)
        model, rebuilt = _render_model(mjcf_utils.to_string(mjcf_model), assets_key, settings, geomgroup)
        self.model = model.__copy__()  # colours are written per frame: one copy per env
        if (self.model.ngeom, self.model.nbody, self.model.nmat) != (
            self._source.ngeom, self._source.nbody, self._source.nmat
        ):
            raise RuntimeError("render model does not match the env's model (geoms, bodies, materials)")
        self.data = mujoco.MjData(self.model)
        self._renderer = mujoco.Renderer(self.model, height=env._render_height, width=env._render_width)
        # A rebuilt mesh has its own inertial frame, so its geom sits at a different offset in its
        # body than in the physics model: place those geoms from their body's pose instead.
        moved = (self.model.geom_type == mujoco.mjtGeom.mjGEOM_MESH) & np.isin(self.model.geom_dataid, rebuilt)
        self._moved = np.nonzero(moved)[0]
        self._moved_body = self.model.geom_bodyid[self._moved]
        local = np.empty((len(self._moved), 9))
        for j, g in enumerate(self._moved):
            mujoco.mju_quat2Mat(local[j], self.model.geom_quat[g])
        self._moved_local = local.reshape(-1, 3, 3)
        self._moved_pos = self.model.geom_pos[self._moved]

    def update_scene(self, data, camera=-1, scene_option=None):
        # Run-time colours: OGBench recolours buttons, handles and cubes through model rgba.
        self.model.geom_rgba[:] = self._source.geom_rgba
        self.model.mat_rgba[:] = self._source.mat_rgba
        for field in _POSE_FIELDS:
            getattr(self.data, field)[:] = getattr(data, field)
        body_rot = data.xmat[self._moved_body].reshape(-1, 3, 3)
        self.data.geom_xpos[self._moved] = data.xpos[self._moved_body] + np.einsum(
            "gij,gj->gi", body_rot, self._moved_pos
        )
        self.data.geom_xmat[self._moved] = (body_rot @ self._moved_local).reshape(-1, 9)
        self._renderer.update_scene(self.data, camera=camera, scene_option=scene_option)

    def render(self, *args, **kwargs):
        return self._renderer.render(*args, **kwargs)

    def close(self):
        self._renderer.close()

    def __getattr__(self, name):
        # scene, enable_depth_rendering, ...: the wrapped mujoco.Renderer's.
        if "_renderer" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["_renderer"], name)


@functools.lru_cache(maxsize=None)
def _fast_class(cls):
    """`cls` whose renderer is a FastRenderer; the env rebuilds it whenever it recompiles its model."""

    def _initialize_renderer(self):
        if self._model is None:
            raise ValueError("Call `reset` before rendering.")
        import mujoco

        self._renderer = FastRenderer(self, self._render_settings)
        mujoco.mjv_defaultFreeCamera(self._model, self._camera)

    return type(cls.__name__, (cls,), {"__module__": cls.__module__, "_initialize_renderer": _initialize_renderer})


def is_manipspace(env):
    from ogbench.manipspace.envs.env import CustomMuJoCoEnv

    return isinstance(env.unwrapped, CustomMuJoCoEnv)


def use_render_settings(env, settings=FAST):
    """Make `env` (an OGBench manipulation env) render with `settings`; None leaves OGBench's renderer."""
    if settings is None:
        return env
    if not is_manipspace(env):
        raise UserError(
            f"fast rendering supports OGBench's manipulation envs (visual-cube-*, visual-scene-*, "
            f"visual-puzzle-*), not {env.spec.id if env.spec else type(env.unwrapped).__name__}; "
            f"use render='ogbench'"
        )
    u = env.unwrapped
    if u._renderer is not None:
        u._renderer.close()
        u._renderer = None
    u.__class__ = _fast_class(type(u))
    u._render_settings = settings
    return env


def make_visual_env(env_name, settings=FAST, **kwargs):
    """`make_env(env_name, **kwargs)` whose pixel observations and `render()` use `settings`.

    The evaluator's entry point: `make_visual_env("visual-cube-single-v0")` steps, resets and
    renders goals like OGBench's env, only faster. settings=None gives OGBench's renderer.
    """
    env = make_env(env_name, **kwargs)
    try:
        return use_render_settings(env, settings)
    except BaseException:
        env.close()
        raise


# ---------------------------------------------------------------------------------------------
# Frames for given states.


def _check_states(env_name, qpos, qvel, button_states):
    qpos, qvel = np.asarray(qpos), np.asarray(qvel)
    if qpos.ndim != 2 or qvel.ndim != 2 or len(qpos) != len(qvel):
        raise UserError(
            f"{env_name}: qpos and qvel must be [N, nq] and [N, nv] with the same N, "
            f"got {qpos.shape} and {qvel.shape}"
        )
    if button_states is not None:
        button_states = np.asarray(button_states)
        if button_states.ndim != 2 or len(button_states) != len(qpos):
            raise UserError(
                f"{env_name}: button_states must be [N, buttons] with N = {len(qpos)}, got {button_states.shape}"
            )
    return qpos, qvel, button_states


class StateRenderer:
    """Renders frames of one visual env at given simulator states (one GL context, reused)."""

    def __init__(self, env_name, settings=FAST):
        self.env_name = env_name
        self.env = make_visual_env(env_name, settings)
        self.env.reset(seed=0)
        u = self.env.unwrapped
        self.has_buttons = hasattr(u, "_cur_button_states")
        self.nq, self.nv = u._model.nq, u._model.nv

    def render(self, qpos, qvel, button_states=None):
        """uint8 frames [N, H, W, 3] for states qpos [N, nq], qvel [N, nv] (+ button_states [N, b])."""
        qpos, qvel, button_states = _check_states(self.env_name, qpos, qvel, button_states)
        if qpos.shape[1] != self.nq or qvel.shape[1] != self.nv:
            raise UserError(
                f"{self.env_name}: states have qpos width {qpos.shape[1]} and qvel width {qvel.shape[1]}, "
                f"the env needs {self.nq} and {self.nv}; were they recorded in another env?"
            )
        if self.has_buttons and button_states is None:
            raise UserError(f"{self.env_name}: needs button_states to render (the buttons' colours)")
        u = self.env.unwrapped
        frames = []
        for t in range(len(qpos)):
            q, v = qpos[t].astype(np.float64), qvel[t].astype(np.float64)
            if self.has_buttons:
                u.set_state(q, v, button_states[t].astype(np.int64))
            else:
                u.set_state(q, v)
            frames.append(u.render())
        if not frames:
            return np.zeros((0, u._render_height, u._render_width, 3), np.uint8)
        return np.stack(frames)

    def close(self):
        self.env.close()


_worker_renderer = None


def _init_render_worker(env_name, settings):
    global _worker_renderer
    _worker_renderer = StateRenderer(env_name, settings)


def _render_chunk(chunk):
    return _worker_renderer.render(*chunk)


def render_frames(env_name, qpos, qvel, button_states=None, settings=FAST, workers=1, progress=False):
    """uint8 frames [N, 64, 64, 3] of visual env `env_name` at the given states.

    qpos/qvel (and button_states for scene and puzzle) as OGBench's datasets store them. Frames
    are identical for any `workers` (each worker holds one env and one GL context).
    """
    from tqdm import tqdm

    qpos, qvel, button_states = _check_states(env_name, qpos, qvel, button_states)
    if not isinstance(workers, int) or workers < 1:
        raise UserError(f"workers must be a positive integer, got {workers!r}")
    n = len(qpos)
    chunk_size = max(1, min(256, math.ceil(n / (4 * workers))))
    chunks = []
    for start in range(0, n, chunk_size):
        part = slice(start, start + chunk_size)
        chunks.append((qpos[part], qvel[part], None if button_states is None else button_states[part]))
    chunks = chunks or [(qpos, qvel, button_states)]  # no states: still [0, H, W, 3] frames
    with tqdm(total=n, unit="frame", desc=f"render {env_name}", disable=not progress) as bar:
        if workers == 1 or len(chunks) == 1:
            renderer = StateRenderer(env_name, settings)
            try:
                out = []
                for chunk in chunks:
                    out.append(renderer.render(*chunk))
                    bar.update(len(out[-1]))
            finally:
                renderer.close()
        else:
            # 'spawn': each worker opens its own EGL context in a fresh interpreter.
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers, initializer=_init_render_worker, initargs=(env_name, settings)) as pool:
                out = []
                for frames in pool.imap(_render_chunk, chunks):
                    out.append(frames)
                    bar.update(len(frames))
    return np.concatenate(out)
