"""The compiled GELU kernel (autodidact.native): same function and gradient as torch's, and a
clean fallback where it cannot be built."""

import os
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from autodidact import native
from autodidact.nn import MLP

needs_cc = pytest.mark.skipif(shutil.which(os.environ.get("CC") or "cc") is None, reason="no C compiler")


def _both(z, grad):
    """(output, input gradient) through autodidact's gelu and through torch's."""
    out = []
    for fn in (native.gelu, F.gelu):
        x = z.clone().requires_grad_(True)
        y = fn(x)
        y.backward(grad)
        out.append((y.detach(), x.grad))
    return out


@needs_cc
def test_kernel_builds_and_is_used_on_this_machine():
    assert native.kernel() is not None, native.status()
    assert native.status() == "native"
    x = torch.randn(64, 32, requires_grad=True)
    assert type(native.gelu(x).grad_fn).__name__ == "_GELUBackward"


@needs_cc
@pytest.mark.parametrize("shape", [(1,), (7,), (33, 5), (1024, 512), (2, 300, 129)])
@pytest.mark.parametrize("threads", [1, 2])
def test_matches_torch_gelu_and_its_gradient(shape, threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(1)
        z = torch.randn(*shape, generator=gen) * 3
        grad = torch.randn(*shape, generator=gen)
        (h, gz), (h_ref, gz_ref) = _both(z, grad)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(h, h_ref, rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(gz, gz_ref, rtol=1e-5, atol=4e-6)


@needs_cc
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (1024, 512), (40, 20000)])
@pytest.mark.parametrize("threads", [1, 2])
def test_bias_kernel_is_the_kernel_at_z_plus_bias(shape, threads):
    """The bias kernel (the fused network's hidden layers) gives exactly what adding first gives."""
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(*shape, generator=gen) * 3
    bias = torch.randn(shape[1], generator=gen)
    assert native.kernel() is not None
    h, d = native.gelu_and_derivative(z, threads=threads, bias=bias)
    h_ref, d_ref = native.gelu_and_derivative(z + bias, threads=threads)
    assert torch.equal(h, h_ref) and torch.equal(d, d_ref)


@needs_cc
def test_extremes_and_nan():
    z = torch.tensor([0.0, -0.0, 1e-38, -1e-38, 5.0, -5.0, 13.0, -13.0, 100.0, -100.0, 3e38, -3e38])
    (h, gz), _ = _both(z, torch.ones_like(z))
    # The reference in float64: torch's AVX-512 float32 GELU overflows to inf at 3e38 (it forms
    # x * (1 + erf) before halving), where the exact value, 3e38, is representable.
    h_ref, gz_ref = _both(z.double(), torch.ones_like(z.double()))[1]
    h_ref, gz_ref = h_ref.float(), gz_ref.float()
    torch.testing.assert_close(h, h_ref, rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(gz, gz_ref, rtol=1e-5, atol=2e-6)
    x = torch.tensor([1.0, float("nan"), -1.0], requires_grad=True)
    y = native.gelu(x)
    y.sum().backward()
    assert torch.isnan(y[1]) and torch.isnan(x.grad[1])
    assert torch.isfinite(y[[0, 2]]).all() and torch.isfinite(x.grad[[0, 2]]).all()


def test_torch_gelu_where_the_kernel_does_not_apply():
    x = torch.randn(16, 8)
    assert torch.equal(native.gelu(x), F.gelu(x))                      # no gradient needed
    with torch.no_grad():
        assert torch.equal(native.gelu(x.requires_grad_(True)), F.gelu(x))
    d = torch.randn(16, 8, dtype=torch.float64, requires_grad=True)
    assert type(native.gelu(d).grad_fn).__name__ == "GeluBackward0"    # not float32
    t = torch.randn(8, 16, requires_grad=True).t()
    assert type(native.gelu(t).grad_fn).__name__ == "GeluBackward0"    # not contiguous


@needs_cc
def test_mlp_trains_the_same_with_the_kernel_as_with_torch(monkeypatch):
    """A whole network: outputs and every parameter's gradient agree with torch's GELU."""
    torch.manual_seed(0)
    mlp = MLP(6, (64, 64), out_dim=3)
    ens = MLP(6, (64, 64), out_dim=1, layer_norm=True, ensemble=2)
    x = torch.randn(50, 6)
    results = {}
    for way in ("native", "torch"):
        if way == "torch":
            monkeypatch.setitem(native._state, "fn", None)
        grads = []
        for net in (mlp, ens):
            net.zero_grad(set_to_none=True)
            net(x).square().sum().backward()
            grads += [p.grad.clone() for p in net.parameters()]
        results[way] = grads
    for got, want in zip(results["native"], results["torch"]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@needs_cc
def test_one_openmp_runtime_in_the_process():
    """The kernel's OpenMP threads are torch's: no second libgomp is loaded."""
    assert native.kernel() is not None
    x = torch.randn(256, 512, requires_grad=True)  # enough for the threaded path
    native.gelu(x).sum().backward()
    with open("/proc/self/maps") as fh:
        gomps = {line.split()[-1] for line in fh if "libgomp" in line}
    assert len(gomps) == 1, gomps


def _in_subprocess(code, env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


@needs_cc
def test_built_once_into_the_cache_then_reused(tmp_path):
    log = tmp_path / "cc.log"
    cc = tmp_path / "cc"  # the system compiler, recording each call
    cc.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {shutil.which("cc")} "$@"\n')
    cc.chmod(0o755)
    env = {"AUTODIDACT_CACHE": str(tmp_path / "cache"), "CC": str(cc)}
    code = "from autodidact import native; print(native.status())"
    for _ in range(2):
        done = _in_subprocess(code, env)
        assert done.stdout.strip() == "native", done.stderr
    built = list((tmp_path / "cache").glob("autodidact-gelu-*.so"))
    assert len(built) == 1 and not list((tmp_path / "cache").glob(".build-*"))
    calls = log.read_text().splitlines()
    assert sum("-shared" in c for c in calls) == 1, calls  # the second process only asked the version


@needs_cc
def test_an_unwritable_cache_builds_in_the_temp_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    (tmp_path / "tmp").mkdir()
    env = {"AUTODIDACT_CACHE": str(blocker / "cache"), "TMPDIR": str(tmp_path / "tmp")}
    done = _in_subprocess("from autodidact import native; print(native.status())", env)
    assert done.stdout.strip() == "native", done.stderr
    assert len(list((tmp_path / "tmp").glob("autodidact-*/autodidact-gelu-*.so"))) == 1


def test_falls_back_to_torch_without_a_compiler_or_when_turned_off(tmp_path):
    code = ("import warnings, torch\n"
            "from autodidact import native\n"
            "from autodidact.nn import MLP\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    x = torch.randn(8, 4, requires_grad=True)\n"
            "    MLP(4, (16,), 2)(x).sum().backward()\n"
            "print(native.status()); print(len(w), type(x.grad).__name__)\n")
    no_cc = _in_subprocess(code, {"AUTODIDACT_CACHE": str(tmp_path), "CC": "/nonexistent/cc"})
    lines = no_cc.stdout.strip().splitlines()
    assert lines[0].startswith("torch (no C compiler"), no_cc.stderr
    assert lines[1] == "1 Tensor"  # one warning, and the network still trained
    off = _in_subprocess(code, {"AUTODIDACT_CACHE": str(tmp_path), "AUTODIDACT_NATIVE": "off"})
    assert off.stdout.strip().splitlines() == ["torch (AUTODIDACT_NATIVE=off)", "0 Tensor"], off.stderr
    assert not list(tmp_path.glob("*.so"))


@pytest.mark.parametrize("vendor,flags,width", [
    ("GenuineIntel", "flags\t: fpu avx2 avx512f avx512bw", 512),
    ("GenuineIntel", "flags\t: fpu avx2 fma", 256),
    ("AuthenticAMD", "flags\t: fpu avx2 avx512f avx512bw", 256),
    ("AuthenticAMD", "flags\t: fpu avx2", 256),
])
def test_vector_width_follows_the_cpu(vendor, flags, width, monkeypatch):
    from autodidact import cpu_matmul
    monkeypatch.setattr(cpu_matmul, "cpu_vendor", lambda: vendor)
    monkeypatch.setattr(native, "_cpu_flags", lambda: flags)
    assert native._vector_width() == width
