"""A state representation another run starts from: phi(s) (or psi(g)), an encoder followed by an
MLP whose last layer is activated, and the safetensors file that carries it between runs.

`autodidact icvf` writes such a file (methods/icvf.py, from the first head of its multilinear
value); GCIVL's `icvf` setting reads it to initialize its value network.
"""

import json
from pathlib import Path

from torch import nn

from autodidact.core.errors import UserError
from autodidact.nn.encoders import make_encoder
from autodidact.nn.layers import MLP

FILE_FORMAT, FILE_VERSION = "autodidact-icvf", 1


class Representation(nn.Module):
    """phi or psi alone: observations -> [B, hidden_dims[-1]] (an encoder, then an MLP whose last
    layer is activated). What a downstream value network reads, initialized from an ICVF head."""

    def __init__(self, encoder_name, obs_shape, hidden_dims, layer_norm):
        super().__init__()
        self.encoder = make_encoder(encoder_name, tuple(obs_shape))
        self.mlp = MLP(self.encoder.out_dim, hidden_dims, layer_norm=layer_norm, activate_final=True)
        self.out_dim = self.mlp.out_dim

    def forward(self, observations):
        return self.mlp(self.encoder(observations))


def read_representation(path):
    """(metadata with its JSON values decoded, {name: tensor}) of a file `autodidact icvf` wrote."""
    from safetensors import SafetensorError, safe_open
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such ICVF representation file (write one with `autodidact icvf`)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable safetensors file ({exc})") from None
    if meta.get("format") != FILE_FORMAT:
        raise UserError(f"{path}: not an ICVF representation (write one with `autodidact icvf`)")
    if int(meta.get("version", 0)) > FILE_VERSION:
        raise UserError(f"{path}: ICVF file version {meta['version']} is newer than this autodidact reads "
                        f"({FILE_VERSION}); upgrade autodidact")
    decoded = {k: json.loads(meta[k]) for k in ("obs_shape", "hidden_dims", "layer_norm", "encoder")}
    return decoded, tensors
