"""Typed dataclasses to and from JSON values, by their type hints.

The audit record is dataclasses all the way down; this is the one place that turns them into
JSON values (fields in declaration order) and back (each value checked against its field's
type). A field made with `omitted()` is left out of the JSON while it is None, and absent from
the JSON it reads back as None; `empty_as_none()` writes None as {} (and reads {} as None).
"""
from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar, Union

T = TypeVar("T")

_OMIT = "omit_when_none"
_EMPTY = "empty_object_when_none"


class RecordError(ValueError):
    """A JSON value that does not have its field's type (where: the field's path)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where, self.problem = where, problem


def omitted(default: Any = None) -> Any:
    """A field left out of the JSON while it is None (absent sections, unmeasured extras)."""
    return dataclasses.field(default=default, metadata={_OMIT: True})


def empty_as_none() -> Any:
    """A field written as {} when None (kept for records whose readers expect an object)."""
    return dataclasses.field(default=None, metadata={_EMPTY: True})


def to_json(value: Any) -> Any:
    """A dataclass (or list, dict, number, string) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if v is None and f.metadata.get(_OMIT):
                continue
            out[f.name] = {} if v is None and f.metadata.get(_EMPTY) else to_json(v)
        return out
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy and torch scalars
        return value.item()
    return value


def from_json(cls: type[T], value: Any, where: str = "record") -> T:
    """``value`` (plain JSON) as an instance of ``cls``, checked field by field.

    Raises:
        RecordError: naming the first field whose value does not fit its type.
    """
    return _read(cls, value, where)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _read(tp: Any, value: Any, where: str) -> Any:
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None:
            if type(None) in options:
                return None
            raise RecordError(where, "must not be null")
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _read(option, value, where)
            except RecordError as err:
                errors.append(err)
        raise errors[0]
    if origin is list:
        if not isinstance(value, list):
            raise RecordError(where, f"must be an array, not {_kind(value)}")
        (item,) = typing.get_args(tp)
        return [_read(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecordError(where, f"must be an object, not {_kind(value)}")
        _, item = typing.get_args(tp)
        return {k: _read(item, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _read_dataclass(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecordError(where, f"must be a number, not {_kind(value)}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError(where, f"must be an integer, not {_kind(value)}")
        return value
    if tp in (str, bool):
        if type(value) is not tp:
            raise RecordError(where, f"must be {'a string' if tp is str else 'true or false'}, not {_kind(value)}")
        return value
    raise TypeError(f"{where}: no JSON reading for type {tp!r}")  # a bug in a record type, not in the input


def _read_dataclass(cls: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise RecordError(where, f"must be an object, not {_kind(value)}")
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RecordError(where, f"lacks the key {f.name!r}")
            continue
        v = value[f.name]
        if f.metadata.get(_EMPTY) and v == {}:
            kwargs[f.name] = None
            continue
        kwargs[f.name] = _read(hints[f.name], v, f"{where}.{f.name}")
    return cls(**kwargs)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "true or false", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)
