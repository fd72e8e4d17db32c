"""The configuration contract: what one cell's resolved config may hold, checked before anything runs.

`validate(config)` takes a cell's resolved config (the plain dict `OmegaConf.to_container` gives)
and returns it as frozen dataclasses, or raises `ConfigError`, whose message is one line naming the
key and what is allowed: `rounds must be >= 1 (got 0)`. Rules:

- **Top-level knobs** are the fields of `Knobs`; a field's type is its annotation (see
  `fedsweep/config/types.py`) and its bounds are `bounded(ge=, gt=, le=, lt=)` metadata.
  Cross-field rules are `Knobs.check` (clients_per_round <= num_clients).
- **Config groups** come in two kinds. A node with `_target_` is a *plug-in* and is checked against
  its own class (`fedsweep/config/plugins.py`): its keys are the constructor's parameters, its types
  the annotations, its values whatever the constructor refuses, and rules across groups its optional
  `check_config(config, key=...)` classmethod. A method therefore brings its constraints with it and
  nothing here names one. `checkpoint`, `tracking` and `runner` have no `_target_`: their schema is a
  dataclass in `GROUP_SETTINGS`. `faults` (and any group a caller adds by name) may also be empty.
  Optional group-free blocks (`aggregation`) are checked by their owner's function (`BLOCK_CHECKS`).
- **Unknown keys are refused** at every level, with the allowed ones listed; a missing key is too.
- Nothing here writes, reads files or imports torch; plug-in checks import the plug-in's module.
"""

import dataclasses
import operator
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fedsweep.config.types import describe, matches, show

PLUGIN_GROUPS = ("dataset", "partition", "model", "strategy", "selection")  # `_target_` required
OPTIONAL_GROUPS = ("faults",)  # a plug-in, or {} for none
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]*")
_DEVICE = re.compile(r"(cpu|auto|mps|cuda|xpu)(:\d+)?")
_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


class ConfigError(ValueError):
    """One user mistake in the configuration; `str()` is the line shown after `error: `."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def bounded(
    *, ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None
) -> Any:
    """A dataclass field whose value must lie within the given bounds."""
    return field(metadata={"bounds": {">=": ge, ">": gt, "<=": le, "<": lt}})


@dataclass(frozen=True, kw_only=True)
class Knobs:
    """The top-level keys of conf/config.yaml."""

    sweep_name: str
    seed: int
    rounds: int = bounded(ge=1)
    num_clients: int = bounded(ge=1)
    clients_per_round: int = bounded(ge=1)
    local_epochs: int = bounded(ge=1)
    batch_size: int = bounded(ge=1)
    lr: float = bounded(gt=0)
    momentum: float = bounded(ge=0, lt=1)
    weight_decay: float = bounded(ge=0)
    clip_norm: float = bounded(ge=0)
    eval_batch_size: int = bounded(ge=1)
    resume: bool
    output_dir: str
    grid: dict[str, Any]

    def check(self) -> None:
        if not _NAME.fullmatch(self.sweep_name):
            # It names a folder and an MLflow experiment: no path separators, no leading dot.
            raise ConfigError(
                f"sweep_name must be a plain name (letters, digits, _ . = + -), got {show(self.sweep_name)}",
                key="sweep_name",
            )
        if not self.output_dir.strip():
            raise ConfigError("output_dir must be a non-empty path", key="output_dir")
        if self.clients_per_round > self.num_clients:
            raise ConfigError(
                f"clients_per_round must be <= num_clients (got clients_per_round="
                f"{self.clients_per_round}, num_clients={self.num_clients})",
                key="clients_per_round",
            )


@dataclass(frozen=True, kw_only=True)
class CheckpointSettings:
    """conf/checkpoint/*.yaml (fedsweep/checkpoint/)."""

    location: str | None
    keep: int = bounded(ge=2)  # one kept round would leave no fallback when the newest is corrupt
    write_timeout_s: float = bounded(gt=0)
    write_retries: int = bounded(ge=0)
    background: bool

    def check(self) -> None:
        if self.location is not None and not self.location.strip():
            raise ConfigError("checkpoint.location must be null or a path or URL", key="checkpoint.location")


@dataclass(frozen=True, kw_only=True)
class TrackingSettings:
    """conf/tracking/*.yaml (MLflow)."""

    uri: str
    artifact_root: str
    enabled: bool


@dataclass(frozen=True, kw_only=True)
class RunnerSettings:
    """conf/runner/*.yaml (how a cell's tasks run)."""

    retries: int = bounded(ge=0)
    retry_delay_s: float = bounded(ge=0)
    task_timeout_s: float = bounded(ge=0)
    granularity: str
    pool: str
    max_parallel_clients: int = bounded(ge=0)
    torch_threads: int = bounded(ge=0)
    device: str
    amp: bool
    progress: bool
    stop_timeout_s: float = bounded(ge=0)
    memory: dict

    def memory_guard(self):  # noqa: ANN201 - imported lazily: psutil is not needed to validate types
        from fedsweep.memory.guard import guard_from_config  # noqa: PLC0415

        keys = {"warn", "backpressure", "stop"}
        if set(self.memory) != keys or not all(isinstance(v, (int, float)) for v in self.memory.values()):
            raise ConfigError("runner.memory needs numbers warn, backpressure and stop", key="runner.memory")
        try:
            return guard_from_config(self.memory)
        except ValueError as exc:
            raise ConfigError(str(exc), key="runner.memory") from None

    def check(self) -> None:
        if self.granularity not in ("epoch", "client"):
            raise ConfigError(
                f"runner.granularity must be epoch or client (got {show(self.granularity)})", key="runner.granularity"
            )
        self.memory_guard()
        if self.pool not in ("thread", "process"):
            raise ConfigError(f"runner.pool must be thread or process (got {show(self.pool)})", key="runner.pool")
        if not _DEVICE.fullmatch(self.device):
            raise ConfigError(
                f"runner.device must be cpu, auto, cuda, cuda:N or mps (got {show(self.device)})",
                key="runner.device",
            )


GROUP_SETTINGS: dict[str, type] = {
    "checkpoint": CheckpointSettings,
    "tracking": TrackingSettings,
    "runner": RunnerSettings,
}


def _aggregation(config: Mapping[str, Any], key: str) -> Any:
    from fedsweep.policy import aggregation_policy  # noqa: PLC0415 - its owner's validator

    return aggregation_policy(config[key], clients_per_round=int(config["clients_per_round"]), key=key)


# Group-free blocks that are optional (defaults apply when absent) and validated by their owner's
# function `(config, key) -> object`, which raises ValueError naming the key.
BLOCK_CHECKS: dict[str, Callable[[Mapping[str, Any], str], Any]] = {"aggregation": _aggregation}


@dataclass(frozen=True)
class CellSettings:
    """A validated cell config: typed knobs, typed settings groups, plug-in nodes as given."""

    knobs: Knobs
    groups: dict[str, Any]

    def to_container(self) -> dict[str, Any]:
        """The plain dict this was validated from (the round trip the property tests check)."""
        knobs = {f.name: getattr(self.knobs, f.name) for f in dataclasses.fields(self.knobs)}
        groups = {
            k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in self.groups.items()
        }
        return {**knobs, **groups}


def build(cls: type, node: Any, *, prefix: str = "") -> Any:
    """An instance of the settings dataclass `cls` from `node`, or ConfigError naming the key."""
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(node, Mapping):
        raise ConfigError(f"{where} must be a mapping (got {show(node)})", key=prefix.rstrip(".") or None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in node:
        if name not in fields:
            raise ConfigError(
                f"unknown key {prefix}{name}; keys of {where}: {', '.join(fields)}", key=f"{prefix}{name}"
            )
    for name, f in fields.items():
        if name not in node:
            raise ConfigError(f"missing key {prefix}{name}", key=f"{prefix}{name}")
        check_value(f"{prefix}{name}", node[name], hints[name], f.metadata.get("bounds", {}))
    obj = cls(**node)
    if hasattr(obj, "check"):
        obj.check()
    return obj


def check_value(key: str, value: Any, annotation: Any, bounds: Mapping[str, float | None]) -> None:
    """ConfigError unless `value` has the annotated type and lies within `bounds`."""
    if not matches(value, annotation):
        raise ConfigError(f"{key} must be {describe(annotation)} (got {show(value)})", key=key)
    limits = {op: b for op, b in bounds.items() if b is not None}
    if all(_COMPARE[op](value, limit) for op, limit in limits.items()):
        return
    if set(limits) == {">=", "<"}:
        rule = f"in [{limits['>=']:g}, {limits['<']:g})"
    else:
        rule = " and ".join(f"{op} {limit:g}" for op, limit in limits.items())
    raise ConfigError(f"{key} must be {rule} (got {show(value)})", key=key)


def validate(config: Mapping[str, Any], *, groups: Iterable[str] = (), plugins: bool = True) -> CellSettings:
    """Check one cell's resolved config; `groups` names extra optional groups (e.g. Hydra's choices).

    `plugins=False` skips the plug-in checks, which import the plug-ins (torch: seconds): callers
    check every cell's cheap rules first, so that a typo is reported in well under a second.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"the config must be a mapping (got {show(config)})")
    knob_names = {f.name for f in dataclasses.fields(Knobs)}
    group_names = [*PLUGIN_GROUPS, *GROUP_SETTINGS, *OPTIONAL_GROUPS, *BLOCK_CHECKS]
    group_names += [g for g in groups if g not in group_names and g not in knob_names]
    allowed = sorted(knob_names | set(group_names))
    for key in config:
        if key not in knob_names and key not in group_names:
            raise ConfigError(f"unknown key {key}; top-level keys: {', '.join(allowed)}", key=str(key))
    knobs = build(Knobs, {k: v for k, v in config.items() if k in knob_names})
    out: dict[str, Any] = {}
    for group in group_names:  # settings first: they need no import, so a typo there is found fast
        if group in GROUP_SETTINGS:
            if group not in config:
                raise ConfigError(f"missing key {group}", key=group)
            out[group] = build(GROUP_SETTINGS[group], config[group], prefix=f"{group}.")
        elif group in BLOCK_CHECKS and group in config:
            if not isinstance(config[group], Mapping | None):
                raise ConfigError(f"{group} must be a mapping (got {show(config[group])})", key=group)
            try:
                BLOCK_CHECKS[group](config, group)
            except ValueError as exc:
                raise ConfigError(str(exc), key=group) from None
    from fedsweep.config.plugins import check_plugin  # noqa: PLC0415 - imports plug-ins (torch): only now

    for group in group_names if plugins else ():
        if (
            group in GROUP_SETTINGS
            or group in BLOCK_CHECKS
            or (group not in PLUGIN_GROUPS and not config.get(group))
        ):
            continue  # an optional group left out or empty ({}) configures nothing
        check_plugin(config, group)
    groups = {g: out.get(g, config.get(g)) for g in group_names if g in config}
    return CellSettings(knobs=knobs, groups=groups)
