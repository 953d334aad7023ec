"""Play-GCBC: goal-conditioned behavioural cloning on play windows (Lynch et al., 2019, baseline).

Play-LMP without the latent plan: the same windows of 16-32 steps with the state after each
window as the hindsight goal, the same per-step decoder pi(a_t | s_t, s_l) and discretized
logistic-mixture action head, trained by maximum likelihood alone. Set against Play-LMP it
measures what the latent plan adds; set against OGBench's GCBC (`gcbc.py`: a unit-std Gaussian
with goals anywhere later in the episode) it measures what windowed goals and a multimodal head
add. Defaults and departures from the paper are those of `play_lmp.py`.
"""

from dataclasses import dataclass

import torch

from autodidact.methods.play_lmp import PlayConfig, PlayMethod, decoder_info, hindsight_windows, window_rows


@dataclass
class PlayGCBCConfig(PlayConfig):
    """Play-LMP's windows, decoder and action head, without the latent plan's fields."""


class PlayGCBC(PlayMethod):
    name = "play-gcbc"
    summary = "Play-LMP's baseline: mixture-of-logistics decoder pi(a | s, goal) on play windows, no latent plan"
    paper = "Lynch et al. 2019"
    reference = "the paper (no public code)"
    Config = PlayGCBCConfig

    def __init__(self, cfg: PlayGCBCConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        self.encoder = self.make_encoder()
        self.decoder = self.make_decoder(2 * self.encoder.out_dim)
        self.optimizer = self.make_optimizer(self.parameters())

    def loss(self, batch):
        states, lengths, goals, valid = hindsight_windows(self.encoder, batch, self.cfg.window_min)
        inputs = window_rows(states, goals, valid)
        actions = batch["actions"][valid]
        log_prob = self.decoder.log_prob(inputs, actions)
        loss = -log_prob.mean()
        info = {"actor/loss": loss.detach(), **decoder_info("actor", self.decoder, inputs, actions, log_prob),
                "actor/window_length": lengths.float().mean()}
        return loss, info

    def act(self, observations, goals, temperature=0.0, generator=None):
        x = torch.cat([self.encoder(observations), self.encoder(goals)], -1)
        return self.decoder.sample(x, temperature=temperature, generator=generator)
