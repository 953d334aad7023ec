"""`train --wandb`: Weights & Biases gets the scalars TensorBoard gets, offline without a network, and
a missing wandb is one line naming the extra."""

import subprocess
import sys
from pathlib import Path

import pytest

from autodidact import cli

DATASET = Path(__file__).parent / "artifacts" / "v0.1.0" / "pointmaze-medium-navigate-v0.npz"
TRAIN = ["train", "--method", "gcbc", "--dataset", str(DATASET), "--steps", "20", "--eval-episodes", "0",
         "--set", "batch_size=16", "--set", "actor_hidden_dims=16,16", "--no-progress", "--wandb"]


@pytest.mark.slow
def test_wandb_offline_logs_the_training_scalars(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    for var, sub in (("WANDB_CONFIG_DIR", "config"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data")):
        monkeypatch.setenv(var, str(tmp_path / sub))  # nothing written outside tmp
    monkeypatch.setenv("WANDB_MODE", "offline")
    run = tmp_path / "run"
    assert cli.main([*TRAIN, "--out", str(run)]) == 0
    wandb.teardown()  # finish() can return before W&B's service has written the log; this waits
    logs = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(logs) == 1
    data = logs[0].read_bytes()
    run_id = (run / "wandb_id.txt").read_text().strip()
    assert logs[0].name == f"run-{run_id}.wandb"
    # The W&B log holds protobuf records with JSON-encoded values: every metric name and every
    # value of metrics.csv (Python's shortest float repr on both sides) is in it.
    header, *rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) >= 2
    for key in header.split(",")[1:]:
        assert key.encode() in data, key
    for row in rows:
        for text in row.split(",")[1:]:
            assert text.encode() in data, text


def test_missing_wandb_is_one_line(tmp_path):
    code = ("import sys; sys.modules['wandb'] = None\n"
            "from autodidact import cli\n"
            f"sys.exit(cli.main({[*TRAIN, '--out', str(tmp_path / 'run')]!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "pip install 'autodidact[wandb]'" in done.stderr
    assert not (tmp_path / "run").exists()
