"""Skill VAE: skills as latents of short action chunks, SUPE's pretraining (SPiRL's model).

Wilcoxson et al. 2025 (SUPE, reference rail-berkeley/supe), after Pertsch et al. 2020 (SPiRL).
Unlabeled trajectories are cut into windows of H = `skill_horizon` steps. A posterior
q(z | s_0..s_{H-1}, a_0..a_{H-1}) (a bidirectional GRU over the window's state-action pairs) reads
which skill a window is; a state-conditioned prior p(z | s_0) (an MLP) learns which skills start
where; a low-level policy pi(a_t | s_t, z) (a Gaussian MLP) replays the chunk's actions. The loss is
the conditional VAE bound

    -1/(B H) sum_{b,t} log pi(a_t | s_t, z)  +  beta * 1/B sum_b KL(q(z | window) || p(z | s_0)),  z ~ q.

Online (`autodidact finetune --method supe --skills RUN`) a high-level policy picks z every H steps
and pi executes it; the prior data's windows are labeled with the posterior mean of q. Acting
here without a high-level policy (`act`) draws z from the prior p(z | s): plausible behaviour, not
goal reaching, so the method accepts no prompts and is not evaluated on goals.

Defaults are SUPE's VAE settings as we know them from the paper (skill horizon 4, latent
dimension 8, KL weight beta 0.1, a recurrent posterior) with this library's usual sizes (MLPs of
3x256, Adam 3e-4, batch 256); neither the paper's appendix nor the reference code could be read
here to check them. Departures: a GRU instead of an LSTM (the library's
shared recognizer, Play-LMP's), the decoder's std is learned and state-independent.
"""

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from autodidact.core.config import check, check_common, opt
from autodidact.data.sampler import WindowSampler
from autodidact.methods.base import Method, ObservationConfig
from autodidact.methods.play_lmp import PlanRecognizer, gaussian_kl
from autodidact.nn import MLP, GaussianActor, gaussian_log_prob


@dataclass
class SkillVAEConfig(ObservationConfig):
    lr: float = opt(3e-4, "Adam learning rate (one optimizer over posterior, prior and decoder)")
    batch_size: int = opt(256, "windows per gradient step")
    skill_horizon: int = opt(4, "H: steps per window, the env steps one skill runs for online (SUPE: 4)")
    skill_dim: int = opt(8, "dimension of the skill latent z (SUPE: 8)")
    beta: float = opt(0.1, "weight of KL(q(z | window) || p(z | s_0)) against the action likelihood (SUPE: 0.1)")
    recognizer_hidden: int = opt(256, "GRU units per direction in the posterior q(z | window)")
    prior_hidden_dims: tuple[int, ...] = opt((256, 256, 256), "state-conditioned prior p(z | s) MLP hidden widths")
    decoder_hidden_dims: tuple[int, ...] = opt((256, 256, 256), "low-level policy pi(a | s, z) MLP hidden widths")

    def __post_init__(self):
        check_common(self)
        check(self.skill_horizon >= 1, "skill_horizon", f"must be >= 1, got {self.skill_horizon}")
        check(self.skill_dim >= 1, "skill_dim", f"must be >= 1, got {self.skill_dim}")
        check(self.beta >= 0, "beta", f"must be >= 0, got {self.beta}")
        check(self.recognizer_hidden >= 1, "recognizer_hidden", f"must be >= 1, got {self.recognizer_hidden}")


class SkillVAE(Method):
    name = "skill-vae"
    summary = "skills as latents of H-step action chunks: window VAE with a state prior (SUPE's, SPiRL's)"
    paper = "Wilcoxson et al. 2025 (SUPE); Pertsch et al. 2020 (SPiRL)"
    reference = "rail-berkeley/supe"
    Config = SkillVAEConfig
    prompts = ()
    data = "windows"

    def __init__(self, cfg: SkillVAEConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        self.encoder = self.make_encoder()
        d, k = self.encoder.out_dim, cfg.skill_dim
        self.recognizer = PlanRecognizer(d + action_dim, cfg.recognizer_hidden, 1, k)
        self.prior = MLP(d, cfg.prior_hidden_dims, out_dim=2 * k)
        self.decoder = GaussianActor(d + k, action_dim, cfg.decoder_hidden_dims, const_std=False)
        self.optimizer = self.make_optimizer(self.parameters())

    def make_sampler(self, dataset, seed):
        cfg = self.cfg
        return WindowSampler(dataset, cfg.skill_horizon, seed=seed, need_actions=True, p_aug=cfg.p_aug,
                             frame_stack=cfg.frame_stack)

    # ------------------------------------------------------------ parts
    def posterior(self, states, actions):
        """(mean, std) of q(z | window) from encoded states [B, H, d] and actions [B, H, A]."""
        lengths = torch.full((states.shape[0],), states.shape[1], dtype=torch.long, device=states.device)
        return self.recognizer(torch.cat([states, actions], -1), lengths)

    def state_prior(self, states):
        mean, raw = self.prior(states).chunk(2, -1)
        return mean, F.softplus(raw) + 1e-4

    def loss(self, batch):
        cfg = self.cfg
        states = self.encoder(batch["observations"])            # [B, H, d]
        actions = batch["actions"]
        q_mean, q_std = self.posterior(states, actions)
        p_mean, p_std = self.state_prior(states[:, 0])
        z = q_mean + q_std * torch.randn_like(q_std)             # reparameterised sample of q
        inputs = torch.cat([states, z[:, None].expand(-1, states.shape[1], -1)], -1)
        mean, log_std = self.decoder(inputs)
        log_prob = gaussian_log_prob(mean, log_std, actions)       # [B, H]
        nll = -log_prob.mean()
        kl = gaussian_kl(q_mean, q_std, p_mean, p_std).mean()
        loss = nll + cfg.beta * kl
        return loss, {"vae/loss": loss.detach(), "vae/nll": nll.detach(), "vae/kl": kl.detach(),
                      "actor/mse": (mean.detach() - actions).pow(2).mean(),
                      "skill/posterior_std": q_std.detach().mean(), "skill/prior_std": p_std.detach().mean()}

    # ------------------------------------------------------------ acting
    @torch.no_grad()
    def act_skill(self, observations, skills, temperature=0.0, generator=None):
        """pi(a | s, z): the low-level actions of skills z ([B, skill_dim])."""
        x = torch.cat([self.encoder(observations), skills.to(observations.dtype)], -1)
        return self.decoder.sample(x, temperature=temperature, generator=generator)

    def act(self, observations, goals=None, temperature=0.0, generator=None):
        """A skill from the prior p(z | s) (its mean at temperature 0), decoded; goals are ignored."""
        mean, std = self.state_prior(self.encoder(observations))
        z = mean
        if temperature:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            z = mean + temperature * std * noise
        return self.act_skill(observations, z, temperature, generator)

    @torch.no_grad()
    def encode_windows(self, observations, actions):
        """The posterior mean of q(z | window) for windows of observations [B, H, *obs] and actions
        [B, H, A]: the skill labels SUPE gives prior data."""
        return self.posterior(self.encoder(observations), actions)[0]


