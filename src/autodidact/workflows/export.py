"""Export a run's policy as a file that runs without autodidact: ONNX or TorchScript.

The exported graph is what the method's `act` computes at temperature 0 (deterministic), with the
actions clipped to [-1, 1] as the evaluator clips them. Inputs are batched float32 tensors named
`observations` [B, *obs_shape] and then, by prompt:

- `goals` [B, *obs_shape] (`prompt="goal"`, every method but BESO and HILP's skills),
- `skills` [B, skill_dim] (`prompt="skill"`, HILP: a latent z, e.g. the one a reward prompt fits;
  the policy is pi(a | s, z)),
- BESO adds `noise` [B, chunk * action_dim]: its sampler starts from Gaussian noise, so the graph
  takes that draw as an input (standard normals) and is a pure function of its inputs.

The output `actions` is [B, action_dim]. Per-episode state that the evaluator keeps (Play-LMP
holding a plan for `replan_every` steps, BESO executing chunks open loop) is not part of `act` and
so not exported: the exported Play-LMP replans at every call and BESO returns the first action
of its chunk. The file carries the run's method, shapes and input names as metadata (ONNX
`metadata_props`; TorchScript's `_extra_files["autodidact.json"]`).
"""

import contextlib
import io
import json
import logging
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from autodidact.core.errors import UserError
from autodidact.core.io import atomic_path
from autodidact.workflows.runs import load_run

FORMATS = ("onnx", "torchscript")
PROMPTS = ("goal", "skill")
ONNX_OPSET = 18


class GoalActor(nn.Module):
    """(observations, goals) -> method.act at temperature 0, clipped."""

    def __init__(self, method):
        super().__init__()
        self.method = method

    def forward(self, observations, goals):
        return self.method.act(observations, goals, temperature=0.0).clamp(-1.0, 1.0)


class SkillActor(nn.Module):
    """(observations, skills) -> HILP's pi(a | s, z) at temperature 0, clipped."""

    def __init__(self, method):
        super().__init__()
        self.method = method

    def forward(self, observations, skills):
        return self.method.act_skill(observations, skills, temperature=0.0).clamp(-1.0, 1.0)


class NoiseActor(nn.Module):
    """(observations, goals, noise) -> BESO's first action of a chunk sampled from that noise."""

    def __init__(self, method):
        super().__init__()
        self.method = method

    def forward(self, observations, goals, noise):
        return self.method.sample_chunks(observations, goals, temperature=0.0, noise=noise)[:, 0].clamp(-1.0, 1.0)


def policy_module(method, prompt="goal"):
    """(the module to export, its input names) for `method` prompted by `prompt`."""
    if prompt not in PROMPTS:
        raise UserError(f"--prompt must be one of {', '.join(PROMPTS)}, got '{prompt}'")
    if prompt == "skill":
        if not hasattr(method, "act_skill"):
            raise UserError(f"method '{method.name}' has no latent skills; export it with --prompt goal")
        return SkillActor(method).eval(), ("observations", "skills")
    if method.name == "beso":
        return NoiseActor(method).eval(), ("observations", "goals", "noise")
    return GoalActor(method).eval(), ("observations", "goals")


def example_inputs(method, names, batch=4, seed=0):
    """A fixed batch of inputs for `names` (standard normals, unit skills), for tracing and checks."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"observations": method.obs_shape, "goals": method.obs_shape,
              "skills": (getattr(method.cfg, "skill_dim", 0),),
              "noise": (getattr(method, "x_dim", 0),)}
    out = []
    for name in names:
        x = torch.randn((batch, *shapes[name]), generator=g)
        out.append(x / x.norm(dim=-1, keepdim=True) if name == "skills" else x)
    return tuple(out)


def export_policy(run_dir, fmt, out, prompt="goal", checkpoint=None):
    """Write the policy of `run_dir` to `out` in `fmt`; returns what was written (a dict)."""
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    run_cfg, method, ckpt, step = load_run(run_dir, checkpoint)
    method.eval().requires_grad_(False)  # an exported graph is for inference: outputs need no grad
    module, names = policy_module(method, prompt)
    inputs = example_inputs(method, names)
    meta = {"format": "autodidact-policy", "version": 1, "method": method.name, "step": step,
            "env": run_cfg.get("env"), "obs_shape": list(method.obs_shape), "action_dim": method.action_dim,
            "inputs": list(names), "outputs": ["actions"]}
    start = time.perf_counter()
    with atomic_path(out) as tmp, torch.no_grad():
        if fmt == "onnx":
            _to_onnx(module, inputs, names, tmp, meta)
        else:
            _to_torchscript(module, inputs, tmp, meta)
    return {**meta, "path": str(out), "bytes": Path(out).stat().st_size,
            "seconds": time.perf_counter() - start, "checkpoint": str(ckpt)}


def _to_torchscript(module, inputs, path, meta):
    # Tracing records the temperature-0 branch the method takes; batch size stays free because the
    # methods read it from the tensors' shapes (traced as aten::size), which a test checks.
    # torch marks TorchScript deprecated (docs/EXPORT.md says what that means) and warns that
    # as_tensor of a traced tensor is traced as a constant, which it is not: it returns that tensor.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, inputs, check_trace=False)
        # Freezing inlines the weights the graph reads and drops the rest (critics, target networks).
        frozen = torch.jit.freeze(traced)
        torch.jit.save(frozen, str(path), _extra_files={"autodidact.json": json.dumps(meta)})


def _to_onnx(module, inputs, names, path, meta):
    try:
        import onnx
        import onnxscript  # noqa: F401  (the dynamo exporter writes through it)
    except ImportError:
        raise UserError("--format onnx needs the onnx packages: pip install 'autodidact[export]'") from None
    batch = torch.export.Dim("batch", min=1)
    shapes = {name: {0: batch} for name in names}
    # The exporter logs its optional torchvision ops and deprecations; a user reads one result line.
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, inputs, input_names=list(names), output_names=["actions"],
                                        dynamic_shapes=shapes, opset_version=ONNX_OPSET, dynamo=True,
                                        verbose=False)
    finally:
        logger.setLevel(level)
    model = program.model_proto
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save_model(model, str(path))
