"""The methods, by CLI name: a plain registry. Adding a method means one file with one `Method`
subclass and one line here."""

from autodidact.core.errors import UserError
from autodidact.methods.base import GoalPolicy, Method
from autodidact.methods.beso import BESO
from autodidact.methods.crl import CRL
from autodidact.methods.gcbc import GCBC
from autodidact.methods.gciql import GCIQL
from autodidact.methods.gcivl import GCIVL
from autodidact.methods.hilp import HILP
from autodidact.methods.hiql import HIQL
from autodidact.methods.lapo import LAPO
from autodidact.methods.play_gcbc import PlayGCBC
from autodidact.methods.play_lmp import PlayLMP
from autodidact.methods.qrl import QRL

METHODS: dict[str, type[Method]] = {cls.name: cls for cls in (
    GCBC, GCIVL, GCIQL, QRL, CRL, HIQL, HILP, PlayLMP, PlayGCBC, BESO, LAPO)}


def names():
    return list(METHODS)


def get_method(name) -> type[Method]:
    """The method class registered as `name`; an unknown name is a one-line UserError."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise UserError(f"unknown method '{name}'; valid methods: {', '.join(METHODS)}") from None


__all__ = ["METHODS", "GoalPolicy", "Method", "get_method", "names"]
