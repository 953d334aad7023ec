"""CLI commands for tests without a fresh interpreter each: on a 2-core Intel CPU a fresh
`python -m autodidact train` spent 8 seconds importing torch and torch._dynamo (which creating a
torch optimizer imports) before its first step. Tests that need the real entry point still run
some commands as `python -m autodidact` processes."""

import json
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def methods_listing(capsys, section=0):
    """What `autodidact methods` prints, through the CLI's entry point in this process
    (test_cli.py::test_methods runs it as a real process): the methods (section 0), or the encoder
    objectives after them (section 1, without its heading)."""
    from autodidact import cli
    assert cli.main(["methods"]) == 0
    part = capsys.readouterr().out.split("\n\n")[section]
    return part.split("\n", 1)[1] if section else part


class ForkedCLI:
    """One CLI command in a process forked from a server that has already imported torch,
    torch._dynamo and autodidact (multiprocessing's forkserver), with the parts of Popen the kill
    tests use: poll, send_signal, communicate, returncode, stderr (stdout and stderr together).

    A forked `train` reaches its first checkpoint in 0.6 s. The server has run no torch operation,
    so its children start without OpenMP threads (libgomp hangs in a child forked after its parent
    has used them). Children run with one thread, OMP_NUM_THREADS=1 and MUJOCO_GL=egl."""

    _ctx = None

    def __init__(self, logdir, *args):
        if ForkedCLI._ctx is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["torch", "torch._dynamo", "autodidact.cli", "autodidact.workflows.train"])
            saved = dict(os.environ)
            os.environ.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MUJOCO_GL="egl")  # the server's: every child's
            try:
                multiprocessing.forkserver.ensure_running()
            finally:
                os.environ.clear()
                os.environ.update(saved)
            ForkedCLI._ctx = ctx
        self._log = Path(logdir) / f".forked_{os.getpid()}_{time.monotonic_ns()}.log"
        self._proc = ForkedCLI._ctx.Process(target=_cli_in_child, args=(list(args), str(self._log)))
        self._proc.start()
        self.returncode = self.stderr = None

    def poll(self):
        return self._proc.exitcode

    def send_signal(self, sig):
        os.kill(self._proc.pid, sig)

    def communicate(self, timeout=None):
        self._proc.join(timeout)
        if self._proc.exitcode is None:
            raise subprocess.TimeoutExpired(self._proc.name, timeout)
        self.returncode = self._proc.exitcode
        self.stderr = self._log.read_text() if self._log.exists() else ""
        self._log.unlink(missing_ok=True)
        return "", self.stderr


def _cli_in_child(argv, log):
    """The body of a forked CLI command: output to `log`, one thread, the CLI's own exit code."""
    import torch

    from autodidact import cli
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = sys.stderr = open(1, "w", buffering=1, closefd=False)
    torch.set_num_threads(1)
    sys.exit(cli.main(argv))


def kill_after_checkpoint(tmp_path, run_dir, step, *args):
    """Start the CLI command `args` writing `run_dir`, SIGKILL it once its newest checkpoint is at
    `step` or later, and return the step of the checkpoint it left (a resume starts there)."""
    victim = ForkedCLI(tmp_path, *args)
    latest = run_dir / "checkpoints" / "latest.json"
    deadline = time.time() + 120
    while time.time() < deadline and victim.poll() is None:
        if latest.exists() and json.loads(latest.read_text())["step"] >= step:
            break
        time.sleep(0.01)
    assert victim.poll() is None, "run finished before it could be killed; make it longer"
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    return json.loads(latest.read_text())["step"]
