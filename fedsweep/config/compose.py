"""Composing a config with Hydra, turning Hydra's and OmegaConf's errors into one-line ConfigErrors.

Hydra reports a user's mistake (an unknown key or option, an override it cannot parse, an
interpolation that does not resolve) as an exception with several lines of text, a search path and
a hint about HYDRA_FULL_ERROR. Here each becomes a `ConfigError` naming the key and what is allowed:

    unknown key foo; top-level keys: batch_size, checkpoint, …
    unknown option strategy=fedavgg; choose one of: fedavg, fedprox
    cannot parse override 'rounds=[1,': no viable alternative at input '[1,'

`compose_config` needs an initialised Hydra (inside `hydra.main`, or `initialize_config_dir`).
`compose_cell` also says which settings are interpolated from `rounds` (`${rounds}`): those make the
number of rounds part of what a cell is (fedsweep/grid.py `cell_key`).
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from hydra import compose
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from fedsweep.config.errors import ConfigError, did_you_mean

_NOISE = (
    "Config search path:",
    "See https://hydra.cc",
    "Set the environment variable HYDRA_FULL_ERROR",
    "full_key:",
    "object_type=",
    "reference_type=",
)


# Interpolations of the top-level `rounds`: `${rounds}`, `${oc.select:rounds,10}`, `${mul:${rounds},2}`.
_READS_ROUNDS = re.compile(r"\$\{[^}]*?(?<![\w.])rounds(?![\w.])")


@dataclass(frozen=True)
class Composed:
    """A composed cell config (plain containers, resolved), its chosen option per group, and the
    dotted keys whose value is interpolated from `rounds`."""

    config: dict[str, Any]
    choices: dict[str, str]
    rounds_from: tuple[str, ...] = ()


def compose_config(config_name: str, overrides: Iterable[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(resolved config as plain containers, chosen option per group), or ConfigError."""
    composed = compose_cell(config_name, overrides)
    return composed.config, composed.choices


def compose_cell(config_name: str, overrides: Iterable[str]) -> Composed:
    """The composed config, its choices and what is interpolated from `rounds`, or ConfigError."""
    overrides = list(overrides)
    parse_overrides(overrides)
    try:
        composed = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
        choices = {
            str(k): str(v)
            for k, v in composed.hydra.runtime.choices.items()
            if not str(k).startswith("hydra")
        }
        with open_dict(composed):
            del composed["hydra"]
        raw = OmegaConf.to_container(composed, resolve=False)
        config = OmegaConf.to_container(composed, resolve=True)
        assert isinstance(config, dict) and isinstance(raw, dict)  # a composed config is a mapping
    except (HydraException, OmegaConfBaseException) as exc:
        raise explain(exc) from None
    return Composed(cast(dict[str, Any], config), choices, tuple(reads_rounds(raw)))


def reads_rounds(raw: Any, prefix: str = "") -> list[str]:
    """The dotted keys of an unresolved config whose value interpolates `rounds` (the grid and
    `rounds` itself left out)."""
    found: list[str] = []
    items = raw.items() if isinstance(raw, Mapping) else enumerate(raw) if isinstance(raw, list) else ()
    for key, value in items:
        path = f"{prefix}{key}"
        if path in ("grid", "rounds"):
            continue
        if isinstance(value, str) and _READS_ROUNDS.search(value):
            found.append(path)
        elif isinstance(value, Mapping | list):
            found += reads_rounds(value, f"{path}.")
    return found


def parse_overrides(overrides: Iterable[str]) -> list[Any]:
    """Hydra's parsed overrides, or ConfigError naming the one that does not parse."""
    parser = OverridesParser.create()
    parsed = []
    for override in overrides:
        try:
            parsed.append(parser.parse_override(override))
        except HydraException as exc:  # OverrideParseException, or the grammar's own HydraException
            raise ConfigError(f"cannot parse override {override!r}: {_one_line(exc)}", key=override) from None
    return parsed


def explain(exc: BaseException) -> ConfigError:
    """The ConfigError for one of Hydra's or OmegaConf's composition errors."""
    if isinstance(exc, MissingConfigException):
        missing = str(exc.missing_cfg_file or "")
        if "/" in missing:
            group, name = missing.rsplit("/", 1)
            options = ", ".join(exc.options or []) or "(none)"
            hint = did_you_mean(name, exc.options or [])
            return ConfigError(f"unknown option {group}={name}{hint}; choose one of: {options}", key=group)
        return ConfigError(f"config {missing!r} not found", key=missing or None)
    cause = exc.__cause__
    if isinstance(cause, OmegaConfBaseException) and "not in struct" in str(cause):
        key = str(getattr(cause, "full_key", "") or "")
        parent = getattr(cause, "parent_node", None)
        head, _, _ = key.rpartition(".")
        names = parent.keys() if isinstance(parent, DictConfig) else ()
        known = sorted(str(k) for k in names if k != "hydra")
        where = f"keys of {head}" if head else "top-level keys"
        hint = did_you_mean(key.rpartition(".")[2], known)
        return ConfigError(f"unknown key {key}{hint}; {where}: {', '.join(known) or '(none)'}", key=key)
    if isinstance(cause, OmegaConfBaseException):  # e.g. "Error merging override grid=[1,2]"
        return ConfigError(
            f"{_one_line(exc)}: {_one_line(cause)}", key=str(getattr(cause, "full_key", "")) or None
        )
    if isinstance(exc, OmegaConfBaseException):
        key = str(getattr(exc, "full_key", "") or "")
        # OmegaConf appends `full_key: …` and `object_type=…` lines: the first line is the message.
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return ConfigError(f"{key}: {message}" if key else message, key=key or None)
    return ConfigError(_one_line(exc))


def _one_line(exc: BaseException) -> str:
    """Hydra's message without its search path and hints, on one line."""
    lines = []
    for line in str(exc).splitlines():
        if line.strip().startswith(_NOISE):
            break
        if line.strip():
            lines.append(line.strip())
    return " ".join(lines) or type(exc).__name__
