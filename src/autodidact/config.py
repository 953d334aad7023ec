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


def check_common(cfg):
    """Range checks for the fields method configs share, applied to those `cfg` has. Each method's
    `__post_init__` calls this, then checks its own fields."""
    has = {f.name for f in dataclasses.fields(cfg)}
    if "lr" in has:
        check(cfg.lr > 0, "lr", f"must be > 0, got {cfg.lr}")
    if "batch_size" in has:
        check(cfg.batch_size >= 1, "batch_size", f"must be >= 1, got {cfg.batch_size}")
    for k in sorted(n for n in has if n.endswith("hidden_dims")):
        dims = getattr(cfg, k)
        check(len(dims) >= 1 and min(dims) >= 1, k, f"needs at least one positive width, got {dims}")
    if "discount" in has:
        check(0.0 <= cfg.discount < 1.0, "discount", f"must be in [0, 1), got {cfg.discount}")
    if "tau" in has:
        check(0.0 < cfg.tau <= 1.0, "tau", f"must be in (0, 1], got {cfg.tau}")
    if "expectile" in has:
        check(0.0 < cfg.expectile < 1.0, "expectile", f"must be in (0, 1), got {cfg.expectile}")
    for k in ("alpha", "low_alpha", "high_alpha"):
        if k in has:
            check(getattr(cfg, k) >= 0, k, f"must be >= 0, got {getattr(cfg, k)}")
    if "actor_loss" in has:
        check(cfg.actor_loss in ("ddpgbc", "awr"), "actor_loss", f"must be 'ddpgbc' or 'awr', got '{cfg.actor_loss}'")
    for prefix in ("value", "actor"):
        keys = [f"{prefix}_p_{k}goal" for k in ("cur", "traj", "random")]
        if not set(keys) <= has:
            continue
        for k in keys:
            v = getattr(cfg, k)
            check(0.0 <= v <= 1.0, k, f"must be in [0, 1], got {v}")
        total = sum(getattr(cfg, k) for k in keys)
        check(abs(total - 1.0) < 1e-6, f"{prefix}_p_*goal", f"{' + '.join(keys)} must sum to 1, got {total:g}")
