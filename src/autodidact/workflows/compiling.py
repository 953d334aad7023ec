"""`--compile on`: the training loss through `torch.compile`.

Compiling fuses the elementwise work between the matmuls (activations and their derivatives, bias
gradients, the loss terms) into generated kernels. Only `method.loss` is compiled, forward and
backward; the optimizer step, the gradient all-reduce under torchrun and the target-network
updates stay eager. Random draws inside the loss (HILP's skills, BESO's noise levels) keep coming
from torch's own generator (`fallback_random`), so a compiled run resumes as exactly as an eager
one. Compilation happens once, on the first batch, before training starts; the trial step's
effects are undone. If compilation fails, training continues uncompiled with one log line saying
why.
"""

import copy

import torch

MODES = ("on", "off")


def compile_loss(method, batch, context, log):
    """Swap `method.loss` for its compiled form, compiled by one trial update on `batch` (inside
    `context()`, the run's autocast) whose effects are undone. Returns whether it compiled."""
    import torch._inductor.config as inductor_config
    inductor_config.fallback_random = True
    eager_loss = method.loss
    method.loss = torch.compile(eager_loss)
    optimizers = method.optimizers()
    saved = (copy.deepcopy(method.state_dict()), {k: copy.deepcopy(o.state_dict()) for k, o in optimizers.items()},
             torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    try:
        with context():
            method.update(batch)
        return True
    except Exception as e:  # noqa: BLE001 -- any compiler failure: train uncompiled
        first = (str(e).strip().splitlines() or [""])[0][:200]
        log(f"torch.compile failed ({type(e).__name__}: {first}); training without compiling")
        del method.loss  # the instance attribute: back to the class's eager loss
        return False
    finally:
        state, optimizer_states, rng, cuda_rng = saved
        method.load_state_dict(state)
        for k, o in optimizers.items():
            o.load_state_dict(optimizer_states[k])
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
