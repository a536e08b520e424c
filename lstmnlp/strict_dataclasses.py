"""Frozen dataclasses built strictly from nested dicts (parsed YAML): every key must be a field,
every value must fit the field's type hint, and an error names the dotted key and the closest
valid one."""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from typing import Any

from lstmnlp.errors import UserError

# A number in exponent notation without a dot, which YAML 1.1 leaves as text: 1e-4, 5E3, -2e+2.
YAML11_EXPONENT = re.compile(r"[-+]?[0-9]+[eE][-+]?[0-9]+")


def build_dataclass(cls: type, tree: Any, prefix: str = "") -> Any:
    """`cls(**tree)` with nested dataclasses built alike; an unknown key or a value of the wrong
    type is a UserError naming its dotted key (`prefix` + key)."""
    if not isinstance(tree, dict):
        raise UserError(f"{prefix.rstrip('.') or 'recipe'}: expected a mapping of keys")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, raw in tree.items():
        full_key = f"{prefix}{key}"
        if key not in fields:
            raise UserError(_unknown_key_message(full_key, [f"{prefix}{name}" for name in fields]))
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            values[key] = build_dataclass(hint, raw, prefix=f"{full_key}.")
        else:
            values[key] = _coerce(raw, hint, full_key)
    return cls(**values)


def _unknown_key_message(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]}?" if close else f"; valid keys: {', '.join(valid)}"
    return f"{key}: unknown key{hint}"


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against a simple type hint (bool, int, float, str, or X | None)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(option for option in options if option is not type(None))
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise UserError(f"{key}: expected a whole number, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and YAML11_EXPONENT.fullmatch(value.strip()):
            return float(value)  # 1e-4: YAML 1.1 (PyYAML) reads it as text, as it wants a dot (1.0e-4)
        raise UserError(f"{key}: expected a number, got {value!r}")
    if hint is str:
        if value is None:
            return ""
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise UserError(f"{key}: expected text, got {value!r}")
    if hint == list[dict[str, Any]]:
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            return [dict(item) for item in value]
        raise UserError(f"{key}: expected a list of mappings (one per member), got {value!r}")
    raise TypeError(f"unsupported config type {hint!r} for {key}")
