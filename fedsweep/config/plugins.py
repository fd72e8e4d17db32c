"""Plug-ins: checking a config node with `_target_` against the class it names, and building it.

A plug-in is registered by existing (a module, a yaml and a test; README.md), so its schema is its
own constructor. `build` is the one way fedsweep turns such a node into an object (the config
validator and the fault plans use it); it follows Hydra's grammar and names the key in every error.
Rules:

- `_target_` must import (and be a subclass of `expect`, when given); Hydra's own keys
  (`_partial_`, `_convert_`, `_recursive_`, `_args_`) pass.
- Every other key must be a constructor parameter (unless it takes `**kwargs`), and its value must
  match the parameter's annotation: pydantic checks it, as `validate_call` would, in the strict
  JSON mode of fedsweep/config/validation.py (a `_target_` mapping stands for a class).
- Nested `_target_` nodes are built first (their errors name their place, `faults.faults[1].p`),
  unless the node sets `_recursive_: false`; a `_partial_` node becomes a `functools.partial` and
  its missing parameters are the caller's (models get `input_shape` and `num_classes` from
  `fedsweep.models.init.build_model`).
- Whatever the constructor refuses (`ValueError`, `TypeError`) becomes the error, e.g.
  `partition.alpha must be > 0, got 0`: an error with `field` and `reason` attributes (the faults'
  `FaultConfigError`) is keyed by its field, a `ConfigError` names keys below the node. Constructors
  must therefore be cheap and side-effect free (datasets load in `load()`, not here).
- `check_plugin` adds the class's optional `check_config(config, *, key)` classmethod: it receives
  the whole resolved cell config and its group's name, and raises `ValueError` naming the key for
  rules that span groups, e.g. a faults model checking its client ids against num_clients.
"""

import functools
import importlib
import inspect
import typing
from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from fedsweep.config.errors import ConfigError, did_you_mean, show
from fedsweep.config.validation import STRICT, check

HYDRA_KEYS = frozenset({"_target_", "_partial_", "_convert_", "_recursive_", "_args_"})


def check_plugin(config: Mapping[str, Any], group: str) -> Any:
    """Check `config[group]`; returns the built plug-in (a `functools.partial` for `_partial_` nodes)."""
    node: Any = config.get(group)
    cls = plugin_class(node, key=group)
    check_params(node, cls, key=group)
    hook = getattr(cls, "check_config", None)
    if callable(hook):  # first: the plug-in's own messages name keys best
        try:
            hook(config, key=group)
        except ValueError as exc:
            raise ConfigError(_keyed(str(exc), group), key=group) from None
    return build(node, key=group)


def build(node: Any, *, key: str, expect: tuple[type, str] | None = None) -> Any:
    """The object a plug-in node describes, or ConfigError naming the key.

    `expect` is (a base class, its name in words): `_target_` must name a subclass of it.
    """
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=True)
    cls = plugin_class(node, key=key, expect=expect)
    params = check_params(node, cls, key=key)
    recursive = node.get("_recursive_", True) is not False
    args = [_built(v, f"{key}._args_[{i}]", recursive) for i, v in enumerate(node.get("_args_", ()))]
    kwargs = {n: _built(v, f"{key}.{n}", recursive) for n, v in node.items() if n not in HYDRA_KEYS}
    if node.get("_partial_"):
        return functools.partial(cls, *args, **kwargs)
    for name, p in list(params.items())[len(args) :]:
        if p.default is inspect.Parameter.empty and name not in kwargs:
            raise ConfigError(f"missing key {key}.{name} ({cls.__name__} requires it)", key=f"{key}.{name}")
    try:
        return cls(*args, **kwargs)
    except ConfigError as exc:  # a nested build inside the constructor: keys below this node
        raise ConfigError(f"{key}.{exc}", key=f"{key}.{exc.key}" if exc.key else key) from None
    except (ValueError, TypeError) as exc:
        field, reason = getattr(exc, "field", None), getattr(exc, "reason", None)
        if field and reason:
            raise ConfigError(f"{key}.{field} {reason}", key=f"{key}.{field}") from None
        raise ConfigError(_keyed(str(exc), key), key=key) from None


def _built(value: Any, key: str, recursive: bool) -> Any:
    if not recursive:
        return value
    if isinstance(value, Mapping):
        if "_target_" in value:
            return build(value, key=key)
        return {k: _built(v, f"{key}.{k}", recursive) for k, v in value.items()}
    if isinstance(value, list):
        return [_built(v, f"{key}[{i}]", recursive) for i, v in enumerate(value)]
    return value


def plugin_class(node: Any, *, key: str, expect: tuple[type, str] | None = None) -> type:
    """The class a plug-in node's `_target_` names, or ConfigError naming the key."""
    if not isinstance(node, Mapping):
        raise ConfigError(f"{key} must be a mapping with a _target_ (got {show(node)})", key=key)
    target = node.get("_target_")
    if not isinstance(target, str) or not target:
        raise ConfigError(
            f"{key} needs a _target_ (the class to build); choose an option with {key}=NAME",
            key=f"{key}._target_",
        )
    cls = locate(target, key=f"{key}._target_")
    if expect is not None and not issubclass(cls, expect[0]):
        raise ConfigError(f"{key}._target_: {target} is not {expect[1]}", key=f"{key}._target_")
    return cls


def check_params(node: Mapping[str, Any], cls: type, *, key: str) -> dict[str, inspect.Parameter]:
    """ConfigError unless every key of `node` is a parameter of `cls` with a value of its type."""
    params, open_kwargs = _parameters(cls)
    partial = bool(node.get("_partial_"))
    for name in node:
        if name in HYDRA_KEYS or name in params or open_kwargs:
            continue
        # A partial's parameters without default (input_shape, …) come from the caller (build_model).
        takes = [n for n, p in params.items() if not partial or p.default is not inspect.Parameter.empty]
        known = f"takes: {', '.join(takes)}" if takes else "takes no keys"
        hint = did_you_mean(str(name), takes)
        raise ConfigError(f"unknown key {key}.{name}{hint}; {cls.__name__} {known}", key=f"{key}.{name}")
    check(_params_model(cls), {n: v for n, v in node.items() if n in params}, prefix=f"{key}.")
    return params


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


def _parameters(cls: type) -> tuple[dict[str, inspect.Parameter], bool]:
    """(named parameters, whether it takes **kwargs) of `cls`'s constructor."""
    signature = inspect.signature(cls)
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    params = {n: p for n, p in signature.parameters.items() if p.kind not in variadic}
    open_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    return params, open_kwargs


@functools.cache
def _params_model(cls: type) -> type[BaseModel]:
    """A pydantic model of `cls`'s constructor parameters, every one optional (its presence is
    checked by `build`); a field's alias is the parameter's name, so no name clashes with pydantic's."""
    try:
        hints = typing.get_type_hints(cls.__init__, include_extras=True)  # type: ignore[misc]
    except Exception:  # noqa: BLE001 - unresolvable annotations: accept any value (the constructor decides)
        hints = {}
    fields: dict[str, Any] = {}
    for i, (name, p) in enumerate(_parameters(cls)[0].items()):
        annotation = hints.get(name, p.annotation)
        fields[f"p{i}"] = (_checkable(annotation), Field(default=None, alias=name))
    config = ConfigDict(**STRICT)
    config["extra"] = "ignore"
    return create_model(f"{cls.__name__}Params", __config__=config, **fields)


def _checkable(annotation: Any) -> Any:
    """`annotation` if pydantic can check values against it, else Any (a TypeVar, a Protocol, …)."""
    if annotation is inspect.Parameter.empty:
        return Any
    try:
        TypeAdapter(annotation, config=STRICT)
    except Exception:  # noqa: BLE001 - not ours to judge: the constructor decides
        return Any
    return annotation


def _keyed(message: str, key: str) -> str:
    """The plug-in's own message, prefixed with its key unless it already names it."""
    line = " ".join(message.split())
    return line if line.startswith((f"{key}.", f"{key} ")) else f"{key}: {line}"
