"""The methods, by CLI name: a plain registry. Adding a method means one file with one `Method`
subclass and one line here. Online fine-tuning methods (`autodidact finetune`) learn from an
environment, not from a dataset alone, and encoder objectives (`autodidact pretrain`) train an
encoder, not a policy: each kind has a registry of its own."""

from autodidact.core.errors import UserError
from autodidact.methods.barlow import Barlow
from autodidact.methods.base import GoalPolicy, Method
from autodidact.methods.beso import BESO
from autodidact.methods.byol import BYOL
from autodidact.methods.crl import CRL
from autodidact.methods.dynamo import DynaMo
from autodidact.methods.explore import ExPLORe
from autodidact.methods.gcbc import GCBC
from autodidact.methods.gciql import GCIQL
from autodidact.methods.gcivl import GCIVL
from autodidact.methods.hilp import HILP
from autodidact.methods.hiql import HIQL
from autodidact.methods.idm import IDM
from autodidact.methods.lapo import LAPO
from autodidact.methods.play_gcbc import PlayGCBC
from autodidact.methods.play_lmp import PlayLMP
from autodidact.methods.qrl import QRL
from autodidact.methods.rlpd import RLPD
from autodidact.methods.skill_vae import SkillVAE
from autodidact.methods.spr import SPR
from autodidact.methods.supe import SUPE
from autodidact.methods.vicreg import VICReg

METHODS: dict[str, type[Method]] = {cls.name: cls for cls in (
    GCBC, GCIVL, GCIQL, QRL, CRL, HIQL, HILP, PlayLMP, PlayGCBC, BESO, LAPO, SkillVAE)}

FINETUNE_METHODS = {cls.name: cls for cls in (RLPD, ExPLORe, SUPE)}

OBJECTIVES: dict[str, type[Method]] = {cls.name: cls for cls in (SPR, DynaMo, BYOL, Barlow, VICReg, IDM)}


def names():
    return list(METHODS)


def get_method(name) -> type[Method]:
    """The method class registered as `name`; an unknown name is a one-line UserError."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise UserError(f"unknown method '{name}'; valid methods: {', '.join(METHODS)}") from None


def get_objective(name) -> type[Method]:
    """The encoder objective registered as `name`; an unknown name is a one-line UserError."""
    try:
        return OBJECTIVES[name]
    except (KeyError, TypeError):
        raise UserError(f"unknown objective '{name}'; valid objectives: {', '.join(OBJECTIVES)}") from None


def get_trainable(name) -> type[Method]:
    """What a run directory's `method` names: a method or an encoder objective."""
    return OBJECTIVES[name] if name in OBJECTIVES else get_method(name)


def get_finetune_method(name):
    """The online fine-tuning method registered as `name`; an unknown name is a one-line UserError."""
    try:
        return FINETUNE_METHODS[name]
    except (KeyError, TypeError):
        raise UserError(f"unknown fine-tuning method '{name}'; valid methods: {', '.join(FINETUNE_METHODS)}") from None


__all__ = ["FINETUNE_METHODS", "METHODS", "OBJECTIVES", "get_finetune_method", "get_objective", "get_trainable",
           "GoalPolicy", "Method", "get_method", "names"]
