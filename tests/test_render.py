"""Fast rendering of OGBench's visual envs: faithful to OGBench's own renderer, and its errors.

States come from a short run of OGBench's play oracles (the state collector), so the arm, cube,
buttons and drawer are where play data puts them. Every comparison renders with the real MuJoCo
OpenGL renderer (EGL; Mesa llvmpipe on a CPU).
"""

import numpy as np
import pytest

from autodidact.core.errors import UserError
from autodidact.envs.render import FAST, RenderSettings, make_visual_env, render_frames, settings_for
from autodidact.workflows.collect import collect


def _play_states(tmp_path, dataset, steps=60, every=15):
    train, _ = collect(dataset, tmp_path, episodes=1, seed=1, max_episode_steps=steps, progress=False)
    with np.load(train) as f:
        states = {k: f[k][::every] for k in ("qpos", "qvel", "button_states") if k in f.files}
    return states


@pytest.mark.parametrize(
    "dataset, env_name",
    [
        ("cube-single-play-v0", "visual-cube-single-v0"),
        pytest.param("scene-play-v0", "visual-scene-v0", marks=pytest.mark.slow),
    ],
)
def test_fast_frames_match_ogbench_renderer(tmp_path, dataset, env_name):
    states = _play_states(tmp_path, dataset)
    fast = render_frames(env_name, **states)
    reference = render_frames(env_name, settings=None, **states)  # OGBench's env.render()
    assert fast.shape == reference.shape == (len(states["qpos"]), 64, 64, 3)
    assert fast.dtype == np.uint8
    diff = np.abs(fast.astype(int) - reference)
    assert diff.mean() < 1.0
    # Differences are scattered edge pixels, not a shifted or recoloured scene.
    assert (diff > 30).mean() < 0.01


def test_fast_env_steps_like_ogbench_and_renders_fast_frames():
    env = make_visual_env("visual-cube-single-v0")
    try:
        ob, _ = env.reset(seed=0)
        assert ob.shape == (64, 64, 3) and ob.dtype == np.uint8
        ob, *_ = env.step(np.zeros(5))
        renderer = env.unwrapped._renderer
        assert renderer.model.vis.quality.shadowsize == FAST.shadow_size
        assert renderer.model.mesh_facenum.sum() < 0.5 * env.unwrapped._model.mesh_facenum.sum()
        # The physics model is untouched.
        assert env.unwrapped._model.vis.quality.shadowsize == 4096
        np.testing.assert_array_equal(env.unwrapped.render(), ob)
    finally:
        env.close()


def test_bad_states_are_user_errors():
    qpos, qvel = np.zeros((2, 21)), np.zeros((2, 20))
    with pytest.raises(UserError, match="same N"):
        render_frames("visual-cube-single-v0", qpos, qvel[:1])
    with pytest.raises(UserError, match="qpos width 3"):
        render_frames("visual-cube-single-v0", np.zeros((2, 3)), qvel)
    with pytest.raises(UserError, match="button_states"):
        render_frames("visual-puzzle-3x3-v0", np.zeros((1, 23)), np.zeros((1, 23)))


def test_bad_settings_and_envs_are_user_errors():
    with pytest.raises(UserError, match="render preset"):
        settings_for("gpu")
    with pytest.raises(UserError, match="mesh_keep"):
        RenderSettings(mesh_keep=0.0)
    with pytest.raises(UserError, match="manipulation envs"):
        make_visual_env("pointmaze-medium-v0")
    with pytest.raises(UserError, match="unknown OGBench environment"):
        make_visual_env("visual-cube-nonuple-v0")
