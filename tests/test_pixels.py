"""Learning from camera frames: OGBench's IMPALA encoder, random-shift augmentation, frame
stacking, and every method on tiny generated frame data.

The encoder is checked against OGBench's own flax ImpalaEncoder: tests/artifacts holds its
initialised weights, a batch of frames and its output (scripts/make_impala_reference.py).
"""

import numpy as np
import pytest
import torch

from autodidact.core.config import ConfigError, apply_overrides
from autodidact.core.errors import UserError
from autodidact.data.dataset import Dataset
from autodidact.data.sampler import GoalConfig, GoalSampler, WindowSampler, random_shift
from autodidact.methods import get_method
from autodidact.methods.presets import preset_for
from autodidact.nn.encoders import ENCODERS, GCEncoder, make_encoder
from autodidact.workflows.runtime import to_tensors
from pointenv import assert_resume_matches_uninterrupted, point_frames_dataset, point_play_dataset
from test_methods import NAMES, SPECS

ARTIFACT = __file__.rsplit("/", 1)[0] + "/artifacts/impala_debug_reference.npz"


def _load_reference(encoder, ref):
    """Flax's parameter tree -> our modules: Conv_0 is each stack's first conv, then the blocks'
    two convs in order; kernels [kh, kw, in, out] -> [out, in, kh, kw]; Dense [in, out] -> [out, in]."""
    with torch.no_grad():
        for i, stack in enumerate(encoder.stacks):
            convs = [stack.conv] + [block[j] for block in stack.blocks for j in (1, 3)]
            for k, conv in enumerate(convs):
                key = f"['params']['stack_blocks_{i}']['Conv_{k}']"
                conv.weight.copy_(torch.from_numpy(ref[key + "['kernel']"]).permute(3, 2, 0, 1))
                conv.bias.copy_(torch.from_numpy(ref[key + "['bias']"]))
        dense = encoder.mlp.net[0]
        dense.weight.copy_(torch.from_numpy(ref["['params']['MLP_0']['Dense_0']['kernel']"]).T)
        dense.bias.copy_(torch.from_numpy(ref["['params']['MLP_0']['Dense_0']['bias']"]))


def test_impala_matches_ogbench_layer_for_layer():
    ref = np.load(ARTIFACT)
    enc = make_encoder("impala_debug", (16, 16, 3), channels=2)   # [s; g] stacked: 6 channels
    params = {k: ref[k] for k in ref.files if k.startswith("[")}
    assert sum(p.numel() for p in enc.parameters()) == sum(v.size for v in params.values())
    _load_reference(enc, ref)
    out = enc(torch.from_numpy(ref["frames"])).detach().numpy()
    # GELU is exact here and tanh-approximated in flax: they differ by at most 5e-4 (nn/layers.py).
    np.testing.assert_allclose(out, ref["out"], atol=2e-3)
    assert out.shape == (3, 512)


def test_published_encoders_have_the_reference_parameter_counts():
    # Counted from OGBench's flax modules initialised on 64x64 frames stacked with their goal.
    counts = {"impala_small": 1_105_488, "impala": 1_147_120}
    for name, n in counts.items():
        enc = make_encoder(name, (64, 64, 3), channels=2)
        assert sum(p.numel() for p in enc.parameters()) == n, name
        assert enc.out_dim == 512
    assert set(ENCODERS) >= {"impala", "impala_small", "impala_large"}


def test_state_vectors_read_through_a_flat_encoder_without_parameters():
    enc = GCEncoder(concat=make_encoder(None, (5,), channels=2))
    s, g = torch.randn(4, 5), torch.randn(4, 5)
    assert enc.out_dim == 10 and not list(enc.parameters())
    assert torch.equal(enc(s, g), torch.cat([s, g], -1))


def test_random_shift_is_an_edge_padded_crop():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 2, 9, 7, 3), dtype=np.uint8)   # rows of 2 frames each
    offsets = rng.integers(0, 7, (6, 2))
    out = random_shift(images, offsets)
    for b in range(6):
        padded = np.pad(images[b], ((0, 0), (3, 3), (3, 3), (0, 0)), mode="edge")
        y, x = offsets[b]
        np.testing.assert_array_equal(out[b], padded[:, y:y + 9, x:x + 7])


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return Dataset.load(point_frames_dataset(tmp_path_factory.mktemp("frames") / "frames.npz"))


def test_augmentation_statistics(frames):
    """With p_aug, about that fraction of batches is shifted, each row by an offset uniform over
    the 7 x 7 shifts, shared by every key of the row; without p_aug, nothing moves and no random
    number is drawn (state-based runs sample what they always did)."""
    coords = np.stack(np.meshgrid(np.arange(16), np.arange(16), indexing="ij"), -1).astype(np.uint8)
    coords = np.broadcast_to(coords, (64, 16, 16, 2))            # pixel (y, x) holds (y, x)
    sampler = GoalSampler(frames, seed=0, actor_goals=GoalConfig(), p_aug=0.5)
    shifted, offsets = 0, []
    for _ in range(400):
        batch = {"observations": coords.copy(), "value_goals": coords.copy()}
        sampler.augment(batch, ["observations", "value_goals"])
        np.testing.assert_array_equal(batch["observations"], batch["value_goals"])
        off = batch["observations"][:, 8, 8].astype(int) - 8 + 3   # the centre never clamps
        if (off != 3).any():
            shifted += 1
            offsets.append(off)
    assert 0.42 < shifted / 400 < 0.58
    counts = np.bincount(np.concatenate(offsets).ravel(), minlength=7) / np.concatenate(offsets).size
    np.testing.assert_allclose(counts, 1 / 7, atol=0.01)
    plain = GoalSampler(frames, seed=0, actor_goals=GoalConfig())
    state = plain.rng.bit_generator.state
    batch = {"observations": coords.copy()}
    plain.augment(batch, ["observations"])
    np.testing.assert_array_equal(batch["observations"], coords)
    assert plain.rng.bit_generator.state == state


def test_frame_stacking_repeats_the_first_frame_of_an_episode(frames):
    sampler = GoalSampler(frames, seed=0, actor_goals=GoalConfig(), frame_stack=3)
    start = int(frames.episode_starts[1])
    stacked = sampler.frames(np.array([start, start + 1, start + 5]))
    obs = np.asarray(frames.observations)
    assert stacked.shape == (3, 16, 16, 9)
    np.testing.assert_array_equal(stacked[0], np.concatenate([obs[start]] * 3, -1))
    np.testing.assert_array_equal(stacked[1], np.concatenate([obs[start], obs[start], obs[start + 1]], -1))
    np.testing.assert_array_equal(stacked[2], np.concatenate([obs[start + 3], obs[start + 4], obs[start + 5]], -1))
    windows = WindowSampler(frames, window=4, seed=0, frame_stack=2, need_actions=False).sample(3)
    assert windows["observations"].shape == (3, 4, 16, 16, 6) and windows["goals"].shape == (3, 16, 16, 6)


def _pixel_overrides(name):
    return [*SPECS[name].tiny, "encoder=impala_debug", "p_aug=0.5"]


STATE_ONLY = {"lapo"}  # its forward model predicts the next state vector (docs/ACTIONFREE.md)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in STATE_ONLY])
def test_every_method_learns_from_frames_and_resumes_bit_identically(name, tmp_path):
    """Each method takes frames through its config: a batch trains every network (the encoders
    included), acting gives actions of the right shape, and a killed run resumes bit for bit."""
    data = point_frames_dataset(tmp_path / "frames.npz")
    dataset = Dataset.load(data)
    cls = get_method(name)
    torch.manual_seed(0)
    method = cls(apply_overrides(cls.Config(), _pixel_overrides(name)), dataset.obs_shape, 2)
    convs = [n for n, p in method.named_parameters() if ".stacks." in n]
    assert convs, "no image encoder was built"
    before = {n: p.detach().clone() for n, p in method.named_parameters()}
    batch = to_tensors(method.make_sampler(dataset, seed=0).sample(method.cfg.batch_size), "cpu")
    assert batch["observations"].dtype == torch.uint8   # frames stay bytes until the encoder
    method.update(batch)
    moved = [n for n in convs if not torch.equal(before[n], method.state_dict()[n])]
    assert moved, "the encoders did not train"
    obs = np.array(dataset.observations[:3])
    policy = method.make_policy(temperature=0.0, seed=0)
    assert policy.act(obs, obs[::-1].copy()).shape == (3, 2)
    assert_resume_matches_uninterrupted(name, tmp_path, _pixel_overrides(name), steps=4, every=2, data=data)


@pytest.mark.parametrize("name", sorted(STATE_ONLY))
def test_state_only_methods_refuse_frames_with_one_line(name, frames):
    cls = get_method(name)
    with pytest.raises(UserError, match="state vectors.*autodidact label"):
        cls(apply_overrides(cls.Config(), _pixel_overrides(name)), frames.obs_shape, 2)


def test_frames_without_an_image_encoder_fail_with_one_line(frames, tmp_path):
    cls = get_method("gcbc")
    with pytest.raises(UserError, match=r"frames \[16, 16, 3\].*--set encoder=impala_small"):
        cls(cls.Config(), frames.obs_shape, 2)
    with pytest.raises(ConfigError, match="encoder.*state vectors"):
        cls(apply_overrides(cls.Config(), ["encoder=impala_small"]), (5,), 2)
    with pytest.raises(ConfigError, match="encoder.*must be one of"):
        cls(apply_overrides(cls.Config(), ["encoder=resnet"]), frames.obs_shape, 2)
    states = Dataset.load(point_play_dataset(tmp_path / "states.npz", episodes=2))
    with pytest.raises(UserError, match="p_aug shifts frames"):
        GoalSampler(states, seed=0, actor_goals=GoalConfig(), p_aug=0.5)


def test_visual_datasets_get_ogbenchs_published_visual_row():
    assert preset_for("visual-cube-single-play-v0", "gcbc") == {"encoder": "impala_small", "batch_size": 256,
                                                                 "p_aug": 0.5}
    hiql = preset_for("data/visual-scene-play-v0-val.npz", "hiql")
    assert hiql["low_actor_rep_grad"] is True and hiql["subgoal_steps"] == 10 and hiql["encoder"] == "impala_small"
    assert preset_for("visual-puzzle-3x3-play-v0", "crl")["alpha"] == 3.0


def test_stacked_policies_see_the_last_frames_of_their_own_episode():
    """The evaluator's policy for a frame_stack method: each row's last k frames (its episode's
    first frame repeated at the start), the goal repeated k times, rows restarted independently."""
    from autodidact.methods.base import FrameStackPolicy

    seen = []

    class Record:
        def act(self, obs, goals):
            seen.append((obs.copy(), goals.copy()))
            return np.zeros((len(obs), 2))

    policy = FrameStackPolicy(Record(), 3)
    frame = lambda v: np.full((2, 4, 4, 1), v, np.uint8)  # noqa: E731  (two rows, one value each)
    policy.reset(np.array([True, True]))
    for t in range(3):
        policy.act(frame(t), frame(9))
    policy.reset(np.array([False, True]))
    policy.act(frame(3), frame(9))
    channels = lambda obs, row: obs[row, 0, 0].tolist()  # noqa: E731
    assert channels(seen[0][0], 0) == [0, 0, 0]
    assert channels(seen[2][0], 0) == [0, 1, 2]
    assert channels(seen[3][0], 0) == [1, 2, 3] and channels(seen[3][0], 1) == [3, 3, 3]
    assert seen[3][1].shape == (2, 4, 4, 3)
    gcbc = get_method("gcbc")
    method = gcbc(apply_overrides(gcbc.Config(), ["encoder=impala_debug", "frame_stack=3"]), (16, 16, 3), 2)
    assert method.obs_shape == (16, 16, 9)
    assert method.policy().act(np.zeros((2, 16, 16, 3), np.uint8), np.zeros((2, 16, 16, 3), np.uint8)).shape == (2, 2)


@pytest.mark.slow
def test_a_frame_policy_is_evaluated_on_a_visual_env_with_goal_frames_and_video(tmp_path):
    """The evaluator on visual-cube-single-v0: observations and goals are 64x64 frames (the goal
    rendered from the task), a stacked-frame policy runs batched, and the video is written."""
    from autodidact.workflows.evaluate import evaluate

    gcbc = get_method("gcbc")
    torch.manual_seed(0)
    method = gcbc(apply_overrides(gcbc.Config(), ["encoder=impala_debug", "frame_stack=2"]), (64, 64, 3), 5)
    seen = []
    inner = method.policy()

    class Spy:
        def reset(self, mask):
            inner.reset(mask)

        def act(self, obs, goals):
            seen.append((obs.shape, obs.dtype, goals.shape))
            return inner.act(obs, goals)

    result = evaluate("visual-cube-single-v0", Spy(), episodes_per_task=1, tasks=[1], num_envs=1,
                      max_episode_steps=6, video_dir=tmp_path / "videos", video_episodes=1, progress=False)
    assert seen[0] == ((1, 64, 64, 3), np.uint8, (1, 64, 64, 3))
    assert list((tmp_path / "videos").iterdir())
    assert result is not None
