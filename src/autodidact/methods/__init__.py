"""Method registry.

A method is one module in this package defining one `Method` subclass whose `name` is the CLI
name (`play-lmp` lives in `play_lmp.py`). Modules are found by name and imported on demand, so
adding a method means adding a file, and `import autodidact` stays fast.
"""

import importlib
import pkgutil

from autodidact.errors import UserError
from autodidact.methods.base import Method

_NOT_METHODS = {"base"}


def _module_names():
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_METHODS
                  and not m.name.startswith("_"))


def _load(module_name):
    module = importlib.import_module(f"{__name__}.{module_name}")
    for obj in vars(module).values():
        # A module's method is its named Method subclass; unnamed ones are shared bases.
        if isinstance(obj, type) and issubclass(obj, Method) and obj.name and obj.__module__ == module.__name__:
            return obj
    return None


def available():
    """{name: class} of every method, imported now."""
    out = {}
    for m in _module_names():
        cls = _load(m)
        if cls is not None:
            out[cls.name] = cls
    return out


def names():
    return [m.replace("_", "-") for m in _module_names()]


def get_method(name):
    module_name = str(name).replace("-", "_")
    if module_name not in _module_names():
        raise UserError(f"unknown method '{name}'; valid methods: {', '.join(names())}")
    cls = _load(module_name)
    if cls is None or cls.name != name:
        raise UserError(f"unknown method '{name}'; valid methods: {', '.join(names())}")
    return cls
