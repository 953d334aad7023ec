"""Method registry: a plain dict from CLI name to class."""

from autodidact.errors import UserError
from autodidact.methods.gcbc import GCBC

METHODS = {cls.name: cls for cls in (GCBC,)}

# One-line summaries for `autodidact methods`.
SUMMARIES = {
    "gcbc": "goal-conditioned behavioural cloning on hindsight-relabeled future states (OGBench GCBC)",
}


def get_method(name):
    if name not in METHODS:
        raise UserError(f"unknown method '{name}'; valid methods: {', '.join(sorted(METHODS))}")
    return METHODS[name]
