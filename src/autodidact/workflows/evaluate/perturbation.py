"""Perturbation mode of the evaluator: what to displace once per episode, and when.

Once per counted or video episode the object or the agent is displaced (`envs.perturb`: a cube
moved across the table, the arm thrown to a random pose, a maze agent teleported a few cells
away), at a step drawn from the episode's own seed or at its first success. It measures the claim
of Play-LMP (Lynch et al. 2019, arXiv:1903.01973) that play-supervised policies "are more robust to
perturbations and exhibit retrying-till-success": whether a policy recovers when the world does
not go as planned. The policy is not told; it sees the displaced state at its next call. Since
OGBench ends an episode at its first success, a perturbation at a step can only hit episodes that
have not succeeded yet; `at='success'` instead undoes each first success (the episode goes on) and
counts how many are achieved again.
"""

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from autodidact.core.errors import UserError
from autodidact.envs.ogbench import time_limit
from autodidact.envs.perturb import PERTURB_TARGETS, check_perturb_target


# Default perturbation time: uniform over 10%-30% of the time limit. Competent policies finish
# OGBench tasks well within the limit (the pointmaze-medium oracle needs ~160 of 1000 steps, the
# scripted cube oracle ~100 of 200), so a later window would mostly find episodes already over.
DEFAULT_PERTURB_WINDOW = (0.1, 0.3)


PERTURB_STEP_STREAM, PERTURB_STATE_STREAM = 1, 2  # per-episode RNG streams, derived from its seed


@dataclass(frozen=True)
class Perturbation:
    """What to displace once per episode, and when (see the module docstring and envs.perturb).

    target: 'object', 'arm' (= 'agent': the arm, or a maze's agent) or 'both'.
    at: (lo, hi) fractions of the time limit (the step is uniform in between, drawn per episode),
        a step number, or 'success' (at the episode's first success, which then does not end it).
    cells: mazes only: how many corridor cells away at most the agent (or ball) lands.
    """

    target: str = "object"
    at: object = DEFAULT_PERTURB_WINDOW
    cells: int = 2

    def __post_init__(self):
        if self.target not in PERTURB_TARGETS:
            raise UserError(f"perturbation target must be one of {', '.join(PERTURB_TARGETS)}; got '{self.target}'")
        at = self.at
        if isinstance(at, list):
            at = tuple(at)
        ok = isinstance(at, str) and at == "success"
        if isinstance(at, (int, np.integer)) and not isinstance(at, bool):
            at, ok = int(at), int(at) >= 1
        elif isinstance(at, tuple) and len(at) == 2 and all(isinstance(x, (int, float)) for x in at):
            at = (float(at[0]), float(at[1]))
            ok = 0.0 <= at[0] <= at[1] <= 1.0
        if not ok:
            raise UserError(f"perturbation time must be 'success', a step >= 1 or a window (lo, hi) with "
                            f"0 <= lo <= hi <= 1 (fractions of the time limit); got {self.at!r}")
        object.__setattr__(self, "at", at)
        if isinstance(self.cells, bool) or not isinstance(self.cells, (int, np.integer)) or self.cells < 1:
            raise UserError(f"perturbation cells must be an integer >= 1; got {self.cells!r}")

    @classmethod
    def parse(cls, spec, cells=2):
        """'TARGET[@WHEN]', WHEN = 'success', a step ('50'), a fraction ('0.2') or a window ('0.1-0.3')."""
        target, _, when = str(spec).partition("@")
        if not when:
            return cls(target, cells=cells)
        try:
            if when == "success":
                at = when
            elif "-" in when:
                lo, hi = when.split("-", 1)
                at = (float(lo), float(hi))
            elif when.isdigit():
                at = int(when)
            else:
                at = (float(when), float(when))
        except ValueError:
            raise UserError(f"perturbation '{spec}': WHEN must be 'success', a step (e.g. 50) or a fraction "
                            f"window of the time limit (e.g. 0.1-0.3)") from None
        return cls(target, at, cells)

    def plan(self, episode_seed, limit):
        """This episode's perturbation: when (None: at its first success), what, how far."""
        step = None
        if isinstance(self.at, int):
            step = self.at
        elif self.at != "success":
            lo = max(1, math.ceil(self.at[0] * limit))
            hi = max(lo, min(limit - 1, math.floor(self.at[1] * limit)))
            rng = np.random.default_rng([episode_seed, PERTURB_STEP_STREAM])
            step = int(rng.integers(lo, hi + 1))
        return PerturbPlan(self.target, step, int(self.cells))

    def as_dict(self):
        return {"target": self.target, "at": list(self.at) if isinstance(self.at, tuple) else self.at,
                "cells": int(self.cells)}


class PerturbPlan(NamedTuple):
    target: str
    step: int  # after this many env steps; None: at the first success
    cells: int


def as_perturbation(perturb, env_name, max_episode_steps):
    """`perturb` (None, a Perturbation, a dict of its fields or a spec string) -> checked Perturbation or None."""
    if perturb is None:
        return None
    if isinstance(perturb, str):
        perturb = Perturbation.parse(perturb)
    elif isinstance(perturb, dict):
        unknown = set(perturb) - {"target", "at", "cells"}
        if unknown:
            raise UserError(f"unknown perturbation field(s) {sorted(unknown)}; fields: target, at, cells")
        perturb = Perturbation(**perturb)
    elif not isinstance(perturb, Perturbation):
        raise UserError(f"perturb must be a spec string such as 'object@success', a dict or a Perturbation; "
                        f"got {type(perturb).__name__}")
    check_perturb_target(env_name, perturb.target)
    limit = time_limit(env_name, max_episode_steps)
    if perturb.at != "success" and limit is None:
        raise UserError(f"{env_name} has no time limit; perturb at 'success' or set max_episode_steps")
    if isinstance(perturb.at, int) and perturb.at >= limit:
        raise UserError(f"perturbation step {perturb.at} is not before the end of the episode ({limit} steps)")
    return perturb


def perturbation_stats(outcomes):
    """Per-task perturbation fields from [(success, Outcome)] (see evaluate's Returns)."""
    nan = float("nan")
    n = len(outcomes)
    perturbed = [(success, o) for success, o in outcomes if o.perturbed_at is not None]
    recovery = [o.steps - o.perturbed_at for success, o in perturbed if success]
    return {
        "perturbed": len(perturbed) / n if n else nan,
        "success_perturbed": float(np.mean([success for success, _ in perturbed])) if perturbed else nan,
        "undone": float(np.mean([o.undone for _, o in outcomes])) if n else nan,
        "recovered": float(np.mean([bool(o.undone and success) for success, o in outcomes])) if n else nan,
        "recovery_steps": float(np.mean(recovery)) if recovery else nan,
    }
