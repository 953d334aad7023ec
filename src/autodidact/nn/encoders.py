"""Observation encoders: flat state vectors, or camera frames through OGBench's IMPALA encoder.

Every network of a method reads (observation, goal) through a `GCEncoder`, OGBench's helper of
the same name (`impls/utils/encoders.py`): the concatenation of `state(s)`, `goal(g)` and
`concat([s; g])`, each part present or not. On state vectors the parts are `Flat` (no parameters),
so a state-based network sees exactly the flat concatenation it always did. On frames
([..., H, W, C] uint8, channels last as OGBench stores them) each part is its own IMPALA encoder;
`[s; g]` stacks the two frames along channels (early fusion).

`ImpalaEncoder` follows the reference layer for layer, so parameter shapes match and OGBench's
published visual hyperparameters transfer: per stack a 3x3 conv, a 3x3/2 max-pool with flax's
'SAME' padding (one extra row and column on the far side, not torch's symmetric padding), then
residual blocks of relu-conv-relu-conv; relu; flatten in (H, W, C) order; a 512-unit GELU layer.
Convolutions use Xavier-uniform weights and zero biases, as flax's `xavier_uniform` and default
bias init. Frames are scaled to [0, 1] inside the encoder, so batches stay uint8 until then.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from autodidact.nn.layers import MLP, xavier_


class Flat(nn.Module):
    """[..., *shape] -> [..., prod(shape)] float32: how state vectors (of any shape) enter an MLP."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)
        self.out_dim = math.prod(shape)

    def forward(self, x):
        return x.reshape(*x.shape[:x.dim() - len(self.shape)], self.out_dim).float()


def _conv(in_ch, out_ch):
    conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
    xavier_(conv.weight, fan_in=in_ch * 9, fan_out=out_ch * 9)
    nn.init.zeros_(conv.bias)
    return conv


def _same_pad(n, window=3, stride=2):
    """flax's 'SAME' padding (low, high) of one axis: the output has ceil(n / stride) positions and
    an odd total padding puts the extra on the far side (torch's symmetric padding shifts the
    pooling windows by one for even sizes). -inf padding never wins the max."""
    total = max((-(-n // stride) - 1) * stride + window - n, 0)
    return total // 2, total - total // 2


class ResnetStack(nn.Module):
    """conv 3x3 -> max-pool 3x3 stride 2 ('SAME') -> `num_blocks` x (relu, conv, relu, conv, + skip)."""

    def __init__(self, in_ch, features, num_blocks):
        super().__init__()
        self.conv = _conv(in_ch, features)
        self.blocks = nn.ModuleList(nn.Sequential(nn.ReLU(), _conv(features, features), nn.ReLU(),
                                                  _conv(features, features)) for _ in range(num_blocks))

    def forward(self, x):
        x = self.conv(x)
        # 'SAME' without a padded copy: the low padding is torch's (implicit -inf), and ceil_mode
        # adds the far side's partial window, which is where flax puts the extra row and column.
        x = F.max_pool2d(x, 3, stride=2, padding=(_same_pad(x.shape[-2])[0], _same_pad(x.shape[-1])[0]), ceil_mode=True)
        for block in self.blocks:
            x = x + block(x)
        return x


class ImpalaEncoder(nn.Module):
    """OGBench's ImpalaEncoder: frames [B, H, W, C] (uint8 or float in [0, 255]) -> [B, 512]."""

    def __init__(self, frame_shape, stack_sizes=(16, 32, 32), num_blocks=2, mlp_hidden_dims=(512,),
                 layer_norm=False):
        super().__init__()
        h, w, c = frame_shape
        stacks, ch = [], c
        for features in stack_sizes:
            stacks.append(ResnetStack(ch, features, num_blocks))
            ch = features
            h, w = (h + 1) // 2, (w + 1) // 2  # 'SAME' pooling with stride 2
        self.stacks = nn.Sequential(*stacks)
        # The reference's LayerNorm here normalizes over the last (channel) axis of each position.
        self.conv_norm = nn.LayerNorm(ch, eps=1e-6) if layer_norm else None
        self.mlp = MLP(h * w * ch, mlp_hidden_dims, layer_norm=layer_norm, activate_final=True)
        self.out_dim = self.mlp.out_dim

    def forward(self, x):
        lead = x.shape[:-3]
        x = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2).float() / 255.0
        h = torch.relu(self.stacks(x)).permute(0, 2, 3, 1)  # back to (H, W, C), the reference's order
        if self.conv_norm is not None:
            h = self.conv_norm(h)
        return self.mlp(h.reshape(h.shape[0], -1)).reshape(*lead, -1)


# OGBench's `encoder_modules` (impala_debug is its tiny test configuration).
ENCODERS = {
    "impala": dict(),
    "impala_small": dict(num_blocks=1),
    "impala_large": dict(stack_sizes=(64, 128, 128), mlp_hidden_dims=(1024,)),
    "impala_debug": dict(num_blocks=1, stack_sizes=(4, 4)),
}


def is_image_shape(shape):
    """Frames are [H, W, C] with a few channels; anything else is a state vector (or a grid of one)."""
    return len(shape) == 3 and shape[-1] <= 16 and shape[0] >= 8 and shape[1] >= 8


class StateEncoder(nn.Module):
    """State vectors -> an embedding: `Flat`, then an MLP whose every layer is GELU-activated and
    layer-normalized (the last too, so downstream networks read a normalized representation). The
    state counterpart of the IMPALA encoder, for encoders pretrained on state observations."""

    def __init__(self, shape, dims):
        super().__init__()
        self.flat = Flat(shape)
        self.mlp = MLP(self.flat.out_dim, tuple(dims), layer_norm=True, activate_final=True)
        self.out_dim = self.mlp.out_dim

    def forward(self, x):
        return self.mlp(self.flat(x))


def make_encoder(name, shape, channels=1, state_dims=()):
    """One encoder of observations shaped `shape`; `channels` > 1 reads that many observations
    stacked along the last axis (early fusion of [s; g]). `name` None: state vectors, `Flat`, or a
    `StateEncoder` of widths `state_dims` when given."""
    if name is None:
        flat_shape = (*shape[:-1], shape[-1] * channels)
        return StateEncoder(flat_shape, state_dims) if state_dims else Flat(flat_shape)
    h, w, c = shape
    return ImpalaEncoder((h, w, c * channels), **ENCODERS[name])


class GCEncoder(nn.Module):
    """(observations, goals) -> concat(state(s), goal(g), concat([s; g])), the parts that exist.
    With `encoded_goal_dim` the goal is already a representation of that width (HIQL's subgoal
    rep, HILP's skill) and is appended as it is. `goals=None` encodes the state alone."""

    def __init__(self, state=None, goal=None, concat=None, encoded_goal_dim=0):
        super().__init__()
        self.state, self.goal, self.concat = state, goal, concat
        self.encoded_goal_dim = encoded_goal_dim
        self.out_dim = sum(m.out_dim for m in (state, goal, concat) if m is not None) + encoded_goal_dim

    def forward(self, observations, goals=None):
        reps = []
        if self.state is not None:
            reps.append(self.state(observations))
        if goals is not None:
            if self.encoded_goal_dim:
                reps.append(goals)
            if self.goal is not None:
                reps.append(self.goal(goals))
            if self.concat is not None:
                reps.append(self.concat(torch.cat([observations, goals], -1)))
        return reps[0] if len(reps) == 1 else torch.cat(reps, -1)
