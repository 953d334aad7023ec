"""Network building blocks shared by every method: plain `torch.nn` modules and functions, each
written once. Nothing here knows about CPU vendors or kernels (see `autodidact.kernels`)."""

from autodidact.nn.encoders import ENCODERS, Flat, GCEncoder, ImpalaEncoder, StateEncoder, make_encoder
from autodidact.nn.heads import GaussianActor, GCValue, LogisticMixtureActor, logistic_mixture_log_prob
from autodidact.nn.layers import ACTIVATIONS, MLP, EnsembleLayerNorm, EnsembleLinear, Linear
from autodidact.nn.losses import (actor_info, awr_loss, awr_weights, ddpgbc_loss, expectile_loss, expectile_td_loss,
                                  frozen, gaussian_log_prob, policy_actions, value_info)
from autodidact.nn.optim import adam, ema_update

__all__ = ["ENCODERS", "Flat", "GCEncoder", "ImpalaEncoder", "StateEncoder", "make_encoder", "ACTIVATIONS", "MLP", "EnsembleLayerNorm", "EnsembleLinear", "GCValue", "GaussianActor", "Linear",
           "LogisticMixtureActor", "actor_info", "adam", "awr_loss", "awr_weights", "ddpgbc_loss", "ema_update",
           "expectile_loss", "expectile_td_loss", "frozen", "gaussian_log_prob", "logistic_mixture_log_prob",
           "policy_actions", "value_info"]
