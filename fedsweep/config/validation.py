"""Validating plain config data with pydantic, and its errors as one `ConfigError` line.

A config arrives as the plain containers `OmegaConf.to_container` gives: YAML data, which is JSON's
data model. So every model (the settings of schema.py, a plug-in's parameters in plugins.py) is
validated in pydantic's strict JSON mode, on `json.dumps(data)`. That gives YAML's rules:

- `bool` is never an int or a float (`rounds=true` is a mistake, although `True == 1` in Python).
- An int is a valid float (`lr=1` means 1.0); a float is never an int (`rounds=2.5`); a string is
  never a number (`rounds='3'`).
- Floats must be finite (`allow_inf_nan=False`): nan and inf are never a sensible learning rate.
- A list stands for any sequence annotation (`tuple[int, ...]`, `Sequence[int]`, `list[int]`).
- A class-typed parameter cannot come from JSON: a mapping with a `_target_` stands for it (the
  plug-in builder makes the object), see `check`.

The first error becomes the message, in the words a user reads (`rounds must be >= 1 (got 0)`):
`missing key K`, `unknown key K; keys of G: …`, `K must be <type in words> (got V)`, `K must be
<bounds> (got V)` (all of the field's bounds, `in [0, 1)`), or a validator's own words
(`PydanticCustomError("config", "must be …")` becomes `K must be …`).
"""

import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from fedsweep.config.errors import ConfigError, did_you_mean, show

STRICT = ConfigDict(
    strict=True, allow_inf_nan=False, extra="forbid", frozen=True, arbitrary_types_allowed=True
)
_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_OBJECT_ERRORS = ("needs_python_object", "is_instance_of")
M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any, *, prefix: str = "") -> M:
    """`data` as an instance of `model`, or ConfigError for its first error; keys are `prefix` + path."""
    try:
        return model.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        raise one_line(exc.errors()[0], model, data, prefix) from None


def check(model: type[BaseModel], data: Any, *, prefix: str = "") -> None:
    """As `parse`, but a class-typed field may be given as a mapping with `_target_` (the plug-in
    builder makes that object later), so nothing is returned."""
    try:
        model.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        errors = [e for e in exc.errors() if not _is_spec(e)]
        if errors:
            raise one_line(errors[0], model, data, prefix) from None


def _is_spec(error: ErrorDetails) -> bool:
    value = error["input"]
    return error["type"] in _OBJECT_ERRORS and isinstance(value, Mapping) and "_target_" in value


def one_line(error: ErrorDetails, model: type[BaseModel], data: Any, prefix: str) -> ConfigError:
    """The ConfigError for one pydantic error of `model` validating `data`."""
    path: list[str] = []
    owner: type[BaseModel] | None = model
    annotation: Any = model
    info = None
    for part in error["loc"]:  # down through nested models to the field at fault
        if owner is None or not isinstance(part, str) or part not in fields_of(owner):
            break
        info = fields_of(owner)[part]
        path.append(part)
        annotation = info.annotation
        owner = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    key = prefix + ".".join(path) if path else prefix.rstrip(".")
    kind = error["type"]
    if kind == "missing":
        return ConfigError(f"missing key {key}", key=key)
    if kind == "extra_forbidden":
        name = str(error["loc"][len(path)])
        where = key or "the top level"
        fields = list(fields_of(owner)) if owner else []
        unknown = f"{key}.{name}" if key else name
        hint = did_you_mean(name, fields)
        return ConfigError(f"unknown key {unknown}{hint}; keys of {where}: {', '.join(fields)}", key=unknown)
    value = _at(data, path)
    if kind == "config":  # a validator's own words, after the key
        message = error["msg"]
        return ConfigError(message if message.startswith(key) else f"{key} {message}", key=key or None)
    if kind.removesuffix("_equal") in ("greater_than", "less_than") and info is not None:
        limits = {
            _BOUNDS[type(m).__name__.lower()]: getattr(m, type(m).__name__.lower())
            for m in info.metadata
            if type(m).__name__.lower() in _BOUNDS
        }
        if set(limits) == {">=", "<"}:
            rule = f"in [{limits['>=']:g}, {limits['<']:g})"
        else:
            rule = " and ".join(f"{op} {limit:g}" for op, limit in limits.items())
        return ConfigError(f"{key} must be {rule} (got {show(value)})", key=key)
    where = key or "the config"
    return ConfigError(f"{where} must be {describe(annotation)} (got {show(value)})", key=key or None)


def fields_of(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields by the key they are given as in the config (the alias, where there is one)."""
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _at(data: Any, path: list[str]) -> Any:
    for part in path:
        data = data.get(part) if isinstance(data, Mapping) else None
    return data


def describe(annotation: Any) -> str:
    """`int | list[int]` -> 'an integer or a list of integers' (for `must be ...` messages)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return describe(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    simple = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
    if annotation in simple:
        return simple[annotation]
    if annotation is None or annotation is type(None):
        return "null"
    if annotation in (list, tuple, Sequence) or origin in (list, tuple, Sequence):
        inner = [a for a in args if a is not Ellipsis]
        return f"a list of {_plural(describe(inner[0]))}" if len(inner) == 1 else "a list"
    if annotation in (dict, Mapping) or origin in (dict, Mapping):
        return "a mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a mapping"
    if isinstance(annotation, type):
        return f"a {annotation.__name__} config (a mapping with _target_)"
    return str(annotation)


def _plural(text: str) -> str:
    """'an integer' -> 'integers', 'a Fault config (a mapping with _target_)' -> 'Fault configs (...)'."""
    plurals = {"an integer": "integers", "a finite number": "finite numbers", "a string": "strings"}
    if text in plurals:
        return plurals[text]
    if text.endswith(" config (a mapping with _target_)"):
        return text.removeprefix("a ").replace(" config (a mapping ", " configs (mappings ")
    return text
