"""`autodidact convert` from other tools' formats: datasets written by the real libraries (minari's
DataCollector, lerobot's LeRobotDataset through a committed fixture, h5py in robomimic's and D4RL's
documented layouts) convert with exact episode boundaries and values, load with autodidact's and
OGBench's loaders, and train a method; bad input is one line naming file and field."""

import hashlib
import shutil
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import ogbench
import pytest
from gymnasium import spaces

from autodidact import cli
from autodidact.data.dataset import load
from autodidact.data.formats import detect

ARTIFACTS = Path(__file__).parent / "artifacts" / "formats"
# Written by lerobot 0.4.4 (format v3.0) and 0.3.3 (format v2.1): scripts/make_format_fixtures.py;
# lerobot_v30_image holds its camera as PNG `image` features instead of video.
LEROBOT_FIXTURES = ["lerobot_v30_video", "lerobot_v21_video"]


def convert(capsys, *args):
    """`autodidact convert ...` in this process: (exit code, stdout, stderr)."""
    code = cli.main(["convert", *map(str, args), "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def train_a_few_steps(dataset, out):
    code = cli.main(["train", "--method", "gcbc", "--dataset", str(dataset), "--out", str(out), "--steps", "3",
                     "--eval-episodes", "0", "--no-progress", "--set", "batch_size=8",
                     "--set", "actor_hidden_dims=16,16"])
    assert code == 0
    assert (out / "checkpoints" / "latest.json").exists()


def episodes_of(ds):
    return [(int(s), int(e)) for s, e in zip(ds.episode_starts, ds.episode_ends)]


def tree_digest(path):
    """A hash of every file under `path`, to prove that convert leaves its input untouched."""
    h = hashlib.sha256()
    for f in sorted(Path(path).rglob("*")) if Path(path).is_dir() else [Path(path)]:
        if f.is_file():
            h.update(str(f.relative_to(path) if Path(path).is_dir() else f.name).encode() + f.read_bytes())
    return h.hexdigest()


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autodidact: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


# ============================================================================ Minari
class ToyGoalEnv(gym.Env):
    """A goal-conditioned env with gymnasium-robotics' Dict observation space, small and fast."""

    observation_space = spaces.Dict({"observation": spaces.Box(-10, 10, (3,)),
                                     "achieved_goal": spaces.Box(-10, 10, (2,)),
                                     "desired_goal": spaces.Box(-10, 10, (2,))})
    action_space = spaces.Box(-1, 1, (2,))

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.state = self.np_random.normal(size=3).astype(np.float32)
        self.goal = self.np_random.normal(size=2).astype(np.float32)
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return {"observation": self.state.copy(), "achieved_goal": self.state[:2].copy(),
                "desired_goal": self.goal.copy()}

    def step(self, action):
        self.state[:2] += 0.5 * np.asarray(action, np.float32)
        self.t += 1
        dist = float(np.linalg.norm(self.state[:2] - self.goal))
        return self._obs(), -dist, dist < 0.5, self.t >= 8, {}


def collect_minari(root, monkeypatch, env, dataset_id, episodes=4, data_format=None):
    """A Minari dataset written by minari's own DataCollector; returns (directory, MinariDataset)."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    import minari
    collector = minari.DataCollector(env, data_format=data_format)
    for seed in range(episodes):
        collector.reset(seed=seed)
        collector.action_space.seed(seed)
        while True:
            _, _, terminated, truncated, _ = collector.step(collector.action_space.sample())
            if terminated or truncated:
                break
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # minari warns that no evaluation env or author was given
        dataset = collector.create_dataset(dataset_id=dataset_id, algorithm_name="random")
    namespace, name = dataset_id.split("/")
    return root / namespace / name, dataset


@pytest.mark.parametrize("data_format", ["hdf5", "arrow"])  # Minari's two storage backends
def test_minari_box_dataset_round_trips_and_trains(tmp_path, monkeypatch, capsys, data_format):
    src, mds = collect_minari(tmp_path / "minari", monkeypatch, gym.make("Pendulum-v1", max_episode_steps=7),
                              "pendulum/random-v0", data_format=data_format)
    before = tree_digest(src)
    assert detect(src) == "minari" and detect(src / "data") == "minari"
    code, out, err = convert(capsys, src, tmp_path / "pendulum.npz")
    assert code == 0, err
    assert "4 episodes" in out
    ds = load(tmp_path / "pendulum.npz")
    episodes = list(mds.iterate_episodes())
    # A Minari episode of T steps holds T + 1 observations: one autodidact episode of T + 1 states.
    states = np.array([len(ep) + 1 for ep in episodes])
    ends = np.cumsum(states) - 1
    assert episodes_of(ds) == list(zip(ends - states + 1, ends))
    raw = np.load(tmp_path / "pendulum.npz", allow_pickle=False)
    for (start, end), ep in zip(episodes_of(ds), episodes):
        np.testing.assert_array_equal(ds.observations[start:end + 1], ep.observations)
        np.testing.assert_array_equal(ds.actions[start:end], ep.actions)
        np.testing.assert_array_equal(raw["rewards"][start:end], ep.rewards)  # float64, exactly
        np.testing.assert_array_equal(raw["masks"][start:end], 1.0 - ep.terminations)
    reference = ogbench.load_dataset(str(tmp_path / "pendulum.npz"))
    assert len(reference["observations"]) == ds.num_transitions
    assert tree_digest(src) == before
    train_a_few_steps(tmp_path / "pendulum.npz", tmp_path / "run")


def test_minari_dict_observations(tmp_path, monkeypatch, capsys):
    src, mds = collect_minari(tmp_path / "minari", monkeypatch, ToyGoalEnv(), "toy/goal-v0", episodes=3)
    code, out, err = convert(capsys, src, tmp_path / "goal.npz")
    assert code == 0, err
    ds = load(tmp_path / "goal.npz")
    episodes = list(mds.iterate_episodes())
    assert ds.num_episodes == 3 and ds.obs_shape == (3,)
    start, end = episodes_of(ds)[1]
    np.testing.assert_array_equal(ds.observations[start:end + 1], episodes[1].observations["observation"])
    # The other Dict keys are kept as extra per-step fields under their own names.
    np.testing.assert_array_equal(ds.extras["desired_goal"][start:end + 1], episodes[1].observations["desired_goal"])
    code, _, err = convert(capsys, src, tmp_path / "goals.npz", "--obs-keys", "desired_goal,achieved_goal")
    assert code == 0, err
    ds = load(tmp_path / "goals.npz")
    np.testing.assert_array_equal(ds.observations[start:end + 1], np.concatenate(
        [episodes[1].observations["desired_goal"], episodes[1].observations["achieved_goal"]], axis=1))
    code, _, err = convert(capsys, src, tmp_path / "x.npz", "--obs-keys", "velocity")
    assert_one_line_error(code, err, "episode_0/observations/velocity", "not found", "desired_goal")
    assert not (tmp_path / "x.npz").exists()


def test_minari_truncated_file_is_one_line(tmp_path, monkeypatch, capsys):
    src, _ = collect_minari(tmp_path / "minari", monkeypatch,
                            gym.make("Pendulum-v1", max_episode_steps=5), "pendulum/broken-v0", episodes=2)
    data = src / "data" / "main_data.hdf5"
    data.write_bytes(data.read_bytes()[:2000])
    code, _, err = convert(capsys, src, tmp_path / "out.npz")
    assert_one_line_error(code, err, str(src))
    assert not (tmp_path / "out.npz").exists()


# ============================================================================ LeRobot
@pytest.mark.parametrize("fixture", LEROBOT_FIXTURES)
def test_lerobot_fixture_round_trips_states_and_trains(tmp_path, capsys, fixture):
    LEROBOT = ARTIFACTS / fixture
    expected = np.load(str(LEROBOT) + ".expected.npz", allow_pickle=False)
    assert detect(LEROBOT) == "lerobot"
    before = tree_digest(LEROBOT)
    code, out, err = convert(capsys, LEROBOT, tmp_path / "state.npz")
    assert code == 0, err
    ds = load(tmp_path / "state.npz")
    lengths = expected["lengths"]
    ends = np.cumsum(lengths) - 1
    assert episodes_of(ds) == list(zip(ends - lengths + 1, ends))
    # Every LeRobot frame is one step, its action included: the values are the recorded ones.
    np.testing.assert_array_equal(ds.observations, expected["states"])
    np.testing.assert_array_equal(ds.actions, expected["actions"])
    np.testing.assert_array_equal(ds.rewards, expected["rewards"])
    raw = np.load(tmp_path / "state.npz", allow_pickle=False)
    np.testing.assert_array_equal(raw["masks"], 1.0 - expected["dones"])
    assert ogbench.load_dataset(str(tmp_path / "state.npz"))["observations"].shape == (len(ds) - len(lengths), 3)
    assert tree_digest(LEROBOT) == before
    train_a_few_steps(tmp_path / "state.npz", tmp_path / "run")


@pytest.mark.parametrize("fixture", LEROBOT_FIXTURES)
def test_lerobot_video_frames_decode_to_the_recorded_images(tmp_path, capsys, fixture):
    LEROBOT = ARTIFACTS / fixture
    expected = np.load(str(LEROBOT) + ".expected.npz", allow_pickle=False)
    code, out, err = convert(capsys, LEROBOT, tmp_path / "video.npz", "--obs-keys", "observation.images.cam")
    assert code == 0, err
    ds = load(tmp_path / "video.npz")
    assert ds.observations.dtype == np.uint8 and ds.obs_shape == (64, 64, 3)
    np.testing.assert_array_equal(ds.extras["observation.state"], expected["states"])
    frames = ds.observations.astype(np.int16)
    recorded = expected["frames"].astype(np.int16)
    error = np.abs(frames - recorded).mean(axis=(1, 2, 3))
    # AV1 is lossy, so frames are close rather than equal; each is far closer to its own recorded
    # image than to the neighbouring frame's, so no frame is shifted.
    assert error.max() < 8, error
    shifted = np.abs(frames[1:] - recorded[:-1]).mean(axis=(1, 2, 3))
    assert (shifted > 3 * error[1:]).all()


def test_lerobot_image_features_decode_exactly(tmp_path, capsys):
    # `image` features are PNGs inside the Parquet rows: lossless, so the frames round trip exactly.
    fixture = ARTIFACTS / "lerobot_v30_image"
    expected = np.load(str(fixture) + ".expected.npz", allow_pickle=False)
    code, _, err = convert(capsys, fixture, tmp_path / "images.npz", "--obs-keys", "observation.images.cam")
    assert code == 0, err
    ds = load(tmp_path / "images.npz")
    np.testing.assert_array_equal(ds.observations, expected["frames"])
    np.testing.assert_array_equal(ds.actions, expected["actions"])
    assert [e - s + 1 for s, e in episodes_of(ds)] == list(expected["lengths"])


@pytest.mark.parametrize("fixture", LEROBOT_FIXTURES)
def test_lerobot_broken_inputs_are_one_line(tmp_path, capsys, fixture):
    broken = tmp_path / "lerobot"
    shutil.copytree(ARTIFACTS / fixture, broken)
    video = sorted((broken / "videos").rglob("*.mp4"))[0]
    video.write_bytes(video.read_bytes()[: len(video.read_bytes()) // 2])
    code, _, err = convert(capsys, broken, tmp_path / "out.npz", "--obs-keys", "observation.images.cam")
    assert_one_line_error(code, err, video.name)
    parquet = sorted((broken / "data").rglob("*.parquet"))[0]
    parquet.write_bytes(parquet.read_bytes()[:500])
    code, _, err = convert(capsys, broken, tmp_path / "out.npz")
    assert_one_line_error(code, err, parquet.name, "Parquet")
    (broken / "meta" / "info.json").write_text('{"codebase_version": "v1.6", "features": {}, "fps": 10}')
    code, _, err = convert(capsys, broken, tmp_path / "out.npz")
    assert_one_line_error(code, err, "info.json", "codebase_version", "v3.0")
    assert not (tmp_path / "out.npz").exists()


# ============================================================================ robomimic / D4RL HDF5
def write_robomimic(path, lengths=(5, 3, 6), next_obs=True):
    """A robomimic-layout file (data/demo_N/{obs,next_obs}/<key>, actions, rewards, dones, states)."""
    rng = np.random.default_rng(0)
    demos = {}
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for i, t in enumerate(lengths):
            states = {"robot0_eef_pos": rng.normal(size=(t + 1, 3)), "object": rng.normal(size=(t + 1, 4)),
                      "agentview_image": rng.integers(0, 255, size=(t + 1, 8, 8, 3), dtype=np.uint8)}
            demo = {"obs": {k: v[:-1] for k, v in states.items()}, "next_obs": {k: v[1:] for k, v in states.items()},
                    "actions": rng.uniform(-1, 1, size=(t, 7)), "rewards": (np.arange(t) == t - 1).astype(float),
                    "dones": np.arange(t) == t - 1, "states": rng.normal(size=(t, 9))}
            # demo_10 after demo_2: episodes follow the numbers, not the string order.
            g = data.create_group(f"demo_{[0, 10, 2][i]}")
            for key, value in demo.items():
                if isinstance(value, dict):
                    if key == "next_obs" and not next_obs:
                        continue
                    for k, v in value.items():
                        g.create_dataset(f"{key}/{k}", data=v)
                else:
                    g.create_dataset(key, data=value)
            g.attrs["num_samples"] = t
            demos[[0, 10, 2][i]] = (states, demo)
        data.attrs["env_args"] = '{"env_name": "Lift"}'
    return [demos[k] for k in sorted(demos)]


def test_robomimic_round_trips_and_trains(tmp_path, capsys):
    src = tmp_path / "low_dim.hdf5"
    demos = write_robomimic(src)
    before = tree_digest(src)
    assert detect(src) == "hdf5"
    code, out, err = convert(capsys, src, tmp_path / "lift.npz")
    assert code == 0, err
    ds = load(tmp_path / "lift.npz")
    raw = np.load(tmp_path / "lift.npz", allow_pickle=False)
    # Each demo of T steps: its T obs plus the last next_obs, so all T transitions are kept.
    assert [e - s for s, e in episodes_of(ds)] == [5, 6, 3]
    for (start, end), (states, demo) in zip(episodes_of(ds), demos):
        np.testing.assert_array_equal(ds.observations[start:end + 1],
                                      np.concatenate([states["object"], states["robot0_eef_pos"]], axis=1))
        np.testing.assert_array_equal(ds.actions[start:end], demo["actions"])
        np.testing.assert_array_equal(raw["rewards"][start:end], demo["rewards"])
        np.testing.assert_array_equal(raw["masks"][start:end], 1.0 - demo["dones"])
        np.testing.assert_array_equal(ds.extras["states"][start:end], demo["states"])
    assert ogbench.load_dataset(str(tmp_path / "lift.npz"))["actions"].shape == (14, 7)
    assert tree_digest(src) == before
    train_a_few_steps(tmp_path / "lift.npz", tmp_path / "run")

    code, _, err = convert(capsys, src, tmp_path / "images.npz", "--obs-keys", "agentview_image")
    assert code == 0, err
    images = load(tmp_path / "images.npz")
    start, end = episodes_of(images)[2]
    np.testing.assert_array_equal(images.observations[start:end + 1], demos[2][0]["agentview_image"])


def test_robomimic_without_next_obs_keeps_t_states(tmp_path, capsys):
    src = tmp_path / "demo.hdf5"
    demos = write_robomimic(src, next_obs=False)
    code, _, err = convert(capsys, src, tmp_path / "out.npz", "--obs-keys", "robot0_eef_pos")
    assert code == 0, err
    ds = load(tmp_path / "out.npz")
    assert [e - s + 1 for s, e in episodes_of(ds)] == [5, 6, 3]
    start, end = episodes_of(ds)[0]
    np.testing.assert_array_equal(ds.observations[start:end + 1], demos[0][0]["robot0_eef_pos"][:-1])
    np.testing.assert_array_equal(ds.actions[start:end + 1], demos[0][1]["actions"])


def test_d4rl_boundaries_from_terminals_and_timeouts(tmp_path, capsys):
    rng = np.random.default_rng(1)
    n = 12
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    terminals[3] = True
    timeouts[8] = True  # rows 9-11 end with the file, without a flag
    fields = {"observations": rng.normal(size=(n, 4)).astype(np.float32),
              "actions": rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
              "rewards": rng.normal(size=n).astype(np.float32), "terminals": terminals, "timeouts": timeouts,
              "infos/qpos": rng.normal(size=(n, 3))}
    src = tmp_path / "hopper-medium-v2.hdf5"
    with h5py.File(src, "w") as f:
        for k, v in fields.items():
            f.create_dataset(k, data=v)
    code, _, err = convert(capsys, src, tmp_path / "hopper.npz", "--layout", "regular")
    assert code == 0, err
    ds = load(tmp_path / "hopper.npz")
    assert episodes_of(ds) == [(0, 3), (4, 8), (9, 11)]
    np.testing.assert_array_equal(ds.observations, fields["observations"])
    # The regular layout holds transitions only, so values at each episode's last state (which
    # has no next state) are not in the file; every transition's are, exactly.
    steps = ds.valid_idxs
    np.testing.assert_array_equal(ds.actions[steps], fields["actions"][steps])
    np.testing.assert_array_equal(ds.rewards[steps], fields["rewards"][steps])
    np.testing.assert_array_equal(ds.extras["qpos"][steps], fields["infos/qpos"][steps])
    train_a_few_steps(tmp_path / "hopper.npz", tmp_path / "run")


def test_hdf5_bad_inputs_are_one_line(tmp_path, capsys):
    src = tmp_path / "demo.hdf5"
    write_robomimic(src)
    truncated = tmp_path / "truncated.hdf5"
    truncated.write_bytes(src.read_bytes()[:3000])
    code, _, err = convert(capsys, truncated, tmp_path / "out.npz")
    assert_one_line_error(code, err, "truncated.hdf5")
    with h5py.File(src, "a") as f:
        del f["data/demo_2/actions"]
        f.create_dataset("data/demo_2/actions", data=np.zeros((2, 7)))
    code, _, err = convert(capsys, src, tmp_path / "out.npz")
    assert_one_line_error(code, err, "demo.hdf5", "data/demo_2/actions", "2 steps")
    with h5py.File(src, "a") as f:
        f["data/demo_0/obs/object"][1, 2] = np.nan
    code, _, err = convert(capsys, src, tmp_path / "out.npz")
    assert_one_line_error(code, err, "data/demo_0/observations", "NaN")
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.create_dataset("something", data=np.zeros(3))
    code, _, err = convert(capsys, empty, tmp_path / "out.npz")
    assert_one_line_error(code, err, "empty.h5", "neither robomimic", "something")
    assert not (tmp_path / "out.npz").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_unrecognized_source_and_format_name(tmp_path, capsys):
    (tmp_path / "dir").mkdir()
    code, _, err = convert(capsys, tmp_path / "dir", tmp_path / "out.npz")
    assert_one_line_error(code, err, "format not recognized", "--from")
    code, _, err = convert(capsys, tmp_path / "dir", tmp_path / "out.npz", "--from", "rlds")
    assert_one_line_error(code, err, "--from", "rlds")
    code, _, err = convert(capsys, tmp_path / "dir", tmp_path / "out.npz", "--from", "lerobot")
    assert_one_line_error(code, err, "info.json")


def test_formats_help_lists_every_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(["convert", "--help"])
    out = capsys.readouterr().out
    for option in ("--from", "--obs-keys", "--layout", "--uncompressed", "--no-progress"):
        assert option in out


def test_missing_reader_library_names_the_extra(tmp_path, monkeypatch, capsys):
    (tmp_path / "ds" / "data").mkdir(parents=True)
    (tmp_path / "ds" / "data" / "metadata.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "minari", None)  # makes `import minari` fail as if not installed
    code, _, err = convert(capsys, tmp_path / "ds", tmp_path / "out.npz")
    assert_one_line_error(code, err, "minari", "pip install 'autodidact[minari]'")


def test_video_cursor_goes_back_in_time():
    from autodidact.data.formats.lerobot import _VideoCursor
    video = next((ARTIFACTS / "lerobot_v30_video" / "videos").rglob("*.mp4"))
    recorded = np.load(str(ARTIFACTS / "lerobot_v30_video") + ".expected.npz")["frames"].astype(np.int16)
    cursor = _VideoCursor(video)
    late, early = cursor.frame_at(1.5, tolerance=0.05), cursor.frame_at(0.2, tolerance=0.05)  # fps 10
    assert np.abs(late - recorded[15]).mean() < 8 and np.abs(early - recorded[2]).mean() < 8
    assert cursor.frame_at(9.0, tolerance=0.05) is None  # past the end
