"""Typed configs and `--set key=value` overrides.

A config is a dataclass whose fields are declared with `opt(default, help)`, so every field carries
its one-line explanation (shown by `autodidact methods --config NAME`). A field may itself be a
config (a nested dataclass, e.g. a method's `value_goals`); its fields are addressed with dots:
`--set value_goals.p_randomgoal=0.3`. Values are checked in `__post_init__`, and every problem is
a one-line `ConfigError` naming the key and the valid range.
"""

import dataclasses
import json
import math
import typing

from autodidact.core.errors import UserError


class ConfigError(UserError):
    """A config value out of range: names the (dotted) key."""

    def __init__(self, key, problem):
        self.key, self.problem = key, problem
        super().__init__(f"config key '{key}': {problem}")


def opt(default, help):
    """A config field with a one-line explanation. Mutable defaults (lists, dicts, nested configs)
    are copied for every instance."""
    if dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: dataclasses.replace(default), metadata={"help": help})
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def check(cond, key, msg):
    """Raise a one-line ConfigError for `key` unless `cond`."""
    if not cond:
        raise ConfigError(key, msg)


def _is_config(t):
    return isinstance(t, type) and dataclasses.is_dataclass(t)


def _default(f):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def describe(cfg_cls, prefix=""):
    """[(dotted name, type name, default, help)] for every field, nested configs expanded."""
    hints = typing.get_type_hints(cfg_cls)
    out = []
    for f in dataclasses.fields(cfg_cls):
        t, help_ = hints[f.name], f.metadata.get("help", "")
        if _is_config(t):
            default = _default(f)
            for name, typ, _, sub_help in describe(t, f"{prefix}{f.name}."):
                value = default
                for part in name[len(prefix) + len(f.name) + 1:].split("."):
                    value = getattr(value, part)
                out.append((name, typ, value, sub_help))
        else:
            out.append((prefix + f.name, _type_name(t), _default(f), help_))
    return out


def keys(cfg_cls):
    return [name for name, *_ in describe(cfg_cls)]


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
            # No config float is meaningful non-finite, and range checks written as `x > 0` let
            # inf through.
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


def _pairs(overrides):
    """{key: value} from a dict, or from ["key=value", ...] (values stay strings)."""
    if isinstance(overrides, dict):
        return overrides
    pairs = {}
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set {item}: expected key=value")
        k, v = item.split("=", 1)
        pairs[k.strip()] = v.strip()
    return pairs


def apply_overrides(cfg, overrides, prefix=""):
    """A copy of `cfg` with `overrides` applied: {key: value} or ["key=value", ...]. Keys of nested
    configs are dotted (`value_goals.p_curgoal`), or a nested config's key maps to a dict of its
    fields (as `to_dict` writes it). Each nested config is rebuilt once with all its changes, so
    checks that relate its fields (probabilities summing to 1) see the final values."""
    hints = typing.get_type_hints(type(cfg))
    names = [f.name for f in dataclasses.fields(cfg)]
    changes, nested = {}, {}
    for k, v in _pairs(overrides).items():
        head, _, rest = k.partition(".")
        if head not in names or (rest and not _is_config(hints[head])):
            valid = ", ".join(keys(type(cfg)))
            raise UserError(f"unknown config key '{prefix}{k}' for {type(cfg).__name__}; valid keys: {valid}")
        if _is_config(hints[head]):
            if rest:
                nested.setdefault(head, {})[rest] = v
            elif isinstance(v, dict):
                nested.setdefault(head, {}).update(v)
            elif dataclasses.is_dataclass(v):
                changes[head] = v
            else:
                raise UserError(f"config key '{prefix}{k}' is a group of settings; set its fields, e.g. "
                                f"{prefix}{k}.{dataclasses.fields(hints[head])[0].name}=...")
        else:
            changes[k] = parse_value(prefix + k, v, hints[k]) if isinstance(v, str) else _coerce(prefix + k, v, hints[k])
    for head, sub in nested.items():
        changes[head] = apply_overrides(getattr(cfg, head), sub, prefix=f"{prefix}{head}.")
    try:
        return dataclasses.replace(cfg, **changes)
    except ConfigError as exc:
        if prefix:  # name the key as the user writes it
            raise ConfigError(prefix + exc.key, exc.problem) from None
        raise


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
    """Plain JSON-ready data: nested configs as dicts, tuples as lists."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = to_dict(v) if dataclasses.is_dataclass(v) else list(v) if isinstance(v, tuple) else v
    return out


def from_dict(cfg_cls, data):
    return apply_overrides(cfg_cls(), data)


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
    if getattr(cfg, "p_aug", None) is not None:
        check(0.0 <= cfg.p_aug <= 1.0, "p_aug", f"must be in [0, 1], got {cfg.p_aug}")
    if getattr(cfg, "frame_stack", None) is not None:
        check(cfg.frame_stack >= 1, "frame_stack", f"must be >= 1, got {cfg.frame_stack}")
    if "state_encoder_dims" in has:
        check(all(d >= 1 for d in cfg.state_encoder_dims), "state_encoder_dims",
              f"widths must be positive, got {cfg.state_encoder_dims}")
    if getattr(cfg, "freeze_encoder", False):
        check(bool(cfg.pretrained_encoder), "freeze_encoder",
              "freezes a pretrained encoder, and pretrained_encoder is unset; pass train --encoder RUN")
    if "actor_loss" in has:
        check(cfg.actor_loss in ("ddpgbc", "awr"), "actor_loss", f"must be 'ddpgbc' or 'awr', got '{cfg.actor_loss}'")
