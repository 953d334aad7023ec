"""What every method shares: the small surface the trainer, evaluator and prompts rely on.

A method is an `nn.Module` that owns its networks (target networks included, so one
`state_dict()` holds everything), its optimizers, a sampler choice, `update(batch) -> info` and
`act(observations, goals)`. Info keys are namespaced (`actor/loss`); the trainer logs, never the
method.
"""

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from autodidact.compiling import eager
from autodidact.errors import UserError


class Method(nn.Module):
    name: str = ""
    summary: str = ""               # one line for `autodidact methods`
    Config: type = None
    prompts: tuple = ("goal",)      # which prompts `act` can serve
    needs_actions: bool = True      # False for action-free objectives
    presets: dict = {}              # {OGBench dataset name: {config key: published value}}
    legacy_defaults: dict = {}      # {config key added later: value runs saved before it used}
    compile_pays: bool = False      # measured faster under torch.compile (compiling.py: `--compile auto`)

    def __init__(self, cfg, obs_shape, action_dim):
        super().__init__()
        self.cfg = cfg
        self.obs_shape = tuple(obs_shape)
        self.obs_dim = int(np.prod(obs_shape))
        self.action_dim = action_dim

    # ------------------------------------------------------------ to override
    def make_sampler(self, dataset, seed):
        raise NotImplementedError

    def update(self, batch) -> dict:
        raise NotImplementedError

    def act(self, observations, goals, temperature=0.0, generator=None):
        raise NotImplementedError

    def optimizers(self) -> dict:
        return {}

    def make_policy(self, temperature=0.0, seed=0):
        """The object the evaluator drives (`act(obs, goals)`, optional `reset(mask)`). Methods with
        per-episode state (a plan latent held for k steps, a subgoal) return their own."""
        return GoalPolicy(self, temperature=temperature, seed=seed)

    def write_figures(self, run_dir, dataset) -> list:
        """Figures of what this method learned (e.g. a representation's 2-D projection), written
        into `run_dir` when training ends; returns the paths written. Most methods have none."""
        return []

    # ------------------------------------------------------------ shared
    def flat(self, x):
        """Observations of any shape -> [B, obs_dim] float32."""
        return x.reshape(x.shape[0], -1).float()

    @eager  # stays uncompiled inside a compiled update
    def optimize(self, loss, optimizer, params=None):
        """One gradient step. Under torchrun, gradients are averaged across processes before the
        step (plain data parallelism, as DDP does, without wrapping each sub-network)."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            flat /= dist.get_world_size()
            for g, avg in zip(grads, flat.split([g.numel() for g in grads])):
                g.copy_(avg.view_as(g))
        optimizer.step()

    def check_prompt(self, kind):
        if kind not in self.prompts:
            raise UserError(f"method '{self.name}' cannot be prompted with a {kind}; it accepts: "
                            f"{', '.join(self.prompts)}")


class GoalPolicy:
    """Adapter the evaluator calls: numpy batches in, numpy actions out, no gradients."""

    def __init__(self, method: Method, temperature=0.0, seed=0):
        self.method = method
        self.temperature = temperature
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def act(self, observations, goals):
        obs = torch.as_tensor(np.asarray(observations), dtype=torch.float32)
        g = torch.as_tensor(np.asarray(goals), dtype=torch.float32)
        was_training = self.method.training
        self.method.eval()
        try:
            a = self.method.act(obs, g, temperature=self.temperature, generator=self.generator)
        finally:
            self.method.train(was_training)
        return a.clamp(-1, 1).numpy()
