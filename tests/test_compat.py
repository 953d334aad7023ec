"""Runs written by autodidact 0.1.0 keep working: they load, act as they did, resume and evaluate.

tests/artifacts/v0.1.0/ holds what 0.1.0 wrote (its `make.py` says how): a tiny point-world
dataset named like pointmaze-medium-navigate-v0, one 20-step run per method (run format 1: flat
goal-relabeling keys, each method's own optimizer name), and each run's actions on a fixed batch
of observations and goals, computed by 0.1.0.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from autodidact.methods import METHODS
from autodidact.workflows import train
from autodidact.workflows.evaluate import evaluate_run
from autodidact.workflows.runs import RUN_FORMAT_VERSION, load_run, read_run

ARTIFACT = Path(__file__).parent / "artifacts" / "v0.1.0"
ADDED_AFTER_0_1_0 = {"lapo", "skill-vae"}  # no 0.1.0 run can exist of these
METHODS_0_1_0 = [m for m in METHODS if m not in ADDED_AFTER_0_1_0]


def _moved_run(tmp_path, method):
    """A copy of the artifact's run, its dataset path pointed at where the dataset now lies (as a
    user who moved both would); the committed files are never touched."""
    data = tmp_path / "pointmaze-medium-navigate-v0.npz"
    if not data.exists():
        shutil.copy(ARTIFACT / data.name, data)
    run = tmp_path / method
    shutil.copytree(ARTIFACT / "runs" / method, run)
    run_cfg = json.loads((run / "run.json").read_text())
    assert run_cfg["format_version"] == 1
    run_cfg["dataset"] = str(data)
    (run / "run.json").write_text(json.dumps(run_cfg))
    return run


def test_every_method_has_an_artifact():
    assert sorted(p.name for p in (ARTIFACT / "runs").iterdir()) == sorted(METHODS_0_1_0)


@pytest.mark.parametrize("method", METHODS_0_1_0)
def test_a_0_1_0_run_acts_as_it_did(tmp_path, method):
    probe = np.load(ARTIFACT / "probe.npz")
    run_cfg, model, _, step = load_run(_moved_run(tmp_path, method))
    assert step == 20 and run_cfg["format_version"] == RUN_FORMAT_VERSION
    model.eval()
    policy = model.make_policy(temperature=0.0, seed=0)
    if hasattr(policy, "reset"):
        policy.reset(np.ones(len(probe["observations"]), bool))
    actions = policy.act(probe["observations"], probe["goals"])
    np.testing.assert_allclose(actions, probe[f"actions/{method}"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", METHODS_0_1_0)
def test_a_0_1_0_run_resumes_in_the_current_format(tmp_path, method):
    run = _moved_run(tmp_path, method)
    train.resume_run(run, argv=["autodidact", "train", "--resume", str(run), "--steps", "30"], steps=30,
                     progress=False)
    run_cfg = read_run(run)
    assert json.loads((run / "run.json").read_text())["format_version"] == RUN_FORMAT_VERSION
    assert run_cfg["steps"] == 30 and (run / "checkpoints" / "step_00000030").is_dir()
    old = load_file(ARTIFACT / "runs" / method / "checkpoints" / "step_00000020" / "model.safetensors")
    new = load_file(run / "checkpoints" / "step_00000030" / "model.safetensors")
    assert old.keys() == new.keys() and any(not np.array_equal(old[k], new[k]) for k in old)
    config = json.loads((run / "config.json").read_text())
    assert not any(k.startswith(("value_p_", "actor_p_")) for k in config)
    state = json.loads((run / "checkpoints" / "step_00000030" / "state.json").read_text())
    assert set(state["optimizers"]) == {"main"}
    assert (run / "command.txt").read_text().splitlines()[-1].endswith("--resume " + str(run) + " --steps 30")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gcivl", "play-lmp", "beso"])
def test_a_0_1_0_run_evaluates(tmp_path, method):
    run_cfg, model, _, _ = load_run(_moved_run(tmp_path, method))
    result = evaluate_run(model, run_cfg, episodes=1, progress=False, max_episode_steps=5)
    assert result["env"] == "pointmaze-medium-v0" and len(result["tasks"]) == 5
    assert all(t["episodes"] == 1 for t in result["tasks"])


def test_migrated_config_nests_the_goal_settings():
    run_cfg = read_run(ARTIFACT / "runs" / "hiql")
    assert run_cfg["config"]["value_goals"] == {"p_curgoal": 0.2, "p_trajgoal": 0.5, "p_randomgoal": 0.3,
                                                "geom_sample": True}
    assert run_cfg["config"]["actor_goals"]["p_trajgoal"] == 1.0 and run_cfg["config"]["gc_negative"] is True
    gcbc = read_run(ARTIFACT / "runs" / "gcbc")["config"]
    assert "value_goals" not in gcbc and "gc_negative" not in gcbc and gcbc["actor_goals"]["p_trajgoal"] == 1.0
