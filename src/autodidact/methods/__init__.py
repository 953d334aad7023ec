"""The methods, by CLI name: a plain registry. Adding a method means one file with one `Method`
subclass and one line here. Online fine-tuning methods (`autodidact finetune`) learn from an
environment, not from a dataset alone, and have a registry of their own."""

from autodidact.core.errors import UserError
from autodidact.methods.base import GoalPolicy, Method
from autodidact.methods.beso import BESO
from autodidact.methods.crl import CRL
from autodidact.methods.explore import ExPLORe
from autodidact.methods.gcbc import GCBC
from autodidact.methods.gciql import GCIQL
from autodidact.methods.gcivl import GCIVL
from autodidact.methods.hilp import HILP
from autodidact.methods.hiql import HIQL
from autodidact.methods.lapo import LAPO
from autodidact.methods.play_gcbc import PlayGCBC
from autodidact.methods.play_lmp import PlayLMP
from autodidact.methods.qrl import QRL
from autodidact.methods.rlpd import RLPD
from autodidact.methods.skill_vae import SkillVAE
from autodidact.methods.supe import SUPE

METHODS: dict[str, type[Method]] = {cls.name: cls for cls in (
    GCBC, GCIVL, GCIQL, QRL, CRL, HIQL, HILP, PlayLMP, PlayGCBC, BESO, LAPO, SkillVAE)}

FINETUNE_METHODS = {cls.name: cls for cls in (RLPD, ExPLORe, SUPE)}


def names():
    return list(METHODS)


def get_method(name) -> type[Method]:
    """The method class registered as `name`; an unknown name is a one-line UserError."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise UserError(f"unknown method '{name}'; valid methods: {', '.join(METHODS)}") from None


def get_finetune_method(name):
    """The online fine-tuning method registered as `name`; an unknown name is a one-line UserError."""
    try:
        return FINETUNE_METHODS[name]
    except (KeyError, TypeError):
        raise UserError(f"unknown fine-tuning method '{name}'; valid methods: {', '.join(FINETUNE_METHODS)}") from None


__all__ = ["FINETUNE_METHODS", "METHODS", "get_finetune_method", "GoalPolicy", "Method", "get_method", "names"]
