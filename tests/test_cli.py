"""Every CLI command end to end on real OGBench data at a tiny budget."""

import json
import os
import subprocess
import sys

import numpy as np
import ogbench
import pytest

from clihelp import methods_listing

pytestmark = pytest.mark.slow
NAME = "pointmaze-medium-navigate-v0"


def run(*args, check=True, timeout=300, threads=None):
    env = {**os.environ, "MUJOCO_GL": "egl"}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-m", "autodidact", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    run("collect", NAME, "--out", str(d / "data"), "--episodes", "4", "--no-progress")
    return d


def test_collect_then_ogbench_reads_it(workdir):
    path = workdir / "data" / f"{NAME}.npz"
    assert (workdir / "data" / f"{NAME}-val.npz").exists()
    ds = ogbench.load_dataset(str(path))
    # OGBench's navigate episodes: 1001 steps each, 1000 transitions in the regular layout.
    assert ds["observations"].shape == (4 * 1000, 2) and ds["actions"].shape == (4 * 1000, 2)
    assert ds["terminals"].sum() == 4


def test_info(workdir):
    out = run("info", str(workdir / "data" / f"{NAME}.npz")).stdout
    assert "episodes      4" in out and "pointmaze-medium-v0" in out and "coverage" in out


def test_methods():
    out, objectives = run("methods").stdout.split("\n\n")
    names = [line.split()[0] for line in out.splitlines()]
    assert [line.split()[0] for line in objectives.splitlines()[1:]] == ["spr", "dynamo", "byol", "barlow", "vicreg",
                                                                         "idm"]
    # In registry order (the library's own order: OGBench's methods first), not sorted.
    assert names == ["gcbc", "gcivl", "gciql", "qrl", "crl", "hiql", "hilp", "play-lmp", "play-gcbc", "beso", "lapo",
                     "skill-vae"]
    assert "actor_hidden_dims" in run("methods", "--config", "gcbc").stdout


def test_train_resume_eval_video(workdir):
    data = str(workdir / "data" / f"{NAME}.npz")
    rd = workdir / "run"
    run("train", "--method", "gcbc", "--dataset", data, "--out", str(rd), "--steps", "20", "--eval-every", "20",
        "--eval-episodes", "1", "--no-progress", "--set", "batch_size=32", "--set", "actor_hidden_dims=32,32")
    rows = (rd / "eval.csv").read_text().splitlines()
    assert rows[0].startswith("step,evaluation/overall_success,evaluation/task1_success") and len(rows) == 2
    # Extend the finished run by 10 steps.
    run("train", "--resume", str(rd), "--steps", "30", "--eval-episodes", "0", "--no-progress")
    assert json.loads((rd / "checkpoints" / "latest.json").read_text())["step"] == 30
    proc = run("eval", str(rd), "--episodes", "1", "--video", "--max-steps", "4", "--no-progress")
    assert "overall" in proc.stdout and "video:" in proc.stdout
    result = json.loads((rd / "eval" / "final.json").read_text())
    assert result["checkpoint_step"] == 30 and len(result["tasks"]) == 5
    assert 0.0 <= result["overall_success"] <= 1.0
    assert list((rd / "videos").glob("*.mp4"))


def test_user_errors_are_one_line(workdir, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    for args in (["info", str(bad)], ["train", "--method", "gcbc", "--dataset", str(bad), "--out", str(tmp_path / "r")],
                 ["collect", "nope-v0", "--out", str(tmp_path)], ["eval", str(tmp_path / "missing")],
                 ["train", "--resume", str(tmp_path / "missing")], ["train", "--steps", "0"]):
        proc = run(*args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("autodidact: error:"), (args, proc.stderr)
    assert not (tmp_path / "r").exists()


def test_official_layouts_train(workdir, tmp_path):
    """Files as OGBench's own loader returns them (regular and compact) train with GCBC."""
    src = str(workdir / "data" / f"{NAME}.npz")
    for compact in (False, True):
        path = tmp_path / f"{NAME}.npz"
        np.savez(path, **ogbench.load_dataset(src, compact_dataset=compact))
        rd = tmp_path / f"run-{compact}"
        run("train", "--method", "gcbc", "--dataset", str(path), "--out", str(rd), "--steps", "5",
            "--eval-episodes", "0", "--no-progress", "--set", "batch_size=16", "--set", "actor_hidden_dims=16")
        assert json.loads((rd / "run.json").read_text())["env"] == "pointmaze-medium-v0"


def test_convert_uncompressed_is_memory_mapped(workdir, tmp_path):
    from autodidact.data.dataset import load
    src = workdir / "data" / f"{NAME}.npz"
    before = src.read_bytes()
    dst = tmp_path / f"{NAME}.npz"
    run("convert", str(src), str(dst), "--uncompressed")
    assert src.read_bytes() == before  # input untouched
    a, b = load(src), load(dst)
    assert isinstance(b.observations, np.memmap) and np.array_equal(a.observations, b.observations)
    for layout in ("compact", "regular"):
        out = tmp_path / f"{layout}.npz"
        run("convert", str(src), str(out), "--layout", layout)
        assert np.array_equal(load(out).observations, a.observations)
    assert run("convert", str(src), str(src), check=False).returncode == 2


def test_bench_reports_speed_as_table_and_json(workdir, tmp_path):
    out = tmp_path / "bench.json"
    proc = run("bench", "--method", "gcbc", "--dataset", str(workdir / "data" / f"{NAME}.npz"), "--steps", "3",
               "--warmup", "1", "--set", "batch_size=16", "--set", "actor_hidden_dims=16", "--json", str(out))
    assert "training steps/s" in proc.stdout and "of this machine's" in proc.stdout
    result = json.loads(out.read_text())
    assert result["method"] == "gcbc" and result["steps_per_s"] > 0 and result["sampler_batches_per_s"] > 0
    assert result["update_gflop"] > 0 and result["peak_memory_mb"] > 0
    assert result["precision"] == "float32" and isinstance(result["native_bf16"], bool)


TINY = {  # per method: the smallest networks, so every method's CLI path runs in seconds
    "gcbc": ["actor_hidden_dims=16,16"],
    "gcivl": ["actor_hidden_dims=16,16", "value_hidden_dims=16,16"],
    "gciql": ["actor_hidden_dims=16,16", "value_hidden_dims=16,16"],
    "qrl": ["actor_hidden_dims=16,16", "value_hidden_dims=16,16"],
    "crl": ["actor_hidden_dims=16,16", "value_hidden_dims=16,16"],
    "hiql": ["actor_hidden_dims=16,16", "value_hidden_dims=16,16"],
    "hilp": ["actor_hidden_dims=16,16", "value_hidden_dims=16,16"],
    "beso": ["hidden_dims=16,16"],
    "play-gcbc": ["actor_hidden_dims=16,16", "window=8", "window_min=4"],
    "play-lmp": ["actor_hidden_dims=16,16", "window=8", "window_min=4", "latent_dim=4", "recognizer_hidden=8",
                 "recognizer_layers=1", "proposal_hidden_dims=16"],
    "lapo": ["actor_hidden_dims=16,16", "idm_hidden_dims=16", "fdm_hidden_dims=16", "decoder_hidden_dims=16"],
    "skill-vae": ["decoder_hidden_dims=16", "prior_hidden_dims=16", "recognizer_hidden=8"],
}


def test_every_method_trains_resumes_and_evaluates(workdir, capsys):
    """Every method through the CLI: train with a checkpoint, resume to more steps, evaluate; one
    method in bf16 and one evaluation with a perturbation on top.

    The commands go through `cli.main`, the entry point of `python -m autodidact` (the same parser,
    dispatch and error handling), in this process: thirty fresh processes spent two minutes
    importing torch on a 2-core CPU. The same commands as real processes, one after another:
    test_train_resume_eval_video here and the kill-and-resume tests in test_reliability.py. Each
    command must also leave this process as it found it (threads, grad mode, denormal flags), as
    a notebook calling the library would need."""
    import torch

    from autodidact import cli
    from autodidact.workflows.runtime import main_thread_flushes

    listed = [line.split()[0] for line in methods_listing(capsys).splitlines()]
    assert sorted(TINY) == sorted(listed), "a new method needs a tiny config here"
    data = str(workdir / "data" / f"{NAME}.npz")

    def state():
        return torch.get_num_threads(), torch.is_grad_enabled(), torch.get_default_dtype(), main_thread_flushes()

    def cli_main(*argv):
        before = state()
        rc = cli.main(list(argv))
        out, err = capsys.readouterr()
        assert rc == 0, (argv, err[-3000:])
        assert state() == before, (argv, before, state())
        return out

    for m, sets in TINY.items():
        rd = workdir / f"every_{m}"
        extra = ["--precision", "bf16"] if m == "gcivl" else []
        cli_main("train", "--method", m, "--dataset", data, "--out", str(rd), "--steps", "4", "--eval-episodes", "0",
                 "--no-progress", "--set", "batch_size=8", *[a for s in sets for a in ("--set", s)], *extra)
        cli_main("train", "--resume", str(rd), "--steps", "6", "--no-progress")
        assert json.loads((rd / "checkpoints" / "latest.json").read_text())["step"] == 6, m
        if m == "skill-vae":  # skills, not goal reaching: eval refuses in one line
            assert cli.main(["eval", str(rd), "--episodes", "1", "--no-progress"]) == 2
            assert "learns skills, not goal reaching" in capsys.readouterr().err
            continue
        perturb = ["--perturb", "agent@3"] if m == "play-lmp" else []
        out = cli_main("eval", str(rd), "--episodes", "1", "--max-steps", "8", "--no-progress", *perturb)
        result = json.loads((rd / "eval" / ("final_perturbed.json" if perturb else "final.json")).read_text())
        assert result["checkpoint_step"] == 6 and len(result["tasks"]) == 5, (m, out)
        if perturb:
            assert result["perturbation"]["perturbed"] == 1.0 and "recovered" in out


def test_collect_episode_length_flag(tmp_path):
    run("collect", NAME, "--out", str(tmp_path), "--episodes", "1", "--max-episode-steps", "30", "--no-progress")
    assert ogbench.load_dataset(str(tmp_path / f"{NAME}.npz"))["observations"].shape == (29, 2)
