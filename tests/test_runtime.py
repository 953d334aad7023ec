"""Training flushes denormal floats to zero on every thread torch computes on, and only while it
trains (autodidact/workflows/runtime.py)."""

import subprocess
import sys

import pytest

# In a child process: the OpenMP pool must already exist when the flags are set (as it does once a
# program has run any parallel torch op), which is the case torch.set_flush_denormal alone misses.
CHILD = r"""
import torch
torch.set_num_threads(2)
x = torch.full((1 << 22,), 1e-20)
a = torch.full((256, 256), 1e-20)
kept = lambda: int((x * x != 0).sum())  # products of 1e-40: denormal, or 0 where flushed
assert kept() == x.numel()  # the pool now exists; denormals are kept by default
if not torch.set_flush_denormal(True):
    print("unsupported"); raise SystemExit
main_thread_only = kept()
torch.set_flush_denormal(False)
from autodidact.workflows.runtime import denormals_flushed, main_thread_flushes
with denormals_flushed():
    inside, matmul_inside, flag_inside = kept(), int((a @ a != 0).sum()), main_thread_flushes()
    with denormals_flushed(False):
        nested_off = kept()
    back_on = kept()
print(main_thread_only, inside, matmul_inside, flag_inside, nested_off, back_on, kept(), main_thread_flushes())
"""


def test_denormals_flushed_on_every_thread_and_restored():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout.split()
    if out == ["unsupported"]:
        pytest.skip("this CPU has no flush-to-zero mode torch can set")
    main_thread_only, inside, matmul_inside, flag_inside, nested_off, back_on, after, flag_after = out
    n = str(1 << 22)
    print(f"torch.set_flush_denormal alone left {main_thread_only} of {n} denormal")
    assert (inside, matmul_inside, flag_inside) == ("0", "0", "True")  # every thread flushes
    assert (nested_off, back_on) == (n, "0")
    assert (after, flag_after) == (n, "False")  # as before


def test_updates_run_flushed_and_training_leaves_the_process_as_it_was(tmp_path, monkeypatch):
    import torch

    from autodidact.workflows import train as trainer
    from autodidact.workflows.runtime import main_thread_flushes
    from pointenv import point_play_dataset

    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU has no flush-to-zero mode torch can set")
    seen, build = [], trainer.build_method

    def recording(run_cfg):
        method = build(run_cfg)
        update = method.update
        method.update = lambda batch: seen.append(main_thread_flushes()) or update(batch)
        return method

    monkeypatch.setattr(trainer, "build_method", recording)
    data = point_play_dataset(tmp_path / "point.npz")
    trainer.new_run(trainer.TrainSettings(method="gcbc", dataset=str(data), out=str(tmp_path / "run"), steps=20,
                                          eval_episodes=0, overrides=("batch_size=64", "actor_hidden_dims=64,64"),
                                          progress=False), argv=["test"])
    assert seen == [True] * 20
    assert not main_thread_flushes()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.parametrize("env, applied", [({}, "True"), ({"MALLOC_TRIM_THRESHOLD_": "131072"}, "False")])
def test_freed_memory_setting_leaves_a_users_glibc_choice_alone(env, applied):
    import os
    code = "from autodidact.workflows.runtime import keep_freed_memory; print(keep_freed_memory())"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == applied
