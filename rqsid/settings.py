"""Flat `key=value` settings checked against the dataclass fields they set, before any work starts.

`--set lr=abc` must fail at once with the setting's name, not as a traceback from inside a training
two models later; `max_epochs=1.5` or `max_epochs=true` must not be rounded or read as 1; `models=foo`
must not become ("f", "o", "o"). `typed_value` converts one value to its field's annotated type (int,
float, bool, str, optional, tuple of them, dict) or raises a one-line ValueError; `route` sends each
setting of a flat dict to the one dataclass that has the field.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any


def _fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _convert(kind: Any, value: Any, name: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value, name)
            except ValueError as err:
                errors.append(err)
        raise errors[0]
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"setting {name} must be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"setting {name} must be an integer, got {value!r}")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ValueError(f"setting {name} must be a finite number, got {value!r}")
            return float(value)
        raise ValueError(f"setting {name} must be a number, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"setting {name} must be a word, got {value!r}")
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ValueError(f"setting {name} must be a list (a,b or [...]), got {value!r}")
        item_kind = args[0] if args else Any
        return tuple(items if item_kind is Any else (_convert(item_kind, v, name) for v in items))
    if origin is dict or kind is dict:
        if isinstance(value, dict):
            return value
        raise ValueError(f"setting {name} must be a JSON object, got {value!r}")
    return value


def typed_value(cls: type, name: str, value: Any) -> Any:
    """`value` as dataclass `cls`'s field `name` declares it; ValueError naming the setting if it is not."""
    kinds = _fields(cls)
    if name not in kinds:
        raise ValueError(f"{cls.__name__} has no setting {name!r}")
    return _convert(kinds[name], value, name)


def route(overrides: dict[str, Any], targets: dict[str, type], *, what: str = "setting") -> dict[str, dict]:
    """Split flat `overrides` by target: {target: {field: typed value}}; a key no target has is refused.

    A key that several targets share goes to each of them.
    """
    routed: dict[str, dict] = {target: {} for target in targets}
    unknown = []
    for name, value in overrides.items():
        owners = [t for t, cls in targets.items() if name in _fields(cls)]
        if not owners:
            unknown.append(name)
        for target in owners:
            routed[target][name] = typed_value(targets[target], name, value)
    if unknown:
        raise ValueError(f"unknown {what}(s) {sorted(unknown)}")
    return routed


def require_positive_int(name: str, value: Any) -> None:
    """ValueError naming the setting unless `value` is an integer >= 1."""
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def require_decay(name: str, value: Any) -> None:
    """ValueError naming the setting unless `value` is a decay factor in (0, 1] (1 = no decay)."""
    if not 0 < value <= 1:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
