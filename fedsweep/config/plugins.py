"""Checking a plug-in's config node (one with `_target_`) against the class it names.

A plug-in is registered by existing (DESIGN.md), so its schema is its own constructor. Rules:

- `_target_` must import; Hydra's own keys (`_partial_`, `_convert_`, `_recursive_`, `_args_`) pass.
- Every other key must be a constructor parameter (unless it takes `**kwargs`), and its value must
  match the parameter's annotation (`fedsweep/config/types.py`).
- A non-partial plug-in is built once with Hydra's `instantiate`: whatever its constructor refuses
  (`ValueError`, `TypeError`) becomes the error, e.g. `partition.alpha must be > 0, got 0`.
  Constructors must therefore be cheap and side-effect free (datasets load in `load()`, not here).
  A `_partial_` plug-in (models) is only checked by signature: the round loop supplies the rest.
- A class may define `check_config(config, *, key)` (a classmethod): it receives the whole resolved
  cell config and its group's name, and raises `ValueError` naming the key for rules that span
  groups, e.g. a faults model checking `faults.min_fit <= clients_per_round`.
"""

import importlib
import inspect
import typing
from collections.abc import Mapping
from typing import Any

from fedsweep.config.errors import ConfigError
from fedsweep.config.types import describe, matches, show

HYDRA_KEYS = frozenset({"_target_", "_partial_", "_convert_", "_recursive_", "_args_"})


def check_plugin(config: Mapping[str, Any], group: str) -> Any:
    """Check `config[group]`; returns the built plug-in (a partial for `_partial_` nodes)."""
    node = config.get(group)
    if not isinstance(node, Mapping):
        raise ConfigError(f"{group} must be a mapping with a _target_ (got {show(node)})", key=group)
    target = node.get("_target_")
    if not isinstance(target, str) or not target:
        raise ConfigError(
            f"{group} needs a _target_ (the class to build); choose an option with {group}=NAME",
            key=f"{group}._target_",
        )
    cls = locate(target, key=f"{group}._target_")
    partial = bool(node.get("_partial_"))
    params, hints, open_kwargs = _parameters(cls)
    for name, value in node.items():
        if name in HYDRA_KEYS:
            continue
        if name not in params:
            if open_kwargs:
                continue
            # A partial's parameters without default (input_shape, …) come from the round loop.
            takes = [n for n, p in params.items() if not partial or p.default is not inspect.Parameter.empty]
            known = f"takes: {', '.join(takes)}" if takes else "takes no keys"
            raise ConfigError(f"unknown key {group}.{name}; {cls.__name__} {known}", key=f"{group}.{name}")
        annotation = hints.get(name, params[name].annotation)
        if not matches(value, annotation):
            raise ConfigError(
                f"{group}.{name} must be {describe(annotation)} (got {show(value)})", key=f"{group}.{name}"
            )
    hook = getattr(cls, "check_config", None)
    if callable(hook):  # first: the plug-in's own messages name keys best
        try:
            hook(config, key=group)
        except ValueError as exc:
            raise ConfigError(_keyed(str(exc), group), key=group) from None
    return None if partial else _instantiate(node, cls, params, group)


def locate(target: str, *, key: str) -> type:
    """The class a `_target_` names, or ConfigError naming the key."""
    # Not hydra.utils.get_class: it logs the failure to stderr before raising, a second line.
    parts = target.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            break
        if isinstance(obj, type):
            return obj
        break
    raise ConfigError(f"{key}: cannot import {target!r} (expected a module path and a class name)", key=key)


def _parameters(cls: type) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    """(named parameters, resolved annotations, whether it takes **kwargs) of `cls`'s constructor."""
    signature = inspect.signature(cls)
    params = {
        n: p
        for n, p in signature.parameters.items()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }
    open_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to accepting any value
        hints = {}
    return params, hints, open_kwargs


def _instantiate(
    node: Mapping[str, Any], cls: type, params: Mapping[str, inspect.Parameter], group: str
) -> Any:
    from hydra.errors import InstantiationException  # noqa: PLC0415
    from hydra.utils import instantiate  # noqa: PLC0415

    for name, p in params.items():
        if p.default is inspect.Parameter.empty and name not in node:
            raise ConfigError(
                f"missing key {group}.{name} ({cls.__name__} requires it)", key=f"{group}.{name}"
            )
    try:
        return instantiate(dict(node))
    except InstantiationException as exc:
        cause: BaseException = exc
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, (ValueError, TypeError)):
            raise ConfigError(_keyed(str(cause), group), key=group) from None
        raise


def _keyed(message: str, group: str) -> str:
    """The plug-in's own message, prefixed with its group unless it already names the key."""
    line = " ".join(message.split())
    return line if line.startswith((f"{group}.", f"{group} ")) else f"{group}: {line}"
