"""LAPO: goal-conditioned behaviour cloning in a latent action space learned from observations.

"Learning to Act without Actions" (Schmidt & Jiang, ICLR 2024; reference schmidtdominik/LAPO):
1. a latent inverse dynamics model reads (o_t, o_{t+1}) and emits a vector-quantized latent action
   z_t; a forward model must predict o_{t+1} from (o_t, z_t). The quantization bottleneck makes
   z_t carry the part of the change the forward model cannot guess from o_t: the action.
2. a policy pi(o_t, g) regresses z_t (behaviour cloning in latent space), with goals g relabeled in
   hindsight (future states of the trajectory), so it reaches OGBench's evaluation goals;
3. a decoder maps z_t to the real action a_t, trained on the labeled transitions only.
Acting is decoder(pi(o, g)). Stages 1-3 read every transition; only stage 3 reads actions, so a
file with a few labeled episodes (`action_mask`) is enough.

Defaults follow the reference's quantizer (`lapo/config.yaml`): 4 latents per action, each one of
64 codes of dimension 16, commitment cost 0.05, Adam 3e-4, batch 128. Departures:
- the three stages train together, one loss and one optimizer, each stage's input detached (the
  policy and the decoder regress the quantized latent without moving the inverse model); the
  reference trains them one after the other. A schedule of stages would need its own resume state;
  the joint loss converges to the same fixed point because nothing flows back into stage 1.
- the codebook is learned by the VQ-VAE codebook loss, not by EMA updates (decay 0.999).
- by default states, not frames: the forward model predicts the change o_{t+1} - o_t with an MLP
  (the reference's IMPALA/U-Net world model predicts pixels). Frames take `latent_forward` below.
- the reference's inverse model also sees a few past observations; here those are `frame_stack`.
- its stage 3 fine-tunes with online RL; offline, the decoder is supervised on the labeled data.

LAOM (Nikulin et al. 2025, "Latent Action Learning Requires Supervision in the Presence of
Distractors", dunnolab/laom: `train_laom.py`, `train_laom_labels.py`, `src/nn.py`) as options:
- `quantize=false` keeps the latent continuous.
- `action_loss` > 0 (its labeled_loss_coef: 0.05 in the script's config, 0.001 in its example
  yaml) adds a linear head from the latent to the action on labeled transitions whose gradient
  reaches the inverse model.
- `latent_forward`: one encoder embeds o_t and the inverse model's second observation (its output
  layer-normalized without affine parameters, `embed_norm`, the reference's encoder_norm_out); the
  inverse model reads [e(o_t), e(o_t+k)]; the forward model reads [e(o_t) detached, z_t] and
  regresses a target encoder's embedding of o_t+1. The target is an EMA of the encoder, moved after
  each optimizer step by `target_tau` (0.01 as the script's config; its yaml has 0.001). Nothing
  is reconstructed, so the encoder may be an image encoder (`encoder=impala_small`).
- `future_offset` K > 1: the inverse model's second observation is o_t+k, k uniform in 1..K (the
  reference's future_obs_offset: 1 in the script, 10 in the yaml); the forward model still predicts
  o_t+1, and the policy and the decoder read the one-step latent of (o_t, o_t+1), as the
  reference's behaviour cloning labels its data.
The LAOM preset: `--set latent_forward=true --set quantize=false --set action_loss=0.05
--set future_offset=10 --set frame_stack=3 --set num_latents=16` (a 256-wide latent, as the
script's latent_action_dim). Departures from LAOM: its heads are MLPs whose blocks re-read their
inputs, here plain MLPs (`idm_hidden_dims`, `fdm_hidden_dims`); its encoder is its own IMPALA-style
stack, here `encoder` (OGBench's); its target copies the whole model and reads only the encoder,
here the encoder alone; the labeled loss reads the labeled rows of each batch, where it draws a
separate labeled batch; k is drawn up to the steps left in the episode, where it starts only where
t+K fits; no learning-rate warm-up and decay.
"""

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from autodidact.core.config import check, check_common, opt
from autodidact.core.errors import UserError
from autodidact.data.sampler import GoalConfig
from autodidact.methods.base import Method, ObservationConfig
from autodidact.nn import MLP, Linear, ema_update


@dataclass
class LAPOConfig(ObservationConfig):
    lr: float = opt(3e-4, "Adam learning rate (one optimizer over every network)")
    batch_size: int = opt(128, "transitions per gradient step (the reference's stage 1 and 2 batch)")
    idm_hidden_dims: tuple[int, ...] = opt((512, 512), "latent inverse dynamics MLP widths")
    fdm_hidden_dims: tuple[int, ...] = opt((512, 512), "forward dynamics MLP widths")
    actor_hidden_dims: tuple[int, ...] = opt((512, 512, 512), "latent policy MLP widths")
    decoder_hidden_dims: tuple[int, ...] = opt((256, 256), "latent-to-action decoder MLP widths")
    num_latents: int = opt(4, "quantized latents per action (the reference's num_discrete_latents)")
    num_codes: int = opt(64, "codebook entries each latent chooses among")
    code_dim: int = opt(16, "dimension of one code")
    commitment: float = opt(0.05, "VQ commitment cost: pulls the inverse model's output to its code")
    quantize: bool = opt(True, "quantize latent actions (LAPO); false keeps them continuous, as LAOM")
    latent_forward: bool = opt(False, "LAOM's latent forward prediction: one encoder embeds o_t and o_t+k, and the "
                               "forward model predicts a target encoder's embedding of o_t+1 instead of the next "
                               "state (what lapo needs to read frames)")
    future_offset: int = opt(1, "the inverse model reads (o_t, o_t+k), k uniform in 1..future_offset within the "
                             "episode (LAOM's future_obs_offset); the forward model still predicts o_t+1")
    target_tau: float = opt(0.01, "rate of the target encoder's EMA after each step (latent_forward; LAOM's "
                            "target_tau)")
    embed_norm: bool = opt(True, "layer-normalize the embedding, without affine parameters (latent_forward; "
                           "LAOM's encoder_norm_out); on flat state vectors, set state_encoder_dims or turn it "
                           "off, as normalizing a few raw coordinates discards most of them")
    action_loss: float = opt(0.0, "weight of LAOM's supervised loss: a linear head reads the action off the "
                             "latent on labeled transitions, its gradient shaping the inverse model (0: off)")
    discount: float = opt(0.99, "only used when actor goals are sampled with geometric offsets")
    actor_goals: GoalConfig = opt(GoalConfig(p_trajgoal=1.0), "how the goal each latent action is cloned towards is drawn")

    def __post_init__(self):
        check_common(self)
        for k in ("num_latents", "num_codes", "code_dim"):
            check(getattr(self, k) >= 1, k, f"must be >= 1, got {getattr(self, k)}")
        check(self.commitment >= 0, "commitment", f"must be >= 0, got {self.commitment}")
        check(self.action_loss >= 0, "action_loss", f"must be >= 0, got {self.action_loss}")
        check(self.future_offset >= 1, "future_offset", f"must be >= 1, got {self.future_offset}")
        check(0.0 < self.target_tau <= 1.0, "target_tau", f"must be in (0, 1], got {self.target_tau}")


class VectorQuantizer(nn.Module):
    """[B, num_latents * code_dim] -> nearest codes (straight-through), the VQ-VAE losses, code ids."""

    def __init__(self, num_latents, num_codes, code_dim):
        super().__init__()
        self.num_latents, self.code_dim = num_latents, code_dim
        self.codebook = nn.Parameter(torch.empty(num_codes, code_dim).uniform_(-1.0 / num_codes, 1.0 / num_codes))

    def forward(self, z_e):
        flat = z_e.reshape(-1, self.code_dim)
        ids = torch.cdist(flat.detach(), self.codebook.detach()).argmin(-1)
        codes = self.codebook[ids]
        codebook_loss = F.mse_loss(codes, flat.detach())
        commit_loss = F.mse_loss(flat, codes.detach())
        z_q = (flat + (codes - flat).detach()).reshape(z_e.shape)  # straight-through gradient to z_e
        return z_q, codebook_loss, commit_loss, ids.reshape(len(z_e), self.num_latents)


class LAPO(Method):
    name = "lapo"
    summary = "latent action policies: VQ latent inverse + forward model, latent goal-conditioned BC, decoder on the labeled part"
    paper = "Schmidt & Jiang 2024 (LAPO)"
    reference = "schmidtdominik/LAPO"
    Config = LAPOConfig
    learns_from_unlabeled = True

    def __init__(self, cfg: LAPOConfig, obs_shape, action_dim):
        super().__init__(cfg, obs_shape, action_dim)
        if cfg.encoder is not None and not cfg.latent_forward:
            raise UserError("lapo reads state vectors here: its forward model predicts the next state, not frames; "
                            "add --set latent_forward=true (LAOM's prediction in a learned embedding), or label "
                            "frames with `autodidact label --set encoder=impala_small`")
        latent = cfg.num_latents * cfg.code_dim
        if cfg.latent_forward:
            # LAOM: one encoder embeds both observations the inverse model reads.
            self.obs_encoder = self.make_encoder()
            embed_dim = self.obs_encoder.out_dim
            self.embed_norm = nn.LayerNorm(embed_dim, elementwise_affine=False) if cfg.embed_norm else nn.Identity()
            self.idm = MLP(2 * embed_dim, cfg.idm_hidden_dims, latent)
        else:
            # The inverse model reads [enc(o_t), enc(o_t+1)] and the forward model [enc(o_t), z]; on flat
            # states the encoders are the vectors themselves (a pretrained or MLP encoder embeds them).
            self.idm_encoder = self.gc_encoder(state=True, goal=True)
            self.idm = MLP(self.idm_encoder.out_dim, cfg.idm_hidden_dims, latent)
        self.quantizer = VectorQuantizer(cfg.num_latents, cfg.num_codes, cfg.code_dim) if cfg.quantize else None
        # LAOM's supervision: only built when used, so every network here is one the loss trains.
        self.action_head = Linear(latent, action_dim) if cfg.action_loss > 0 else None
        if cfg.latent_forward:
            # Reads the embedding of o_t detached, as the reference: only the inverse model and the
            # target shape the embedding, so the forward model cannot pull it towards the trivial.
            self.fdm = MLP(embed_dim + latent, cfg.fdm_hidden_dims, embed_dim)
            self.target_encoder = copy.deepcopy(self.obs_encoder).requires_grad_(False)
        else:
            self.fdm_encoder = self.make_encoder()
            self.fdm = MLP(self.fdm_encoder.out_dim + latent, cfg.fdm_hidden_dims, self.obs_dim)
        self.actor_encoder = self.gc_encoder(concat=True)
        self.actor = MLP(self.actor_encoder.out_dim, cfg.actor_hidden_dims, latent)
        self.decoder = MLP(latent, cfg.decoder_hidden_dims, action_dim)
        self.optimizer = self.make_optimizer(p for name, p in self.named_parameters()
                                             if not name.startswith("target_"))

    def targets(self):
        return [(self.target_encoder, self.obs_encoder)] if self.cfg.latent_forward else []

    def update_targets(self):
        for target, online in self.targets():
            ema_update(target, online, self.cfg.target_tau)

    def update(self, batch):
        # The reference moves its target after the optimizer step, towards the new weights.
        loss, info = self.loss(batch)
        self.optimize(loss)
        self.update_targets()
        return info

    def embed(self, observations, target=False):
        """The (target) encoder's normalized embedding of observations (latent_forward)."""
        return self.embed_norm((self.target_encoder if target else self.obs_encoder)(observations))

    def _infer(self, observations, later_observations):
        """(z, codebook loss, commitment loss, code ids, embedding of `observations` or None)."""
        embedding = None
        if self.cfg.latent_forward:
            # One encoder pass over both halves, as the reference does.
            embedding, later = self.embed(torch.cat([observations, later_observations])).chunk(2)
            z = self.idm(torch.cat([embedding, later], -1))
        else:
            z = self.idm(self.idm_encoder(observations, later_observations))
        if self.quantizer is None:
            return z, z.new_zeros(()), z.new_zeros(()), None, embedding
        return (*self.quantizer(z), embedding)

    def latent_actions(self, observations, next_observations):
        """(z_t, VQ codebook loss, commitment loss, code ids) of the transitions; without
        quantization z_t is the inverse model's output, the losses 0 and the ids None."""
        return self._infer(observations, next_observations)[:4]

    def loss(self, batch):
        cfg = self.cfg
        obs, next_obs = batch["observations"], batch["next_observations"]
        # LAOM's multi-step inverse model reads o_t+k (the sampler draws k); the forward model
        # still predicts o_t+1.
        later = batch.get("future_observations", next_obs)
        z, codebook_loss, commit_loss, ids, embedding = self._infer(obs, later)
        # Stage 1: the latent must explain the change the forward model cannot guess from o_t alone.
        if cfg.latent_forward:
            with torch.no_grad():
                target_embedding = self.embed(next_obs, target=True)
            fdm_loss = F.mse_loss(self.fdm(torch.cat([embedding.detach(), z], -1)), target_embedding)
        else:
            s, s_next = obs.reshape(len(obs), -1).float(), next_obs.reshape(len(obs), -1).float()
            fdm_loss = F.mse_loss(self.fdm(torch.cat([self.fdm_encoder(obs), z], -1)), s_next - s)
        if later is next_obs:
            target = z.detach()
        else:
            # The policy and the decoder read the one-step latent, as the reference labels its
            # behaviour cloning data with (o_t, o_t+1).
            with torch.no_grad():
                target = self.latent_actions(obs, next_obs)[0]
        # Stage 2: goal-conditioned behaviour cloning of the latent action.
        actor_loss = F.mse_loss(self.actor(self.actor_encoder(obs, batch["actor_goals"])), target)
        # Stage 3: decode latents to actions where the action is known.
        labeled = batch["action_labeled"]

        def labeled_mse(pred):
            return (((pred - batch["actions"]) ** 2).mean(-1) * labeled).sum() / labeled.sum().clamp_min(1.0)

        decoder_loss = labeled_mse(self.decoder(target))
        loss = fdm_loss + codebook_loss + cfg.commitment * commit_loss + actor_loss + decoder_loss
        info = {"fdm/loss": fdm_loss.detach(), "actor/loss": actor_loss.detach(),
                "decoder/loss": decoder_loss.detach(), "decoder/labeled": labeled.mean()}
        if ids is not None:
            info.update({"vq/codebook_loss": codebook_loss.detach(), "vq/commit_loss": commit_loss.detach(),
                         "vq/codes_used": torch.zeros(cfg.num_codes, device=ids.device)
                         .index_fill_(0, ids.reshape(-1), 1.0).mean()})
        if self.action_head is not None:
            # LAOM: the action, where known, supervises the latent itself (not detached).
            supervised = labeled_mse(self.action_head(z))
            loss = loss + cfg.action_loss * supervised
            info["idm/action_loss"] = supervised.detach()
        return loss, info

    def act(self, observations, goals, temperature=0.0, generator=None):
        # Deterministic: a latent regressed by squared error has no spread to sample from.
        return self.decoder(self.actor(self.actor_encoder(observations, goals)))
