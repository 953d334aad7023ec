"""Every method started from a pretrained encoder (`train --encoder RUN [--freeze]`).

The encoder file is what `autodidact pretrain` writes (nn/representation.py): the weights of one
`make_encoder(encoder, obs_shape, 1, state_dims)`. Here the tests write such files themselves. What
holds for every method: every encoder it builds (target copies included) starts from the file's
weights; nothing reads observations around them; frozen, they stay bit-identical through training
and take no optimizer step; fine-tuned, the optimizer moves them. Mismatched files, and flags that
make no sense together, are one-line errors; a frozen run resumes bit-identically without the file.
"""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from autodidact import cli
from autodidact.core.config import apply_overrides
from autodidact.core.errors import UserError
from autodidact.data.dataset import Dataset
from autodidact.methods import METHODS, get_method
from autodidact.nn.encoders import Flat, ImpalaEncoder, StateEncoder, make_encoder
from autodidact.nn.representation import ENCODER_FILE, encoder_file
from autodidact.workflows import train as trainer
from autodidact.workflows.runs import load_run
from autodidact.workflows.runtime import to_tensors
from pointenv import point_frames_dataset, point_play_dataset, settings
from test_methods import SPECS

STATE_DIMS = (16, 16)


def write_encoder(directory, obs_shape, name=None, state_dims=STATE_DIMS, seed=0):
    """A pretrain run directory holding encoder.safetensors, as `autodidact pretrain` leaves it."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    encoder = make_encoder(name, tuple(obs_shape), 1, state_dims)
    for p in encoder.parameters():  # not an initialization any method would draw itself
        p.data.add_(torch.randn_like(p) * 0.1)
    tensors, meta = encoder_file(encoder, obs_shape, name, state_dims, objective="test")
    save_file(tensors, str(directory / ENCODER_FILE), metadata=meta)
    return directory


@pytest.fixture(scope="module")
def states(tmp_path_factory):
    d = tmp_path_factory.mktemp("encoder-init")
    return point_play_dataset(d / "point.npz", episodes=5), write_encoder(d / "pretrain", (2,))


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    d = tmp_path_factory.mktemp("encoder-init-frames")
    return (point_frames_dataset(d / "frames.npz", episodes=3, length=20),
            write_encoder(d / "pretrain", (16, 16, 3), "impala_debug", ()))


def _build(name, data, encoder_run, *extra, frozen=True):
    """A method configured as `train --encoder encoder_run [--freeze]` configures it, built and loaded."""
    cls = get_method(name)
    ds = Dataset.load(data)
    cfg = apply_overrides(cls.Config(), [*SPECS[name].tiny, *extra, f"pretrained_encoder={encoder_run}",
                                         f"freeze_encoder={frozen}"])
    cfg = apply_overrides(cfg, cls.pretrained_overrides(cfg, ds.obs_shape))
    torch.manual_seed(0)
    method = cls(cfg, ds.obs_shape, ds.action_dim)
    method.load_pretrained()
    return method, ds


def _batch(method, ds):
    return to_tensors(method.make_sampler(ds, seed=0).sample(method.cfg.batch_size), "cpu")


def _train(method, ds, steps=3):
    sampler = method.make_sampler(ds, seed=0)
    for _ in range(steps):
        info = method.update(to_tensors(sampler.sample(method.cfg.batch_size), "cpu"))
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in info.values())


def _optimized(method):
    return {id(p) for group in method.optimizer.param_groups for p in group["params"]}


def _tensors(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if hasattr(out, "data") and isinstance(out.data, torch.Tensor):  # a PackedSequence
        return [out.data]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return []


def _assert_reads_observations_only_through(method, encoders, obs_shape, batch):
    """Every observation-reading part is a pretrained encoder: no parameter-free flat reader is
    left outside them; with their outputs held constant, a batch whose observations and goals are
    NaN leaves every other network's output finite (no network reads them around the encoders),
    and actions no longer depend on the observations or goals."""
    inside = {id(m) for e in encoders for m in e.modules()}
    assert not [m for m in method.modules() if isinstance(m, Flat) and id(m) not in inside]
    hooks = [e.register_forward_hook(lambda mod, inp, out: torch.full_like(out, 0.5)) for e in encoders]
    read_raw = set()
    for name, module in method.named_modules():
        if id(module) not in inside and name:
            hooks.append(module.register_forward_hook(
                lambda mod, inp, out, name=name: read_raw.update(
                    [name] if any(t.is_floating_point() and torch.isnan(t).any() for t in _tensors(out)) else [])))
    try:
        poisoned = {k: (torch.full(v.shape, float("nan")) if any(w in k for w in ("observations", "goal", "target"))
                        else v) for k, v in batch.items()}
        method.loss(poisoned)
        assert not read_raw, sorted(read_raw)
        method.eval()
        acts = []
        scale, shift = (255.0, 0.0) if len(obs_shape) == 3 else (2.0, -1.0)  # frames, or states in [-1, 1]
        for seed in (1, 2):
            g = torch.Generator().manual_seed(seed)
            obs, goals = (torch.rand(4, *obs_shape, generator=g) * scale + shift for _ in range(2))
            acts.append(method.act(obs, goals, temperature=0.0, generator=torch.Generator().manual_seed(0)))
        assert torch.equal(acts[0], acts[1])
    finally:
        for h in hooks:
            h.remove()
        method.train()


@pytest.mark.parametrize("name", list(METHODS))
def test_frozen_pretrained_state_encoder_reaches_every_network_and_stays_bit_identical(name, states):
    data, run = states
    weights = load_file(str(run / ENCODER_FILE))
    method, ds = _build(name, data, run)
    encoders = method.pretrained_encoders()
    assert encoders and len(encoders) == sum(isinstance(m, StateEncoder) for m in method.modules())
    assert method.cfg.state_encoder_dims == STATE_DIMS
    assert method.cfg.pretrained_encoder == str((run / ENCODER_FILE).resolve())
    for e in encoders:
        assert e.state_dict().keys() == weights.keys()
        assert all(torch.equal(v, weights[k]) for k, v in e.state_dict().items())
        assert not any(p.requires_grad for p in e.parameters())
        assert not {id(p) for p in e.parameters()} & _optimized(method)
    _assert_reads_observations_only_through(method, encoders, ds.obs_shape, _batch(method, ds))
    _train(method, ds)
    for e in encoders:
        assert all(torch.equal(v, weights[k]) for k, v in e.state_dict().items()), name


@pytest.mark.parametrize("name", list(METHODS))
def test_fine_tuned_pretrained_state_encoder_starts_from_the_file_and_trains(name, states):
    data, run = states
    weights = load_file(str(run / ENCODER_FILE))
    method, ds = _build(name, data, run, "lr=1e-2", frozen=False)
    encoders = method.pretrained_encoders()
    for e in encoders:
        assert all(torch.equal(v, weights[k]) for k, v in e.state_dict().items())
    online = [e for e in encoders if all(p.requires_grad for p in e.parameters())]
    targets = [e for e in encoders if e not in online]  # Polyak / EMA copies, moved without gradient
    assert online and all({id(p) for p in e.parameters()} <= _optimized(method) for e in online)
    assert not any({id(p) for p in e.parameters()} & _optimized(method) for e in targets)
    _train(method, ds)
    moved = [e for e in online if any(not torch.equal(v, weights[k]) for k, v in e.state_dict().items())]
    assert moved, name


@pytest.mark.parametrize("name", ["gcbc", "hiql", "hilp"])
def test_frozen_pretrained_impala_encoder_stays_bit_identical(name, frames):
    data, run = frames
    weights = load_file(str(run / ENCODER_FILE))
    method, ds = _build(name, data, run, "batch_size=8")
    encoders = method.pretrained_encoders()
    assert method.cfg.encoder == "impala_debug"
    assert encoders and len(encoders) == sum(isinstance(m, ImpalaEncoder) for m in method.modules())
    _assert_reads_observations_only_through(method, encoders, ds.obs_shape, _batch(method, ds))
    _train(method, ds, steps=2)
    for e in encoders:
        assert all(torch.equal(v, weights[k]) for k, v in e.state_dict().items()), name


@pytest.mark.parametrize("name", ["gcbc", "lapo", "hilp"])
def test_state_encoder_dims_from_scratch_trains_an_mlp_encoder(name, states, tmp_path):
    data, _ = states
    run = trainer.new_run(settings(name, tmp_path, data, 3, overrides=(*SPECS[name].tiny, "state_encoder_dims=8",
                                                                       "lr=1e-2")), argv=["test"])
    run_cfg, method, _, _ = load_run(run)
    assert run_cfg["config"]["state_encoder_dims"] == [8] and run_cfg["config"]["pretrained_encoder"] is None
    encoders = [m for m in method.modules() if isinstance(m, StateEncoder)]
    assert encoders and not method.pretrained_encoders()
    if name == "hilp":  # an MLP encoder has weights, so phi's target averages them
        assert any(target is method.target_phi_encoder for target, _ in method.targets())
    torch.manual_seed(run_cfg["seed"])
    start = type(method)(method.cfg, tuple(run_cfg["obs_shape"]), run_cfg["action_dim"])
    before = [m for m in start.modules() if isinstance(m, StateEncoder)]
    assert any(not torch.equal(a, b) for e0, e1 in zip(before, encoders)
               for a, b in zip(e0.state_dict().values(), e1.state_dict().values()))


def test_train_encoder_flag_records_the_absolute_file_and_a_frozen_run_resumes_bit_identically_without_it(
        states, tmp_path, capsys, monkeypatch):
    data, run = states
    moved = tmp_path / "pretrain"
    shutil.copytree(run, moved)
    monkeypatch.chdir(tmp_path)
    tiny = [a for o in SPECS["hilp"].tiny for a in ("--set", o)]
    common = ["train", "--method", "hilp", "--dataset", data, "--eval-episodes", "0", "--no-progress",
              "--checkpoint-every", "5", *tiny, "--encoder", "pretrain", "--freeze"]
    assert cli.main([str(a) for a in [*common, "--out", "full", "--steps", "20"]]) == 0
    assert cli.main([str(a) for a in [*common, "--out", "part", "--steps", "10"]]) == 0
    capsys.readouterr()
    config = json.loads((tmp_path / "part" / "config.json").read_text())
    assert config["pretrained_encoder"] == str(moved.resolve() / ENCODER_FILE)
    assert config["freeze_encoder"] is True and config["state_encoder_dims"] == list(STATE_DIMS)
    # Resume from the checkpoint before the last (steps replayed after a restore), the file gone.
    shutil.rmtree(tmp_path / "part" / "checkpoints" / "step_00000010")
    (tmp_path / "part" / "checkpoints" / "latest.json").unlink()
    shutil.rmtree(moved)
    assert cli.main(["train", "--resume", "part", "--steps", "20", "--no-progress"]) == 0
    a, b = (load_file(str(tmp_path / r / "checkpoints" / "step_00000020" / "model.safetensors")) for r in ("full", "part"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    weights = load_file(str(run / ENCODER_FILE))
    _, trained, _, _ = load_run(tmp_path / "part")
    assert len(trained.pretrained_encoders()) == 6  # phi, its target, skill value, critic, its target, actor
    for e in trained.pretrained_encoders():
        assert all(torch.equal(v, weights[k]) for k, v in e.state_dict().items())


def _cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    _, err = capsys.readouterr()
    return code, err.strip()


def _one_line(code, err, *words):
    assert code == 2 and "\n" not in err and err.startswith("autodidact: error:"), err
    assert "Traceback" not in err
    for w in words:
        assert w in err, (w, err)


def _train_args(tmp_path, data, method="gcbc", *extra):
    return ["train", "--method", method, "--dataset", data, "--out", tmp_path / "run", "--steps", "2",
            "--eval-episodes", "0", "--no-progress", "--set", "batch_size=8", *extra]


def test_encoder_mismatches_and_flag_misuse_are_one_line_errors(states, frames, tmp_path, capsys):
    data, run = states
    frame_data, frame_run = frames
    other = write_encoder(tmp_path / "three", (3,))
    _one_line(*_cli(capsys, *_train_args(tmp_path, data, "gcbc", "--freeze")), "--freeze", "--encoder")
    _one_line(*_cli(capsys, *_train_args(tmp_path, data, "gcbc", "--set", "freeze_encoder=true")),
              "freeze_encoder", "pretrained_encoder")
    # observation shape: a state encoder of 3-vectors for 2-vectors
    _one_line(*_cli(capsys, *_train_args(tmp_path, data, "gcbc", "--encoder", other)), str(other), "[3]", "[2]")
    # modality, both ways
    _one_line(*_cli(capsys, *_train_args(tmp_path, data, "gcbc", "--encoder", frame_run)), "frame encoder",
              "state vectors")
    _one_line(*_cli(capsys, *_train_args(tmp_path, frame_data, "gcbc", "--encoder", run)), "state encoder",
              "frames")
    # frame size: an encoder of 32x32 frames for 16x16 ones
    big = write_encoder(tmp_path / "big", (32, 32, 3), "impala_debug", ())
    _one_line(*_cli(capsys, *_train_args(tmp_path, frame_data, "gcbc", "--encoder", big)), "[32, 32, 3]", "[16, 16, 3]")
    # frame_stack: the file reads 3 channels, two stacked frames are 6
    _one_line(*_cli(capsys, *_train_args(tmp_path, frame_data, "gcbc", "--encoder", frame_run, "--set",
                                         "frame_stack=2")), "3 channels", "frame_stack")
    # a user-set encoder that is not the file's
    _one_line(*_cli(capsys, *_train_args(tmp_path, frame_data, "gcbc", "--encoder", frame_run, "--set",
                                         "encoder=impala_small")), "impala_debug", "encoder=impala_small")
    _one_line(*_cli(capsys, *_train_args(tmp_path, data, "gcbc", "--encoder", run, "--set",
                                         "state_encoder_dims=8")), "state_encoder_dims=8")
    # not a pretrain run, not an encoder file
    _one_line(*_cli(capsys, *_train_args(tmp_path, data, "gcbc", "--encoder", tmp_path)), ENCODER_FILE)
    _one_line(*_cli(capsys, *_train_args(tmp_path, data, "gcbc", "--encoder", data)), "not a")
    # GCIVL's ICVF representation and a pretrained encoder both start its value encoders
    _one_line(*_cli(capsys, *_train_args(tmp_path, data, "gcivl", "--encoder", run, "--set", f"icvf={data}")),
              "icvf", "pretrained_encoder")
    assert not (tmp_path / "run").exists()  # every refusal comes before the run directory


def test_resume_refuses_encoder_flags(states, tmp_path, capsys):
    data, run = states
    assert cli.main([str(a) for a in _train_args(tmp_path, data, "gcbc", "--encoder", run)]) == 0
    capsys.readouterr()
    _one_line(*_cli(capsys, "train", "--resume", tmp_path / "run", "--encoder", run), "--encoder")


def test_state_encoder_dims_on_frames_is_a_config_error(frames):
    data, _ = frames
    ds = Dataset.load(data)
    cfg = apply_overrides(get_method("gcbc").Config(), ["encoder=impala_debug", "state_encoder_dims=8"])
    with pytest.raises(UserError, match="state_encoder_dims"):
        get_method("gcbc")(cfg, ds.obs_shape, ds.action_dim)


def test_a_pretrained_encoder_without_its_architecture_in_the_config_is_refused(states):
    """Built directly (not through `train`), the config must carry the file's architecture, which
    `pretrained_overrides` supplies."""
    _, run = states
    cfg = apply_overrides(get_method("gcbc").Config(), [f"pretrained_encoder={run}"])
    with pytest.raises(UserError, match="state_encoder_dims.*pretrained_overrides"):
        get_method("gcbc")(cfg, (2,), 2)


def test_pretrained_encoder_replaces_a_visual_presets_encoder(frames, tmp_path):
    """OGBench's visual presets set encoder=impala_small; the file's architecture wins over a
    preset (only a user's own --set encoder conflicts)."""
    data, run = frames
    named = tmp_path / "visual-cube-single-play-v0.npz"
    shutil.copy(data, named)
    out = trainer.new_run(settings("gcbc", tmp_path, named, 1, overrides=("batch_size=4", f"pretrained_encoder={run}")),
                          argv=["test"])
    assert json.loads((out / "config.json").read_text())["encoder"] == "impala_debug"
    assert "encoder" not in json.loads((out / "run.json").read_text())["preset"]
