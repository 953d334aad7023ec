"""Learning from observations without actions: partially labeled files, the refusal of methods
that need actions, and `autodidact label` (an inverse dynamics model labels the rest)."""

import numpy as np
import pytest

from autodidact import cli
from autodidact.data.dataset import Dataset
from autodidact.data.labels import INFERRED, concatenate, hide_actions, label_summary
from autodidact.workflows.label import label
from pointenv import point_frames, point_play_dataset

TINY = ["--set", "hidden_dims=64,64", "--no-progress"]


def _run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _linear_system(path, episodes=30, length=40, seed=0):
    """s' = A s + B a with B of full column rank: a_t is exactly B^+ (s_{t+1} - A s_t)."""
    rng = np.random.default_rng(seed)
    A = 0.95 * np.linalg.qr(rng.normal(size=(4, 4)))[0]   # a stable rotation-like map
    B = rng.normal(size=(4, 2))
    obs, acts, terms = [], [], []
    for _ in range(episodes):
        s = rng.normal(size=4)
        for t in range(length):
            a = rng.uniform(-1, 1, 2)
            obs.append(s)
            acts.append(a)
            terms.append(t == length - 1)
            s = A @ s + B @ a
    Dataset(np.array(obs, np.float32), np.array(terms), np.array(acts, np.float32)).save(path)
    return path


@pytest.fixture(scope="module")
def point(tmp_path_factory):
    d = tmp_path_factory.mktemp("label")
    return point_play_dataset(d / "point.npz", episodes=20, length=30)


def test_inverse_model_recovers_a_linear_system(tmp_path):
    full = _linear_system(tmp_path / "linear.npz")
    hide_actions(Dataset.load(full), 0.5, seed=0).save(tmp_path / "half.npz")
    r = label(tmp_path / "half.npz", tmp_path / "out.npz", steps=800, context=0, progress=False,
              overrides=["hidden_dims=64,64", "val_fraction=0.2", "lr=1e-3"])
    err = r["errors"]
    assert r["held_out_episodes"] == 3
    # Uniform actions in [-1, 1] have variance 1/3: the mean action scores about that.
    assert err["mean action"]["mse"] > 0.25 and err["random-init model"]["mse"] > 0.25
    assert err["trained model"]["mse"] < 0.02
    out, truth = Dataset.load(tmp_path / "out.npz"), Dataset.load(full)
    inferred = out.extras[INFERRED] & ~out.terminals
    assert inferred.sum() == 15 * 39
    assert np.mean((out.actions[inferred] - truth.actions[inferred]) ** 2) < 0.02


def test_convert_label_fraction_is_seeded_and_hides_actions(point, tmp_path, capsys):
    outs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        code, out, _ = _run(capsys, "convert", point, tmp_path / f"{name}.npz", "--label-fraction", "0.1",
                            "--seed", seed, "--no-progress")
        assert code == 0 and "labeled 2/20 episodes (seed" in out
        outs[name] = Dataset.load(tmp_path / f"{name}.npz")
    a, b, c = outs["a"], outs["b"], outs["c"]
    assert np.array_equal(a.action_mask, b.action_mask) and not np.array_equal(a.action_mask, c.action_mask)
    assert not np.asarray(a.actions)[~a.action_mask].any()  # hidden labels are not in the file
    full = Dataset.load(point)
    assert np.array_equal(np.asarray(a.actions)[a.action_mask], np.asarray(full.actions)[a.action_mask])
    code, out, _ = _run(capsys, "info", tmp_path / "a.npz")
    assert code == 0 and "labels        episodes 2/20 (10.0%)  transitions 58/580 (10.0%)" in out
    # A tiny fraction still keeps one episode; 0 drops the field.
    assert label_summary(hide_actions(full, 0.001))["labeled_episodes"] == 1
    assert _run(capsys, "convert", point, tmp_path / "free.npz", "--label-fraction", "0", "--no-progress")[0] == 0
    assert Dataset.load(tmp_path / "free.npz").actions is None
    code, _, err = _run(capsys, "convert", point, tmp_path / "x.npz", "--label-fraction", "1.5")
    assert code == 2 and err.count("\n") == 1 and "must be in [0, 1]" in err


def test_methods_refuse_unlabeled_data_naming_label(point, tmp_path, capsys):
    full = Dataset.load(point)
    hide_actions(full, 0.0).save(tmp_path / "free.npz")
    n = len(full)
    Dataset(full.observations, full.terminals, np.zeros((n, 2), np.float32),
            action_mask=np.zeros(n, bool)).save(tmp_path / "masked.npz")
    for name in ("free", "masked"):
        code, _, err = _run(capsys, "train", "--method", "gcivl", "--dataset", tmp_path / f"{name}.npz",
                            "--out", tmp_path / f"run-{name}", "--steps", "2")
        assert code == 2 and err.count("\n") == 1 and "`autodidact label" in err, err
        assert not (tmp_path / f"run-{name}").exists()


def test_partially_labeled_file_trains_on_its_labels_and_says_so(point, tmp_path, capsys):
    hide_actions(Dataset.load(point), 0.25, seed=0).save(tmp_path / "part.npz")
    code, _, err = _run(capsys, "train", "--method", "gcbc", "--dataset", tmp_path / "part.npz", "--out",
                        tmp_path / "run", "--steps", "2", "--eval-episodes", "0", "--no-progress",
                        "--set", "batch_size=8", "--set", "actor_hidden_dims=16")
    assert code == 0, err
    assert "145/580 transitions carry actions (5/20 episodes); 'gcbc' learns from those only" in err


def test_label_end_to_end_then_gcbc_trains(point, tmp_path, capsys):
    hide_actions(Dataset.load(point), 0.25, seed=0).save(tmp_path / "part.npz")
    code, out, err = _run(capsys, "label", tmp_path / "part.npz", "--out", tmp_path / "idm.npz", "--steps", "100",
                          "--seed", "1", *TINY)
    assert code == 0, err
    assert "held-out action error" in out and "trained model" in out and "random-init model" in out
    part, done = Dataset.load(tmp_path / "part.npz"), Dataset.load(tmp_path / "idm.npz")
    assert done.action_mask is None and np.abs(done.actions).max() <= 1.0
    assert np.array_equal(done.extras[INFERRED], ~part.action_mask)
    assert np.array_equal(done.actions[part.action_mask], np.asarray(part.actions)[part.action_mask])
    code, _, err = _run(capsys, "train", "--method", "gcbc", "--dataset", tmp_path / "idm.npz", "--out",
                        tmp_path / "run", "--steps", "3", "--eval-episodes", "0", "--no-progress",
                        "--set", "batch_size=8", "--set", "actor_hidden_dims=16")
    assert code == 0, err
    # Seeded: the same command writes the same actions.
    assert _run(capsys, "label", tmp_path / "part.npz", "--out", tmp_path / "idm2.npz", "--steps", "100",
                "--seed", "1", *TINY)[0] == 0
    assert np.array_equal(Dataset.load(tmp_path / "idm2.npz").actions, done.actions)


def test_action_free_file_with_a_separate_labeled_file(point, tmp_path, capsys):
    full = Dataset.load(point)
    hide_actions(full, 0.0).save(tmp_path / "free.npz")
    _linear_system(tmp_path / "other.npz", episodes=3)  # 4-d states: not the same observations
    code, _, err = _run(capsys, "label", tmp_path / "free.npz", "--out", tmp_path / "x.npz", *TINY)
    assert code == 2 and err.count("\n") == 1 and "--labeled" in err
    code, _, err = _run(capsys, "label", tmp_path / "free.npz", "--labeled", tmp_path / "other.npz",
                        "--out", tmp_path / "x.npz", *TINY)
    assert code == 2 and err.count("\n") == 1 and "differ" in err
    point_play_dataset(tmp_path / "demos.npz", episodes=4, length=30, seed=5)
    code, _, err = _run(capsys, "label", tmp_path / "free.npz", "--labeled", tmp_path / "demos.npz",
                          "--out", tmp_path / "union.npz", "--steps", "50", *TINY)
    assert code == 0, err
    union = Dataset.load(tmp_path / "union.npz")
    assert union.num_episodes == 24
    assert union.extras[INFERRED][:len(full)].all() and not union.extras[INFERRED][len(full):].any()
    code, _, err = _run(capsys, "label", tmp_path / "free.npz", "--out", tmp_path / "free.npz")
    assert code == 2 and "never overwrites" in err
    code, _, err = _run(capsys, "label", tmp_path / "union.npz", "--out", tmp_path / "y.npz",
                        "--set", "encoder=impala_small")
    assert code == 2 and err.count("\n") == 1 and "encoder" in err


def test_concatenate_keeps_common_extras_and_marks_labels():
    a = Dataset(np.zeros((4, 2), np.float32), [0, 1, 0, 1], None, extras={"qpos": np.zeros((4, 3))})
    b = Dataset(np.ones((3, 2), np.float32), [0, 0, 1], np.ones((3, 2), np.float32),
                extras={"qpos": np.zeros((3, 3)), "qvel": np.zeros((3, 1))})
    joined, dropped = concatenate([a, b])
    assert joined.num_episodes == 3 and dropped == ["qvel"] and list(joined.extras) == ["qpos"]
    assert joined.action_mask.tolist() == [False] * 4 + [True] * 3
    assert label_summary(joined)["labeled_transitions"] == 2


def test_label_reads_frames_with_the_impala_encoder(tmp_path, capsys):
    states = Dataset.load(point_play_dataset(tmp_path / "s.npz", episodes=4, length=12))
    frames = Dataset(point_frames(np.asarray(states.observations), 16), states.terminals, np.asarray(states.actions))
    hide_actions(frames, 0.5, seed=0).save(tmp_path / "frames.npz")
    code, _, err = _run(capsys, "label", tmp_path / "frames.npz", "--out", tmp_path / "out.npz", "--steps", "3",
                          "--set", "encoder=impala_debug", "--set", "batch_size=4", *TINY)
    assert code == 0, err
    assert Dataset.load(tmp_path / "out.npz").extras[INFERRED].sum() == 24
