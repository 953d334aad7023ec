"""HILP's zero-shot prompts: reward fitting and test-time planning in its Hilbert space phi.

- reward: z* = argmin_z sum_i (<phi(s_i), z> + b - r_i)^2 over reward-labeled states, normalized
  to the unit sphere the skills were trained on. Following the HILP code (hilp_zsrl's default
  `feature_type='state'`), the regressor is phi of the state the reward is received in (its s');
  the intercept b plays the role of its running-mean centering of phi, so a constant reward
  offset, which no policy can change, does not tilt z. 10k samples, as its `num_inference_steps`.
- plan: HILP-Plan's recursive midpoints. Among the phi of dataset states, the `knns` nearest the
  midpoint (smallest max(||phi_i - phi(s)||, ||phi_i - phi(g)||)) are averaged into a subgoal;
  repeating it `recursions` times with the subgoal as the new goal ends `2^-recursions` of the way
  to g, and z points there. Published: 3 recursions, 50 neighbours, 50k states.
"""

import numpy as np
import torch

from autodidact.core.errors import UserError
from autodidact.methods.hilp import normalize

DEFAULT_REWARD_SAMPLES = 10_000  # hilp_zsrl's num_inference_steps
DEFAULT_PLAN_STATES = 50_000     # hilp_gcrl's planning_num_states
DEFAULT_PLAN_RECURSIONS = 3      # its README's HILP-Plan command
DEFAULT_PLAN_KNNS = 50           # planning_num_knns


def sample_idxs(n, num, seed):
    """`num` distinct indices below n (all if fewer), sorted, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(num, n), replace=False))


def midpoint_subgoal(phi_s, phi_g, bank, recursions, knns):
    """HILP-Plan: `recursions` times, replace the goal by the mean of the `knns` bank points that
    minimize max(distance to s, distance to the goal), i.e. the states nearest the midpoint."""
    for _ in range(recursions):
        d = torch.maximum(torch.cdist(phi_s, bank), torch.cdist(phi_g, bank))      # [B, N]
        nearest = d.topk(knns, dim=1, largest=False).indices                       # [B, knns]
        phi_g = bank[nearest].mean(1)
    return phi_g


@torch.no_grad()
def plan_bank(method, dataset, num_states=DEFAULT_PLAN_STATES, seed=0, chunk=8192):
    """phi of `num_states` random dataset states: the candidate subgoals of planning."""
    idxs = sample_idxs(len(dataset), num_states, seed)
    return _phi_of(method, np.asarray(dataset.observations[idxs], dtype=np.float32), chunk)


def _phi_of(method, observations, chunk=8192):
    with torch.no_grad():
        return torch.cat([method.phi(torch.from_numpy(np.ascontiguousarray(observations[i:i + chunk])))
                          for i in range(0, len(observations), chunk)])


def infer_reward_skill(method, states, rewards):
    """(z, fit): the unit skill whose phi-linear reward best fits `rewards` by least squares, with
    an intercept; fit holds the R^2 of that fit and the sample count."""
    states = np.asarray(states, dtype=np.float32)
    rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
    if states.shape[1:] != tuple(method.obs_shape) or len(states) != len(rewards):
        raise UserError(f"reward samples: states have shape {states.shape} and rewards {rewards.shape}; expected "
                        f"[N, *{tuple(method.obs_shape)}] and [N]")
    if len(states) < 2 or not np.isfinite(rewards).all() or not np.isfinite(states).all():
        raise UserError("reward samples: need at least 2 samples with finite states and rewards")
    features = _phi_of(method, states).double()
    r = torch.from_numpy(rewards)
    fc, rc = features - features.mean(0), r - r.mean()
    if rc.abs().max() < 1e-12:
        raise UserError("reward samples: every reward is the same, so no direction is better than another "
                        "(a reward task needs states where it succeeds; use more or other samples)")
    w = torch.linalg.lstsq(fc, rc[:, None]).solution[:, 0]
    resid = rc - fc @ w
    fit = {"samples": len(rewards), "r2": float(1.0 - resid.pow(2).sum() / rc.pow(2).sum()),
           "reward_mean": float(r.mean()), "reward_min": float(r.min()), "reward_max": float(r.max())}
    return normalize(w.float()), fit
