"""Typed parameter blocks.

Each pipeline declares its ``parameters_<pipeline>.yml`` block as a dataclass and turns the raw
mapping Kedro gives it into that dataclass with :func:`parse_params`. Unknown keys are an error
(a typo must not silently fall back to a default), values given on the command line as strings
are converted to the declared type, and nested dataclasses are parsed recursively.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ParameterError(ValueError):
    """A parameter block does not match its declared schema."""


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def _to_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ParameterError(f"{where}: expected true/false, got {value!r}")


def _to_int(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise ParameterError(f"{where}: expected an integer, got {value!r}")


def _to_float(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ParameterError(f"{where}: expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{where}: expected a number, got {value!r}") from None


def _to_str(value: Any, where: str) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ParameterError(f"{where}: expected a string, got {value!r}")


#: Scalar types: command-line strings ("3", "true") become the declared type.
_SCALARS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


def _to_union(value: Any, annotation: Any, where: str) -> Any:
    """The first member type of ``annotation`` that accepts ``value`` (None when allowed)."""
    args = typing.get_args(annotation)
    if value is None and type(None) in args:
        return None
    for candidate in (a for a in args if a is not type(None)):
        try:
            return _coerce(value, candidate, where)
        except ParameterError:
            continue
    raise ParameterError(f"{where}: {value!r} matches none of {annotation}")


def _to_sequence(value: Any, annotation: Any, where: str) -> list | tuple:
    """A list, a ``tuple[X, ...]`` or a fixed ``tuple[X, Y]``, each item coerced."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ParameterError(f"{where}: expected a list, got {value!r}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise ParameterError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(
            _coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    item = args[0] if args else Any
    items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _coerce(value: Any, annotation: Any, where: str) -> Any:  # noqa: PLR0911 (one return per kind)
    """``value`` as the type ``annotation`` declares; raises naming the dotted key ``where``."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _to_union(value, annotation, where)
    if origin is typing.Literal:
        if value not in typing.get_args(annotation):
            raise ParameterError(
                f"{where}: {value!r} is not one of {list(typing.get_args(annotation))}"
            )
        return value
    if dataclasses.is_dataclass(annotation):
        return parse_params(annotation, value, where)
    if origin in (list, tuple):
        return _to_sequence(value, annotation, where)
    if origin is dict or annotation is dict:
        if not isinstance(value, Mapping):
            raise ParameterError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation in _SCALARS:
        return _SCALARS[annotation](value, where)
    return value


def _check_keys(fields: Mapping[str, dataclasses.Field], data: Mapping, where: str) -> None:
    """No key outside ``fields``, every required field present."""
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
            f"allowed keys: {', '.join(sorted(fields))} (check conf/*/parameters_*.yml)"
        )
    for name, field in fields.items():
        required = field.default is dataclasses.MISSING
        if required and field.default_factory is dataclasses.MISSING and name not in data:
            raise ParameterError(f"missing required parameter {where}.{name}")


def parse_params(cls: type[T], data: Mapping[str, Any] | None, where: str = "parameters") -> T:
    """Build the dataclass ``cls`` from a parameter mapping.

    Args:
        cls: the dataclass describing the block.
        data: the mapping from the parameters files (``None`` means all defaults).
        where: the dotted name of the block, used in error messages (e.g. ``"training"``).

    Raises:
        ParameterError: on unknown keys, missing required keys or values of the wrong type; the
            message names the dotted key and the parameters file to fix.
    """
    if isinstance(data, cls):
        return data
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    _check_keys(fields, data, where)
    hints = typing.get_type_hints(cls)
    kwargs = {
        name: _coerce(data[name], hints[name], f"{where}.{name}") for name in fields if name in data
    }
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ParameterError(f"{where}: {error}") from error


def params_to_dict(params: Any) -> dict[str, Any]:
    """The inverse of :func:`parse_params`: a plain nested dict (tuples become lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(params)
