"""Typed method configs and `--set key=value` overrides.

A method's config is a dataclass whose fields are declared with `opt(default, help)`, so every
field carries its one-line explanation (shown by `autodidact methods --config NAME`). Values are
checked in `__post_init__`; every problem is a one-line `UserError` naming the key and valid range.
"""

import dataclasses
import json
import math
import typing

from autodidact.errors import UserError


def opt(default, help):
    """A config field with a one-line explanation."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def describe(cfg_cls):
    """[(name, type name, default, help)] for every field."""
    hints = typing.get_type_hints(cfg_cls)
    out = []
    for f in dataclasses.fields(cfg_cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out.append((f.name, _type_name(hints[f.name]), default, f.metadata.get("help", "")))
    return out


def _type_name(t):
    return getattr(t, "__name__", str(t).replace("typing.", ""))


def parse_value(key, text, t):
    """Parse `text` as type `t` (int, float, bool, str, tuple[int, ...], Optional[...])."""
    origin = typing.get_origin(t)
    args = typing.get_args(t)
    if origin is typing.Union:  # Optional[X]
        if text.lower() in ("none", "null", ""):
            return None
        t = next(a for a in args if a is not type(None))
        return parse_value(key, text, t)
    try:
        if t is bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if t is int:
            return int(text)
        if t is float:
            value = float(text)
            # Fix (issue 6): 'inf'/'nan' parsed fine and slipped past range checks written as
            # `x > 0` (lr=inf trained to NaN weights). No config float is meaningful non-finite.
            if not math.isfinite(value):
                raise UserError(f"--set {key}={text}: expected a finite float")
            return value
        if t is str:
            return text
        if origin is tuple:
            items = [s for s in text.replace("(", "").replace(")", "").split(",") if s.strip()]
            return tuple(args[0](s) for s in items)
    except ValueError:
        pass
    raise UserError(f"--set {key}={text}: expected {_type_name(t)}")


def apply_overrides(cfg, overrides):
    """Return a copy of `cfg` with `overrides` ({key: value} or ["key=value", ...]) applied."""
    if isinstance(overrides, (list, tuple)):
        pairs = {}
        for item in overrides:
            if "=" not in item:
                raise UserError(f"--set {item}: expected key=value")
            k, v = item.split("=", 1)
            pairs[k.strip()] = v.strip()
        overrides = pairs
    hints = typing.get_type_hints(type(cfg))
    names = [f.name for f in dataclasses.fields(cfg)]
    changes = {}
    for k, v in overrides.items():
        if k not in names:
            raise UserError(f"unknown config key '{k}' for {type(cfg).__name__}; valid keys: {', '.join(names)}")
        changes[k] = parse_value(k, v, hints[k]) if isinstance(v, str) else _coerce(k, v, hints[k])
    return dataclasses.replace(cfg, **changes)


def _coerce(key, value, t):
    """Values from JSON (a saved config): lists back to tuples, ints to floats."""
    if value is None:
        return None
    if typing.get_origin(t) is typing.Union:
        t = next(a for a in typing.get_args(t) if a is not type(None))
    if typing.get_origin(t) is tuple:
        return tuple(value)
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if t in (int, float, bool, str) and not isinstance(value, t):
        raise UserError(f"config key '{key}': expected {_type_name(t)}, got {json.dumps(value)}")
    return value


def to_dict(cfg):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def from_dict(cfg_cls, data):
    return apply_overrides(cfg_cls(), data)


def check(cond, key, msg):
    """Raise a one-line UserError for `key` unless `cond`."""
    if not cond:
        raise UserError(f"config key '{key}': {msg}")
