"""Representations another run starts from, and the safetensors files that carry them.

- ICVF's phi(s) / psi(g): an encoder followed by an MLP whose last layer is activated. `autodidact
  icvf` writes the file (methods/icvf.py); GCIVL's `icvf` setting reads it.
- A pretrained observation encoder: `autodidact pretrain` writes RUN/encoder.safetensors, the
  weights of one `make_encoder(encoder, obs_shape, 1, state_dims)` (IMPALA for frames, a
  `StateEncoder` for states); `train --encoder RUN` starts every encoder of a method from it.
"""

import json
from pathlib import Path

from torch import nn

from autodidact.core.errors import UserError
from autodidact.nn.encoders import make_encoder
from autodidact.nn.layers import MLP

FILE_FORMAT, FILE_VERSION = "autodidact-icvf", 1
ENCODER_FORMAT, ENCODER_VERSION = "autodidact-encoder", 1
ENCODER_FILE = "encoder.safetensors"  # inside a pretrain run


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


def _read_safetensors(path, what, writer):
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable safetensors {what} ({exc}); write it again with `{writer}`") from None


def _check_format(path, meta, fmt, version, what, short, writer):
    if meta.get("format") != fmt:
        raise UserError(f"{path}: not {what} (write one with `{writer}`)")
    if int(meta.get("version", 0)) > version:
        raise UserError(f"{path}: {short} file version {meta['version']} is newer than this autodidact reads "
                        f"({version}); upgrade autodidact")


def encoder_file(encoder, obs_shape, encoder_name, state_dims, **extra):
    """(tensors, metadata) of a pretrained encoder file: `encoder`'s weights, and what rebuilds it
    (`make_encoder(encoder_name, obs_shape, 1, state_dims)`). `extra` values are stored as JSON."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    meta = {"format": ENCODER_FORMAT, "version": str(ENCODER_VERSION), "obs_shape": json.dumps(list(obs_shape)),
            "encoder": json.dumps(encoder_name), "state_dims": json.dumps(list(state_dims)),
            **{k: json.dumps(v) for k, v in extra.items()}}
    return tensors, meta


def read_encoder_file(path):
    """(metadata with its JSON values decoded, state_dict) of a pretrained encoder: a file
    `autodidact pretrain` wrote, or the run directory holding it."""
    path = Path(path)
    if path.is_dir():
        if not (path / ENCODER_FILE).is_file():
            raise UserError(f"{path}: no {ENCODER_FILE} in this run; pass a run of `autodidact pretrain` "
                            "(a finished run writes it, or `autodidact pretrain --resume` finishes one)")
        path = path / ENCODER_FILE
    elif not path.is_file():
        raise UserError(f"{path}: no such pretrained encoder (a run directory of `autodidact pretrain`)")
    meta, tensors = _read_safetensors(path, "encoder file", "autodidact pretrain")
    _check_format(path, meta, ENCODER_FORMAT, ENCODER_VERSION, "a pretrained encoder", "encoder", "autodidact pretrain")
    return {k: json.loads(v) for k, v in meta.items() if k not in ("format", "version")}, tensors


def read_representation(path):
    """(metadata with its JSON values decoded, {name: tensor}) of a file `autodidact icvf` wrote."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such ICVF representation file (write one with `autodidact icvf`)")
    meta, tensors = _read_safetensors(path, "ICVF file", "autodidact icvf")
    _check_format(path, meta, FILE_FORMAT, FILE_VERSION, "an ICVF representation", "ICVF", "autodidact icvf")
    decoded = {k: json.loads(meta[k]) for k in ("obs_shape", "hidden_dims", "layer_norm", "encoder")}
    return decoded, tensors
