"""Checking a plain config value against a type annotation, and saying in words what was expected.

The config arrives as plain containers (OmegaConf.to_container), so the checks are on what YAML and
Hydra's override grammar produce: bool, int, float, str, None, list and dict. Rules:

- `bool` is never an int or a float (`rounds=true` is a mistake, although `True == 1` in Python).
- An int is a valid float (`lr=1` means 1.0); a float is never an int (`rounds=2.5`).
- Floats must be finite: nan and inf are never a sensible learning rate, timeout or penalty.
- A list stands for any sequence annotation (`tuple[int, ...]`, `Sequence[int]`, `list[int]`).
- A mapping with a `_target_` stands for any class annotation: Hydra instantiates it first.
- Annotations this module does not understand accept anything (the plug-in's own checks decide).
"""

import inspect
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

# typing.List[int] and friends have the builtin as their origin, so these cover them too.
_SEQUENCES = (list, tuple, Sequence)
_MAPPINGS = (dict, Mapping)


def matches(value: Any, annotation: Any) -> bool:
    """Whether `value` (plain YAML data) is acceptable for a parameter annotated `annotation`."""
    if annotation in (Any, object, inspect.Parameter.empty):
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if annotation is str:
        return isinstance(value, str)
    if annotation in _SEQUENCES or origin in _SEQUENCES:
        return isinstance(value, (list, tuple)) and _items_match(value, args)
    if annotation in _MAPPINGS or origin in _MAPPINGS:
        return isinstance(value, Mapping)
    if isinstance(annotation, type):
        return isinstance(value, annotation) or (isinstance(value, Mapping) and "_target_" in value)
    return True  # a TypeVar, a Protocol, a string annotation that did not resolve: not ours to judge


def _items_match(items: list | tuple, args: tuple[Any, ...]) -> bool:
    if not args:
        return True
    if len(args) == 2 and args[1] is Ellipsis:  # tuple[int, ...]
        return all(matches(v, args[0]) for v in items)
    if len(args) == 1:  # list[int], Sequence[int]
        return all(matches(v, args[0]) for v in items)
    return len(items) == len(args) and all(matches(v, a) for v, a in zip(items, args, strict=True))


def describe(annotation: Any) -> str:
    """`int | list[int]` -> 'an integer or a list of integers' (for `must be ...` messages)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    simple = {
        bool: "true or false",
        int: "an integer",
        float: "a finite number",
        str: "a string",
        type(None): "null",
    }
    if annotation in simple:
        return simple[annotation]
    if annotation in _SEQUENCES or origin in _SEQUENCES:
        inner = [a for a in args if a is not Ellipsis]
        if len(inner) == 1:
            return f"a list of {_plural(describe(inner[0]))}"
        return "a list"
    if annotation in _MAPPINGS or origin in _MAPPINGS:
        return "a mapping"
    if isinstance(annotation, type):
        return f"a {annotation.__name__} config (a mapping with _target_)"
    return str(annotation)


def _plural(text: str) -> str:
    for article in ("an ", "a "):
        if text.startswith(article):
            word = text[len(article) :]
            return (
                word.replace("integer", "integers").replace("number", "numbers").replace("string", "strings")
            )
    return text


def show(value: Any) -> str:
    """A value as the user would type it: strings quoted, None as null, bools lower-case."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
