"""Every registered method against the one contract of `autodidact.methods.base`.

Unit checks on a tiny copy of each method (a batch from its own sampler): `loss` is a finite scalar
with namespaced, detached info and changes nothing; `update` steps the weights of every network
the loss trains with the one optimizer ("main"), and moves each target network of `targets()` by
Polyak from the weights before the step. Then what each method learns on the tiny point world
(tests/pointenv.py), from one training run per method shared by the learning checks: its logged
losses move, it beats the random policy, its values rank nearer states higher, it draws the figures
of its kind. Resume after a kill is bit-identical; presets come from the one table; `autodidact
methods` lists it; config errors are one line naming the key.

What differs between methods (budgets, thresholds, the checks of each one's own logs) is the
SPECS table below, with the numbers of the per-method tests it replaces. Method-specific tests
(reference formulas, gradient routing, IQE, BESO's sampler, Play-LMP's latents, HILP prompting)
stay in the per-method files.
"""

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pytest
import torch

from autodidact.core.config import apply_overrides
from autodidact.core.errors import UserError
from autodidact.data.dataset import Dataset
from autodidact.methods import METHODS, get_method
from autodidact.methods.presets import PRESETS, preset_for
from autodidact.workflows import train as trainer
from autodidact.workflows.runs import load_run
from autodidact.workflows.runtime import to_tensors
from clihelp import methods_listing
from pointenv import (STEP, assert_resume_matches_uninterrupted, point_play_dataset, rollout_success, settings,
                      train_on_point_play)

REGISTRY_ORDER = ["gcbc", "gcivl", "gciql", "qrl", "crl", "hiql", "hilp", "play-lmp", "play-gcbc", "beso", "lapo",
                  "skill-vae"]


# ------------------------------------------------------------------ per-method checks of a trained run
def _spearman(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _gcbc_losses(log):
    # The BC loss falls: last logged interval well below the first.
    assert log["actor/mse"][-1] < 0.95 * log["actor/mse"][0], log["actor/mse"]


def _gcivl_losses(log):
    # TD regression gets fitted early, then rises a little as values keep propagating (the target
    # moves); its best interval is far below the first.
    assert log["value/loss"][1:].min() < 0.5 * log["value/loss"][0], log["value/loss"]
    # Values spread out towards -(steps to goal): the most distant goals grow more negative.
    assert log["value/v_min"][-1] < log["value/v_min"][0] - 1.0, log["value/v_min"]
    # Dataset actions towards in-trajectory goals gain value: the AWR advantage becomes positive.
    assert log["actor/adv"][-1] > 0.05, log["actor/adv"]


def _gciql_losses(log):
    # The expectile value fit and the critic's TD error both fall well below their first interval.
    assert log["value/loss"][-1] < 0.2 * log["value/loss"][0], log["value/loss"]
    assert log["critic/loss"][-1] < 0.7 * log["critic/loss"][0], log["critic/loss"]
    # Values spread out towards -(steps to goal) as TD propagates.
    assert log["value/v_min"][-1] < log["value/v_min"][0] - 1.5, log["value/v_min"]
    # The normalised Q term sits near -1 once Q is negative everywhere (it is -Q/|Q|).
    assert abs(log["actor/q_loss"][-1] - 1.0) < 0.05, log["actor/q_loss"]


def _qrl_losses(log):
    # Distances to random goals grow much faster than one-step distances (the point world's random
    # goals are about 10 steps away on average), the dual variable rises while the one-step
    # constraint is violated (at lr 3e-4 it needs far more than 800 steps to enforce it fully),
    # and the latent dynamics model fits.
    first, last = {k: v[0] for k, v in log.items()}, {k: v[-1] for k, v in log.items()}
    ratio = lambda r: r["value/d_neg_mean"] / r["value/d_pos_mean"]  # noqa: E731
    assert last["value/d_neg_mean"] > 3 * first["value/d_neg_mean"]
    assert ratio(last) > 1.5 * ratio(first)
    assert last["value/d_neg_loss"] < first["value/d_neg_loss"]
    assert last["value/d_pos_loss"] > METHODS["qrl"].Config.eps and last["value/lam"] > 1.2
    assert last["dynamics/loss"] < 0.5 * first["dynamics/loss"]


def _crl_losses(log):
    # The classifier learns to pick each transition's own future out of the batch: its loss goes
    # below the best goal-blind classifier (one constant logit c with sigmoid(c) = 1/B) and it
    # finds the positive several times more often than chance.
    b = 256
    c = np.log(1 / (b - 1))
    blind = np.log1p(np.exp(c)) - c / b
    assert log["critic/loss"][-1] < 0.97 * blind < log["critic/loss"][0], log["critic/loss"]
    assert log["critic/categorical_accuracy"][-1] > 4 / b
    assert log["critic/logits_pos"][-1] > log["critic/logits_neg"][-1] + 0.5


def _hiql_losses(log):
    value_loss, v_mean, high_mse = log["value/loss"], log["value/v_mean"], log["high_actor/mse"]
    # The TD loss falls fast from its start; later it rises again as values grow towards the
    # number of steps to the goal (bootstrapped residuals scale with |V|), so compare the early
    # minimum and check it never returns to its start.
    assert value_loss[:20].min() < 0.5 * value_loss[0], value_loss[:20]
    assert value_loss[-1] < value_loss[0], (value_loss[0], value_loss[-1])
    # Values are (minus) discounted steps to the goal: they fall well below a one-step horizon.
    assert v_mean[-1] < v_mean[0] - 2.0, (v_mean[0], v_mean[-1])
    # The high actor regresses phi of the subgoal ever better. (The low actor's action error on this
    # noisy play data stays near its start, as GCBC's does; its learning shows in the rollouts.)
    assert high_mse[-1] < 0.7 * high_mse[0], (high_mse[0], high_mse[-1])


def _skill_vae_losses(log):
    # The chunk's actions are reconstructed ever better through z, and the posterior keeps
    # information about the window (a KL to the state prior well above 0).
    assert log["vae/nll"][-1] < log["vae/nll"][0] - 0.5, log["vae/nll"]
    assert log["actor/mse"][-1] < 0.5 * log["actor/mse"][0], log["actor/mse"]
    assert log["vae/kl"][-1] > 0.5, log["vae/kl"]


def _skill_vae_skills_replay_their_windows(method):
    """Decoding a window's posterior-mean skill reproduces its actions far better than decoding the
    skill of another window: z says how the chunk moves."""
    data = _point_windows(method.cfg.skill_horizon)
    obs, acts = torch.as_tensor(data[0]), torch.as_tensor(data[1])
    z = method.encode_windows(obs, acts)
    errors = []
    for skills in (z, z.roll(1, 0)):
        decoded = method.act_skill(obs.reshape(-1, 2), skills.repeat_interleave(obs.shape[1], 0))
        errors.append(float((decoded.reshape(acts.shape) - acts).pow(2).mean()))
    assert errors[0] < 0.5 * errors[1], errors


def _point_windows(horizon, n=200, seed=3):
    """Windows of point play (observations [n, H, 2], actions [n, H, 2]) the method never saw."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(-1, 1, (n, 2))
    direction = rng.uniform(-1, 1, (n, 2))
    obs, acts = [], []
    for _ in range(horizon):
        a = np.clip(direction + rng.normal(0, 0.3, (n, 2)), -1, 1)
        obs.append(s.copy())
        acts.append(a)
        s = np.clip(s + STEP * a, -1, 1)
    return np.stack(obs, 1).astype(np.float32), np.stack(acts, 1).astype(np.float32)


def _beso_losses(log):
    assert log["actor/loss"][-1] < 0.8 * log["actor/loss"][0], log["actor/loss"]


def _rays_concordance(values, threshold):
    """Along 20 random rays out of a goal, the nearer of each pair of states has the higher value."""
    def check(method):
        rng = np.random.default_rng(1)
        goals = rng.uniform(-0.6, 0.6, (20, 2)).astype(np.float32)
        angles = rng.uniform(0, 2 * np.pi, 20)
        directions = np.stack([np.cos(angles), np.sin(angles)], 1)
        dist = np.linspace(0.05, 0.8, 8)
        states = np.clip(goals[:, None] + dist[None, :, None] * directions[:, None], -1, 1).astype(np.float32)
        with torch.no_grad():
            v = values(method, torch.from_numpy(states.reshape(-1, 2)),
                       torch.from_numpy(np.repeat(goals, len(dist), 0))).reshape(20, len(dist)).numpy()
        i, j = np.triu_indices(len(dist), 1)
        concordant = (v[:, i] > v[:, j]).mean()
        assert concordant > threshold, v.round(2)
    return check


def _start_to_goal_lines(values, threshold):
    """On 10 random lines from a start to a goal, value rises with progress (worst Spearman)."""
    def check(method):
        rng = np.random.default_rng(1)
        worst = 1.0
        for _ in range(10):
            start, goal = rng.uniform(-0.9, 0.9, 2), rng.uniform(-0.9, 0.9, 2)
            line = np.linspace(0.0, 1.0, 8)[:, None]
            states = torch.tensor(start + line * (goal - start), dtype=torch.float32)
            with torch.no_grad():
                v = values(method, states, torch.tensor(goal, dtype=torch.float32).expand(8, 2)).numpy()
            worst = min(worst, _spearman(v, np.arange(8)))
        assert worst > threshold, worst
    return check


def _lines_through_the_goal(values, threshold):
    """On the line from -g to g, for three goals g, value rises towards g."""
    def check(method):
        with torch.no_grad():
            for goal in ([0.7, 0.6], [-0.6, 0.5], [0.2, -0.7]):
                g = torch.tensor(goal)
                frac = torch.linspace(0, 1, 12)[:, None]
                states = -g + frac * (2 * g)
                v = values(method, states, g.expand_as(states)).numpy()
                assert _spearman(v, np.arange(len(v))) > threshold, (goal, v)
    return check


def _hilp_minus_learned_steps(method):
    """-V(s, g) = ||phi(s) - phi(g)|| grows along a straight line away from g, about one unit per
    STEP-sized move (the point moves 0.1 per step)."""
    goal = torch.tensor([[0.5, -0.3]])
    line = torch.stack([torch.linspace(0.5, -0.7, 13), torch.full((13,), -0.3)], -1)
    v = method.values(line, goal.expand(13, 2)).numpy()
    assert _spearman(-v, np.arange(13)) > 0.9, v
    assert 4.0 < -v[-1] < 40.0, v


def _gciql_heads_for_the_goal(method):
    # Actions point along g - s.
    s = torch.rand(500, 2) * 2 - 1
    g = torch.rand(500, 2) * 2 - 1
    with torch.no_grad():
        cos = torch.nn.functional.cosine_similarity(method.act(s, g), g - s).mean()
    assert cos > 0.8, cos


def _final_distance(policy_fn, episodes=100, horizon=40, seed=123):
    rng = np.random.default_rng(seed)
    s = rng.uniform(-1, 1, (episodes, 2)).astype(np.float32)
    g = rng.uniform(-1, 1, (episodes, 2)).astype(np.float32)
    for _ in range(horizon):
        s = np.clip(s + STEP * np.clip(policy_fn(s, g), -1, 1), -1, 1).astype(np.float32)
    return float(np.linalg.norm(s - g, axis=1).mean())


def _beso_heads_for_the_goal(method):
    # The play data's actions are noisy and aim at targets other than the goal; BESO samples that
    # distribution rather than its mean, so it reaches goals less often than GCBC's mean action
    # does, but it clearly heads for them.
    rng = np.random.default_rng(0)
    d_learned = _final_distance(method.make_policy(0.0, 0).act)
    d_random = _final_distance(lambda s, g: rng.uniform(-1, 1, s.shape))
    assert d_learned < 0.6 * d_random, (d_learned, d_random)


def _phi_figure(run):
    assert (run / "figures" / "phi.png").stat().st_size > 10_000


def _plan_latent_figure(run):
    png = run / "figures" / "plan_latents.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stats = json.loads((run / "figures" / "plan_latents.json").read_text())
    assert stats["windows"] > 100 and 0.0 <= stats["knn5_label_accuracy"] <= 1.0
    # Point play labels its windows by direction of travel; plans of the same direction cluster.
    assert stats["knn5_label_accuracy"] > stats["majority_label_share"] + 0.2, stats


def _gcivl_resume(a):
    # The target really differs from the online value (it is checkpointed, not recomputed).
    assert not torch.equal(a["value.net.net.0.weight"], a["target_value.net.net.0.weight"])


def _gciql_resume(a):
    assert not torch.equal(a["critic.net.net.0.weight"], a["target_critic.net.net.0.weight"])


def _qrl_resume(a):
    assert "log_lam" in a and "iqe_alpha_logit" in a


def _play_lmp_resume(a):
    assert any(k.startswith("recognizer.gru.") for k in a) and any(k.startswith("proposal.") for k in a)


def _lapo_losses(log):
    # The forward model explains the next state once the latent carries the action; the decoder fits.
    assert log["fdm/loss"][-1] < 0.1 * log["fdm/loss"][0], log["fdm/loss"]
    assert log["decoder/loss"][-1] < 0.1 * log["decoder/loss"][0], log["decoder/loss"]


def _latent_probe(run):
    stats = json.loads((run / "figures" / "latent_probe.json").read_text())
    # LAOM's measure: a linear probe reads the true action off the latent; not off an untrained one's.
    assert stats["r2"] > 0.9 and stats["r2"] > stats["r2_random_init"] + 0.3, stats


def _beso_resume(a):
    assert any(k.startswith("ema_net.") for k in a) and int(a["num_updates"]) == 40


@dataclass
class Spec:
    """How one method is checked. `learn`, `steps`, `log_every`: the shared point-world run;
    `margin`: how far its success rate must beat the random policy's; `tiny`: the overrides of the
    unit checks and (with `resume_extra`) of the resume run."""
    learn: tuple
    steps: int
    log_every: int
    margin: float
    tiny: tuple
    losses: Optional[Callable] = None       # checks of the trained run's metrics.csv columns
    ranking: Optional[Callable] = None      # value ordering on the trained method
    acting: Optional[Callable] = None       # more checks of the trained method's actions
    figures: dict = field(default_factory=dict)  # {file under figures/: its check}
    reaches_goals: bool = True              # goal-conditioned: it is prompted with goals and reaches them
    resume_extra: tuple = ()                # more overrides for the resume run
    resume: dict = field(default_factory=dict)  # steps / every of the resume run
    resume_checks: Optional[Callable] = None
    listing: tuple = ()                     # words its `autodidact methods` line contains
    goal_fields: frozenset = frozenset()    # which of value_goals, actor_goals, gc_negative it has


_PLAY = ("batch_size=32", "window=16", "window_min=8", "actor_hidden_dims=128,128", "num_mixtures=5", "lr=1e-2")
_PLAY_TINY = ("batch_size=4", "window=8", "window_min=4", "actor_hidden_dims=16", "num_mixtures=3")
_LMP = ("latent_dim=16", "recognizer_hidden=64", "recognizer_layers=1", "proposal_hidden_dims=128,128")
_LMP_TINY = ("latent_dim=4", "recognizer_hidden=8", "recognizer_layers=1", "proposal_hidden_dims=16")
_VALUE = frozenset({"value_goals", "actor_goals", "gc_negative"})

SPECS = {
    "gcbc": Spec(learn=("batch_size=256", "actor_hidden_dims=128,128"), steps=1000, log_every=10, margin=0.25,
                 tiny=("batch_size=32", "actor_hidden_dims=32,32"), losses=_gcbc_losses,
                 listing=("GCBC",), goal_fields=frozenset({"actor_goals"})),
    "gcivl": Spec(learn=("batch_size=256", "actor_hidden_dims=128,128", "value_hidden_dims=128,128"), steps=700,
                  log_every=100, margin=0.4, tiny=("batch_size=32", "actor_hidden_dims=32,32", "value_hidden_dims=32,32"),
                  losses=_gcivl_losses, ranking=_rays_concordance(lambda m, s, g: m.values(s, g), 0.95),
                  resume_checks=_gcivl_resume, listing=("goal", "GCIVL"), goal_fields=_VALUE),
    # alpha=1 is the reference's manipulation value; with the default 0.3 the critic's early action
    # gradients dominate the BC term and the short run here ends before they settle near goals.
    "gciql": Spec(learn=("batch_size=256", "actor_hidden_dims=128,128", "value_hidden_dims=128,128", "alpha=1.0"),
                  steps=800, log_every=100, margin=0.15,
                  tiny=("batch_size=32", "actor_hidden_dims=32,32", "value_hidden_dims=32,32"),
                  losses=_gciql_losses, ranking=_rays_concordance(lambda m, s, g: m.values(s, g), 0.95),
                  acting=_gciql_heads_for_the_goal,
                  # const_std=False draws actor noise from the torch RNG, so the resume must restore it too.
                  resume_extra=("const_std=false",), resume_checks=_gciql_resume, listing=("goal", "GCIQL"),
                  goal_fields=_VALUE),
    "qrl": Spec(learn=("batch_size=256", "actor_hidden_dims=128,128", "value_hidden_dims=128,128", "latent_dim=64"),
                steps=800, log_every=50, margin=0.25,
                tiny=("batch_size=64", "actor_hidden_dims=32,32", "value_hidden_dims=32,32", "latent_dim=16"),
                losses=_qrl_losses, ranking=_lines_through_the_goal(lambda m, s, g: m.value(s, g), 0.9),
                resume=dict(steps=60, every=20), resume_checks=_qrl_resume, listing=("QRL",),
                goal_fields=frozenset({"value_goals", "actor_goals"})),
    # discount 0.9: geometric positives ~10 steps ahead; at 0.99 they would mostly be the end of
    # these 60-step episodes (OGBench episodes are 1000 steps long).
    "crl": Spec(learn=("batch_size=256", "actor_hidden_dims=128,128", "value_hidden_dims=128,128", "latent_dim=64",
                       "discount=0.9"), steps=800, log_every=50, margin=0.25,
                tiny=("batch_size=64", "actor_hidden_dims=32,32", "value_hidden_dims=32,32", "latent_dim=16"),
                losses=_crl_losses,
                ranking=_lines_through_the_goal(lambda m, s, g: m.q_value(s, g, m.act(s, g).clamp(-1, 1)), 0.9),
                resume=dict(steps=60, every=20), listing=("CRL",),
                goal_fields=frozenset({"value_goals", "actor_goals"})),
    # Subgoals 10 steps ahead since point episodes are short.
    "hiql": Spec(learn=("batch_size=256", "actor_hidden_dims=128,128", "value_hidden_dims=128,128", "subgoal_steps=10"),
                 steps=1000, log_every=10, margin=0.25,
                 tiny=("batch_size=32", "actor_hidden_dims=32,32", "value_hidden_dims=32,32", "subgoal_steps=5"),
                 losses=_hiql_losses, ranking=_start_to_goal_lines(lambda m, s, g: m.values(s, g), 0.7),
                 listing=("HIQL",), goal_fields=_VALUE),
    # 2x64 networks, batch 128, lr 1e-3: the published 3x512 / 1024 / 3e-4 needs ~100x the compute
    # to get as far.
    "hilp": Spec(learn=("batch_size=128", "actor_hidden_dims=64,64", "value_hidden_dims=64,64", "lr=1e-3"),
                 steps=600, log_every=50, margin=0.4,
                 tiny=("batch_size=32", "actor_hidden_dims=16", "value_hidden_dims=16,16", "skill_dim=4"),
                 ranking=_hilp_minus_learned_steps, figures={"phi.png": _phi_figure},
                 listing=("goal,reward", "HILP"), goal_fields=frozenset({"value_goals", "gc_negative"})),
    # Small networks, windows of 8-16 steps and a high learning rate so the point world is learned
    # in a few hundred steps.
    "play-lmp": Spec(learn=_PLAY + _LMP, steps=300, log_every=3, margin=0.25, tiny=_PLAY_TINY + _LMP_TINY,
                     figures={"plan_latents.png": _plan_latent_figure, "plan_latents.json": None},
                     resume_checks=_play_lmp_resume, listing=("windows",)),
    "play-gcbc": Spec(learn=_PLAY, steps=300, log_every=3, margin=0.25, tiny=_PLAY_TINY, listing=("windows",)),
    # Skills, not goal reaching: its learning checks are reconstruction through z.
    "skill-vae": Spec(learn=("batch_size=128", "decoder_hidden_dims=64,64", "prior_hidden_dims=64,64",
                             "recognizer_hidden=64", "lr=1e-3"), steps=400, log_every=50, margin=0.0,
                      tiny=("batch_size=8", "decoder_hidden_dims=16", "prior_hidden_dims=16", "recognizer_hidden=8",
                            "skill_dim=4"),
                      losses=_skill_vae_losses, acting=_skill_vae_skills_replay_their_windows, listing=("windows",),
                      reaches_goals=False),
    "beso": Spec(learn=("batch_size=256", "hidden_dims=128,128", "lr=1e-3"), steps=600, log_every=100, margin=0.04,
                 tiny=("batch_size=32", "hidden_dims=32,32", "sigma_embed_dim=8"), losses=_beso_losses,
                 acting=_beso_heads_for_the_goal, resume_checks=_beso_resume, listing=("BESO",),
                 goal_fields=frozenset({"actor_goals"})),
    "lapo": Spec(learn=("batch_size=256", "actor_hidden_dims=128,128", "idm_hidden_dims=128,128",
                        "fdm_hidden_dims=128,128", "decoder_hidden_dims=64,64", "lr=1e-3"), steps=600, log_every=60,
                 margin=0.25, tiny=("batch_size=32", "actor_hidden_dims=16", "idm_hidden_dims=16", "fdm_hidden_dims=16",
                                    "decoder_hidden_dims=16", "num_latents=2", "num_codes=8", "code_dim=4"),
                 losses=_lapo_losses, figures={"latent_probe.json": _latent_probe}, listing=("latent",),
                 goal_fields=frozenset({"actor_goals"})),
}
NAMES = list(SPECS)


def test_every_registered_method_has_a_spec_in_registry_order():
    assert list(METHODS) == REGISTRY_ORDER and sorted(SPECS) == sorted(METHODS), "a new method needs a spec here"
    with pytest.raises(UserError) as err:
        get_method("sac")
    assert str(err.value) == f"unknown method 'sac'; valid methods: {', '.join(REGISTRY_ORDER)}"


# ------------------------------------------------------------------ the class
@pytest.mark.parametrize("name", NAMES)
def test_declares_what_it_is_and_nothing_of_the_old_surface(name):
    cls = get_method(name)
    assert cls is METHODS[name] and cls.name == name
    assert cls.summary and cls.paper and cls.reference and dataclasses.is_dataclass(cls.Config)
    assert ("goal" in cls.prompts) == SPECS[name].reaches_goals and set(cls.prompts) <= {"goal", "reward"}
    assert cls.data == ("windows" if name.startswith("play-") or name == "skill-vae" else "transitions")
    assert cls.needs_actions is True
    for gone in ("presets", "write_figures", "compile_pays", "losses", "skill_losses", "value_loss", "critic_loss",
                 "stacked"):
        assert not hasattr(cls, gone), gone
    assert hasattr(cls, "actor_loss") == (name == "gciql")  # GCIQL keeps its actor term as a helper


# ------------------------------------------------------------------ loss and update on a tiny copy
@pytest.fixture(scope="module")
def point_dataset(tmp_path_factory):
    return Dataset.load(point_play_dataset(tmp_path_factory.mktemp("unit") / "point.npz", episodes=5))


def _tiny(name, *extra, seed=0):
    cls = get_method(name)
    cfg = apply_overrides(cls.Config(), list(SPECS[name].tiny) + list(extra))
    torch.manual_seed(seed)
    return cls(cfg, (2,), 2)


def _batch(method, dataset):
    return to_tensors(method.make_sampler(dataset, seed=0).sample(method.cfg.batch_size), "cpu")


def _state(method):
    return {k: v.clone() for k, v in method.state_dict().items()}


@pytest.mark.parametrize("name", NAMES)
def test_loss_is_a_finite_scalar_with_namespaced_detached_info(name, point_dataset):
    m = _tiny(name)
    b = _batch(m, point_dataset)
    before = _state(m)
    loss, info = m.loss(b)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0 and loss.requires_grad
    assert torch.isfinite(loss), loss
    assert info and all(re.fullmatch(r"[a-z_]+/[a-z0-9_]+", k) for k in info), sorted(info)
    for k, v in info.items():
        v = torch.as_tensor(v)
        assert v.dim() == 0 and not v.requires_grad and torch.isfinite(v), (k, v)
    # `loss` computes; it changes no weights, buffers or targets.
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k
    # `update` logs what `loss` does.
    assert set(m.update(b)) >= set(info)
    # `act` answers every observation with a finite action, without building a graph.
    obs = b["observations"][:3, 0] if m.data == "windows" else b["observations"][:3]
    goals = b.get("actor_goals", b.get("goals", b["observations"]))[:3]
    actions = m.act(obs, goals)
    assert actions.shape == (3, m.action_dim) and not actions.requires_grad and torch.isfinite(actions).all()


@pytest.mark.parametrize("name", NAMES)
def test_one_optimizer_over_everything_the_loss_trains(name):
    m = _tiny(name)
    assert m.optimizers() == {"main": m.optimizer} and not hasattr(m, "opt")
    in_optimizer = {id(p) for g in m.optimizer.param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in m.parameters() if p.requires_grad}
    # Target networks are frozen copies: no gradient, no optimizer.
    for target, online in m.targets():
        assert type(target) is type(online) and not any(p.requires_grad for p in target.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_update_steps_every_network_and_moves_targets_by_polyak(name, point_dataset):
    # A large Polyak rate and learning rate, so that weights from before and after the step differ
    # by more than the comparison's tolerance.
    has_tau = "tau" in {f.name for f in dataclasses.fields(get_method(name).Config)}
    m = _tiny(name, "lr=1e-2", *(["tau=0.5"] if has_tau else []))
    with torch.no_grad():  # targets away from their online networks, so the Polyak step is visible
        for target, _ in m.targets():
            for p in target.parameters():
                p.add_(0.1 * torch.randn_like(p))
    before = [([p.clone() for p in t.parameters()], [p.detach().clone() for p in o.parameters()])
              for t, o in m.targets()]
    trained = {n: p.detach().clone() for n, p in m.named_parameters() if p.requires_grad}
    m.update(_batch(m, point_dataset))
    # Every network (top-level part) the loss trains takes a step.
    after = dict(m.named_parameters())
    parts = {n.split(".")[0] for n in trained}
    for part in parts:
        assert any(not torch.equal(after[n], p) for n, p in trained.items() if n.split(".")[0] == part), part
    # Each target moves towards its online network's weights from before this step.
    tau = getattr(m.cfg, "tau", None)
    assert (tau is not None) or not m.targets()
    for (target, online), (t0, o0) in zip(m.targets(), before):
        towards_new = []
        for t, tb, ob, o in zip(target.parameters(), t0, o0, online.parameters()):
            torch.testing.assert_close(t, (1 - tau) * tb + tau * ob)
            towards_new.append(torch.allclose(t, (1 - tau) * tb + tau * o.detach()))
        assert not all(towards_new)  # the check tells pre-step from post-step weights apart


# ------------------------------------------------------------------ learning on the point world
class _PointRuns(dict):
    """One training run per method, made when a test first asks for it and shared by the rest."""

    def __init__(self, tmp_path_factory):
        super().__init__()
        self.tmp_path_factory = tmp_path_factory

    def __missing__(self, name):
        spec = SPECS[name]
        method, log, run = train_on_point_play(name, self.tmp_path_factory.mktemp(name), spec.steps, spec.learn,
                                               log_every=spec.log_every)
        self[name] = (method, log, run)
        return self[name]


@pytest.fixture(scope="module")
def point_runs(tmp_path_factory):
    return _PointRuns(tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if SPECS[n].losses])
def test_logged_losses_move_as_they_should(point_runs, name):
    _, log, _ = point_runs[name]
    SPECS[name].losses(log)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_beats_the_random_policy(point_runs, name):
    method, _, _ = point_runs[name]
    if not SPECS[name].reaches_goals:
        SPECS[name].acting(method)
        return
    learned = rollout_success(method.make_policy(temperature=0.0, seed=0).act)
    rng = np.random.default_rng(0)
    random = rollout_success(lambda s, g: rng.uniform(-1, 1, s.shape))
    assert learned > random + SPECS[name].margin, (learned, random)
    if SPECS[name].acting:
        SPECS[name].acting(method)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if SPECS[n].ranking])
def test_values_rank_states_nearer_the_goal_higher(point_runs, name):
    method, _, _ = point_runs[name]
    SPECS[name].ranking(method)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_draws_the_figures_of_its_kind(point_runs, name):
    _, _, run = point_runs[name]
    figures = SPECS[name].figures
    if not figures:
        assert not (run / "figures").exists()
        return
    assert {p.name for p in (run / "figures").iterdir()} == set(figures)
    for check in figures.values():
        if check:
            check(run)


# ------------------------------------------------------------------ resume, presets, listing, config
@pytest.mark.parametrize("name", NAMES)
def test_resume_after_a_kill_is_bit_identical(name, tmp_path):
    spec = SPECS[name]
    a = assert_resume_matches_uninterrupted(name, tmp_path, spec.tiny + spec.resume_extra, **spec.resume)
    steps = spec.resume.get("steps", 40)
    state = json.loads((tmp_path / "full" / "checkpoints" / f"step_{steps:08d}" / "state.json").read_text())
    assert set(state["optimizers"]) == {"main"}
    # Target networks are checkpointed (not recomputed), and really differ from their online networks.
    m = _tiny(name)
    module_names = {id(mod): n for n, mod in m.named_modules()}
    for target, online in m.targets():
        t, o = module_names[id(target)], module_names[id(online)]
        keys = [k for k in a if k.startswith(t + ".")]
        assert keys, t
        for k in keys:
            assert not torch.equal(a[k], a[o + k[len(t):]]), k
    if spec.resume_checks:
        spec.resume_checks(a)


# Published numbers (OGBench's impls/hyperparameters.sh), as the per-method tests listed them.
_HIQL = {"high_alpha": 3.0, "low_alpha": 3.0}
PUBLISHED = {
    "gcivl": {ds: {"alpha": 10.0} for ds in PRESETS if not ds.startswith("visual-")},
    "gciql": {"pointmaze-medium-navigate-v0": {"alpha": 0.003}, "pointmaze-large-navigate-v0": {"alpha": 0.003},
              "antmaze-medium-navigate-v0": {"alpha": 0.3}, "cube-single-play-v0": {"alpha": 1.0},
              "scene-play-v0": {"alpha": 1.0}, "puzzle-3x3-play-v0": {"alpha": 1.0}},
    "qrl": {"pointmaze-medium-navigate-v0": {"alpha": 0.0003}, "cube-single-play-v0": {"alpha": 0.3}},
    "crl": {"pointmaze-medium-navigate-v0": {"alpha": 0.03}, "puzzle-3x3-play-v0": {"alpha": 3.0}},
    "hiql": {"pointmaze-medium-navigate-v0": _HIQL, "antmaze-medium-navigate-v0": _HIQL,
             "cube-single-play-v0": {**_HIQL, "subgoal_steps": 10}, "puzzle-3x3-play-v0": {**_HIQL, "subgoal_steps": 10},
             "scene-play-v0": {**_HIQL, "subgoal_steps": 10}},
}


@pytest.mark.parametrize("name", NAMES)
def test_presets_come_from_the_one_table(name):
    assert len(PRESETS) == 10  # six state datasets, four visual ones (tests/test_pixels.py)
    for ds, table in PRESETS.items():
        for path in (ds, f"data/{ds}-val.npz", f"/abs/{ds}.npz"):
            assert preset_for(path, name) == table.get(name, {}), (path, name)
    for ds, want in PUBLISHED.get(name, {}).items():
        assert preset_for(ds, name) == want, ds
    assert preset_for("my-own-data.npz", name) == {}
    # A copy: changing it leaves the table alone.
    preset_for("pointmaze-medium-navigate-v0", name)["alpha"] = -1.0
    assert PRESETS["pointmaze-medium-navigate-v0"].get(name, {}).get("alpha") != -1.0


@pytest.mark.parametrize("name", [n for n in NAMES if preset_for("pointmaze-medium-navigate-v0", n)])
def test_a_run_on_an_ogbench_named_file_records_its_preset_and_set_wins(name, tmp_path):
    preset = preset_for("pointmaze-medium-navigate-v0", name)
    data = point_play_dataset(tmp_path / "pointmaze-medium-navigate-v0-val.npz", episodes=3)
    tiny = tuple(o for o in SPECS[name].tiny if o.split("=")[0] not in preset)
    run = trainer.new_run(settings(name, tmp_path, data, 1, overrides=tiny), argv=["x"])
    run_cfg = json.loads((run / "run.json").read_text())
    assert run_cfg["preset"] == preset
    assert all(run_cfg["config"][k] == v for k, v in preset.items())
    # --set still wins over the preset.
    key = next(iter(preset))
    run = trainer.new_run(settings(name, tmp_path, data, 1, out="set", overrides=tiny + (f"{key}=0.5",)),
                          argv=["x"])
    run_cfg = json.loads((run / "run.json").read_text())
    assert run_cfg["preset"] == preset and run_cfg["config"][key] == 0.5
    assert getattr(load_run(run)[1].cfg, key) == 0.5


def test_listed_by_the_cli_in_registry_order(capsys):
    lines = methods_listing(capsys).splitlines()
    assert [line.split()[0] for line in lines] == REGISTRY_ORDER
    for line, (name, cls) in zip(lines, METHODS.items()):
        assert f"prompts: {','.join(cls.prompts)} " in line and cls.summary in line, line
        assert all(word in line for word in SPECS[name].listing), (line, SPECS[name].listing)


@pytest.mark.parametrize("name", NAMES)
def test_config_errors_are_one_line_naming_the_key(name):
    cls = get_method(name)
    cfg = cls.Config()
    fields = {f.name for f in dataclasses.fields(cfg)}
    # Goal relabeling settings exist only where the method uses them.
    assert fields & {"value_goals", "actor_goals", "gc_negative"} == SPECS[name].goal_fields
    hidden = sorted(k for k in fields if k.endswith("hidden_dims"))[0]
    cases = [({"lr": "-1"}, "config key 'lr': must be > 0, got -1.0"),
             ({"batch_size": "0"}, "config key 'batch_size': must be >= 1, got 0"),
             ({hidden: "0"}, f"config key '{hidden}': needs at least one positive width"),
             ({"nope": "1"}, "unknown config key 'nope'"),
             ({"batch_size": "big"}, "--set batch_size=big: expected int")]
    for kind in ("value_goals", "actor_goals"):
        if kind in fields:
            cur = getattr(cfg, kind).p_curgoal
            cases += [({f"{kind}.p_randomgoal": "1.5"}, f"config key '{kind}.p_randomgoal': must be in [0, 1], got 1.5"),
                      ({f"{kind}.p_curgoal": str(cur + 0.5)},
                       f"config key '{kind}.p_*goal': p_curgoal + p_trajgoal + p_randomgoal must sum to 1, got 1.5"),
                      ({f"{kind}.nope": "1"}, f"unknown config key '{kind}.nope'")]
        else:
            cases.append(({f"{kind}.p_curgoal": "0.1"}, f"unknown config key '{kind}.p_curgoal'"))
    if "gc_negative" not in fields:
        cases.append(({"gc_negative": "false"}, "unknown config key 'gc_negative'"))
    for overrides, message in cases:
        with pytest.raises(UserError) as err:
            apply_overrides(cfg, overrides)
        assert "\n" not in str(err.value) and message in str(err.value), (overrides, str(err.value))
