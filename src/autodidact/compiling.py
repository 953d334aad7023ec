"""`--compile`: run the training update through `torch.compile` where it was measured to pay.

Compiling fuses the elementwise work between the matmuls (GELU and its derivative, bias
gradients, the loss) into generated C++ kernels, and lets the dense layers' weight gradients use
oneDNN as well (cpu_matmul.py). Whether that pays depends on the method; measured at the
published size on CPU, float32, alternating eager and compiled updates in one process
(docs/BENCHMARKS.md): GCBC gains, while GCIVL, GCIQL, CRL and HIQL are no faster compiled and QRL
is slower. So the three modes are:

- `auto` (default): compile only methods that declare `compile_pays` (measured faster compiled),
  on a CPU with AVX-512, in float32, with a layer of at least `AUTO_MIN_MACS` multiply-adds per
  update, and where a C++ compiler exists. GCBC's eager / compiled time per update, alternating in
  one process (`scripts/bench_compile.py`), on an AVX-512 CPU: 1.00 at batch 256 with 256-wide
  layers (2^24 multiply-adds per layer, the demo's size), 1.04 at batch 1024 and width 256 (2^26),
  1.03 at batch 512 and width 512 (2^27), 1.19 at the published batch 1024 and width 512 (2^28).
  On an AVX2-only CPU, 0.99 at the published size: inductor's AVX2 GELU kernels are slower than
  ATen's (forward 1.25 against 0.78 ms, backward 1.88 against 1.09 ms per 1024x512 block), and
  MKL's weight gradient beats oneDNN's there. On an Intel Xeon with AVX-512, where the dense
  layers stay on MKL (cpu_matmul.py), GCBC's compiled update was 1% slower than its eager one with
  MKL layers and 9% slower with oneDNN layers: so auto also needs the oneDNN layers;
- `on`: compile any method on any device;
- `off`: never.

The optimizer step (with the gradient all-reduce under torchrun) and the target-network updates
stay eager; everything else in `update` is compiled. Compilation happens once, on the first batch,
before training starts; the method's weights, optimizer state and RNG are restored afterwards, so
that trial update leaves no trace. If compilation fails, training continues uncompiled with one
log line saying why.
"""

import copy
import functools
import os
import shutil

import torch

from autodidact import cpu_matmul
from autodidact.errors import UserError

MODES = ("auto", "on", "off")
AUTO_MIN_MACS = 1 << 26   # module note
_EAGER = []


def eager(fn):
    """Decorator: inside a compiled update, `fn` runs uncompiled (the compiled code calls out to
    it). Marking it with `torch.compiler.disable` directly would import torch's compiler (~1.7 s)
    whenever autodidact's networks are imported; `compiled_update` marks these only when it
    compiles something."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if wrapper.disabled is not None and torch.compiler.is_compiling():
            return wrapper.disabled(*args, **kwargs)
        return fn(*args, **kwargs)

    wrapper.disabled = None
    _EAGER.append(wrapper)
    return wrapper


def _mark_eager_functions():
    for wrapper in _EAGER:
        if wrapper.disabled is None:
            wrapper.disabled = torch.compiler.disable(wrapper.__wrapped__)


def _cxx_compiler():
    return shutil.which(os.environ.get("CXX", "g++")) or shutil.which("clang++")


def _cpu_isa():
    return torch.backends.cpu.get_cpu_capability()   # "AVX512", "AVX2", ...


def _has_large_layers(method):
    bs = getattr(method.cfg, "batch_size", 0)
    return any(m.in_features * m.out_features * bs >= AUTO_MIN_MACS
               for m in method.modules() if isinstance(m, torch.nn.Linear))


def decide(mode, method, device, precision):
    """(compile?, reason) for a run of `method` on `device` at `precision`."""
    if mode not in MODES:
        raise UserError(f"--compile must be one of {', '.join(MODES)}, got '{mode}'")
    if mode != "auto":
        return mode == "on", f"--compile {mode}"
    device = torch.device(device)
    if not getattr(method, "compile_pays", False):
        return False, f"auto: {method.name} was measured no faster compiled"
    if device.type != "cpu" or precision != "float32":
        return False, "auto: compiling was measured on CPU in float32 only"
    if not cpu_matmul.active():
        return False, f"auto: compiling was measured to pay only with oneDNN layers (here: {cpu_matmul.kernel()})"
    if not _has_large_layers(method):
        return False, "auto: layers too small to gain from compiling"
    if "AVX512" not in (isa := _cpu_isa()):
        return False, f"auto: compiling was measured to pay only with AVX-512 (this CPU: {isa})"
    if _cxx_compiler() is None:
        return False, "auto: no C++ compiler found (set CXX)"
    return True, f"auto: {method.name} on CPU, float32"


def compiled_update(method, batch, context, log):
    """A compiled `method.update`, compiled by one trial call on `batch` (inside `context()`, the
    run's autocast) whose effects are undone; `method.update` itself if compiling fails."""
    cpu_matmul.active()  # its one-time check cannot run inside a traced function
    _mark_eager_functions()
    fn = torch.compile(method.update)
    optimizers = method.optimizers()
    saved = (copy.deepcopy(method.state_dict()),
             {k: copy.deepcopy(o.state_dict()) for k, o in optimizers.items()},
             torch.get_rng_state(),
             torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    try:
        with context():
            fn(batch)
    except Exception as e:  # noqa: BLE001 -- any compiler failure: train uncompiled
        first = (str(e).strip().splitlines() or [""])[0][:200]
        log(f"torch.compile failed ({type(e).__name__}: {first}); training without compiling")
        fn = method.update
    finally:
        state, optimizer_states, rng, cuda_rng = saved
        method.load_state_dict(state)
        for k, o in optimizers.items():
            o.load_state_dict(optimizer_states[k])
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    return fn
