"""The configuration contract: what one cell's resolved config may hold, and which keys are its identity.

`validate(config)` takes a cell's resolved config (the plain dict `OmegaConf.to_container` gives)
and returns a `CellSettings` of pydantic models, or raises `ConfigError`, whose message is one line
naming the key and what is allowed: `rounds must be >= 1 (got 0)` (fedsweep/config/validation.py
turns pydantic's errors into these lines). Rules:

- **Top-level knobs** are the fields of `Knobs`: a field's type is its annotation, its bounds are
  `Field(ge=, gt=, le=, lt=)`; rules in other words are validators raising
  `PydanticCustomError("config", ...)` (clients_per_round <= num_clients).
- **Config groups** come in two kinds. A node with `_target_` is a *plug-in* and is checked against
  its own class (`fedsweep/config/plugins.py`): its keys are the constructor's parameters, its types
  the annotations, its values whatever the constructor refuses, and rules across groups its optional
  `check_config(config, key=...)` classmethod. A method therefore brings its constraints with it and
  nothing here names one. `checkpoint`, `tracking` and `runner` have no `_target_`: their schema is a
  model in `GROUP_SETTINGS`. `faults` (and any group a caller adds by name) may also be empty.
  Optional group-free blocks (`aggregation`) are checked by their owner's function (`BLOCK_CHECKS`).
- **Unknown keys are refused** at every level, with the allowed ones listed; a missing key is too.
- **Semantic keys** (`semantic_view`, hashed by `fedsweep.grid.cell_key`) are those that can change
  a cell's results. Every key is semantic unless its field says `setting(semantic=False)`: plug-in
  groups and blocks entirely, the knobs but sweep_name, output_dir, resume and grid, and of the
  settings groups only `runner.amp`, `runner.amp_dtype`, `runner.batch_clients`, `runner.device` and
  `runner.torch_threads` (intra-op threads per job: the float rounding depends on them; a fixed
  default keeps results independent of the machine). These have a `baseline` (amp=false,
  amp_dtype=auto, batch_clients=off, device=cpu, torch_threads=1): they count only when
  they differ from it, so every cell keyed before they became semantic keeps its key (and its folder
  and MLflow run). Block keys added later have theirs in `BLOCK_BASELINES` (aggregation.round_timeout_s:
  null); optional groups added later count only when not empty (`KEYLESS_WHEN_EMPTY`: `systems: none`
  is `{}`); `REPORT_BLOCKS` (`report`: how the summary reads the results) never count. A plug-in
  parameter added after cells were keyed is declared by its class in `KEY_BASELINES` (a class
  attribute, {parameter: baseline}, e.g. the MLP's `dropout: 0.0`): a plug-in node's key at its
  baseline is left out of the view (`plugin_baselines`), so the option counts only when set.
- Nothing here writes, reads files or imports torch; plug-in checks, and the baselines of a plug-in
  node's keys, import the plug-in's module.
"""

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from fedsweep.config.errors import ConfigError, did_you_mean, show
from fedsweep.config.plugins import build, check_plugin, locate
from fedsweep.config.validation import STRICT, parse

PLUGIN_GROUPS = ("dataset", "partition", "model", "strategy", "selection")  # `_target_` required
OPTIONAL_GROUPS = ("faults", "systems")  # a plug-in, or {} for none
# Optional groups added after cells were keyed: their `none` option ({}) is left out of the cell key.
KEYLESS_WHEN_EMPTY = ("systems",)
# Blocks that describe the sweep's report, never a cell's results: never in the cell key.
REPORT_BLOCKS = ("report",)
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]*")
_DEVICE = re.compile(r"(cpu|auto|mps|cuda|xpu)(:\d+)?")
_ALWAYS = object()


def setting(*, semantic: bool = True, baseline: Any = _ALWAYS, **field: Any) -> Any:
    """A schema field: `semantic` says whether it can change a cell's results (then it is hashed
    into the cell key, unless it equals its `baseline`); `field` is pydantic's (the bounds ge, gt, le,
    lt, a default)."""
    extra: dict[str, Any] = {"semantic": semantic}
    if baseline is not _ALWAYS:
        extra["baseline"] = baseline
    return Field(json_schema_extra=extra, **field)


def _refuse(template: str, **context: Any) -> PydanticCustomError:
    """A validator's error in the user's words: `template` follows the key (`must be ...`)."""
    return PydanticCustomError("config", template, context)


class Settings(BaseModel):
    """Strict, frozen, no unknown keys (fedsweep/config/validation.py)."""

    model_config = STRICT


class LRSchedule(Settings):
    """`lr_schedule`: the client lr of round r is lr · gamma^|{m in milestones : m < r}| (step decay,
    torch's MultiStepLR stepped once per round: milestone m decays the lr from round m + 1 on)."""

    milestones: list[int]
    gamma: float = setting(gt=0)

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(m < 1 for m in value) or any(b <= a for a, b in zip(value, value[1:])):
            raise _refuse("must be increasing rounds >= 1 (got {got})", got=show(value))
        return value


NO_SCHEDULE: dict[str, Any] = {"milestones": [], "gamma": 0.1}


class Knobs(Settings):
    """The top-level keys of conf/config.yaml."""

    sweep_name: str = setting(semantic=False)
    seed: int
    rounds: int = setting(ge=1)
    num_clients: int = setting(ge=1)
    clients_per_round: int = setting(ge=1)
    local_epochs: int | None = setting(ge=1)
    # τ mini-batch steps per client per round instead of epochs (exactly one of the two is set);
    # None leaves the cell key of an epoch-based cell as it was.
    local_steps: int | None = setting(baseline=None, ge=1, default=None)
    batch_size: int = setting(ge=1)
    lr: float = setting(gt=0)
    # Step decay by round; no milestones is a constant lr and leaves the cell key as it was.
    lr_schedule: LRSchedule = setting(baseline=NO_SCHEDULE, default=LRSchedule(**NO_SCHEDULE))
    momentum: float = setting(ge=0, lt=1)
    weight_decay: float = setting(ge=0)
    clip_norm: float = setting(ge=0)
    eval_batch_size: int = setting(ge=1)
    # Evaluate the global model every N rounds and in the last; training is the same either way.
    evaluate_every: int = setting(semantic=False, ge=1, default=1)
    resume: bool = setting(semantic=False)
    output_dir: str = setting(semantic=False)
    grid: dict[str, Any] = setting(semantic=False)

    @field_validator("sweep_name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):  # it names a folder and an MLflow experiment
            raise _refuse("must be a plain name (letters, digits, _ . = + -), got {got}", got=show(value))
        return value

    @field_validator("output_dir")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise _refuse("must be a non-empty path")
        return value

    @model_validator(mode="after")
    def _one_kind_of_local_work(self) -> "Knobs":
        if (self.local_steps is None) == (self.local_epochs is None):
            raise _refuse(
                "local_steps and local_epochs are exclusive: set one (got local_steps={s}, local_epochs={e})",
                s=show(self.local_steps),
                e=show(self.local_epochs),
            )
        return self

    @field_validator("clients_per_round")
    @classmethod
    def _at_most_num_clients(cls, value: int, info: ValidationInfo) -> int:
        num_clients = info.data.get("num_clients")
        if num_clients is not None and value > num_clients:
            raise _refuse(
                "must be <= num_clients (got clients_per_round={c}, num_clients={n})", c=value, n=num_clients
            )
        return value


class CheckpointSettings(Settings):
    """conf/checkpoint/*.yaml (fedsweep/checkpoint/)."""

    location: str | None = setting(semantic=False)
    keep: int = setting(semantic=False, ge=2)  # one kept round leaves no fallback for a corrupt newest
    write_timeout_s: float = setting(semantic=False, gt=0)
    write_retries: int = setting(semantic=False, ge=0)
    background: bool = setting(semantic=False)

    @field_validator("location")
    @classmethod
    def _path_or_url(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise _refuse("must be null or a path or URL")
        return value


class TrackingSettings(Settings):
    """conf/tracking/*.yaml (MLflow)."""

    uri: str = setting(semantic=False)
    artifact_root: str = setting(semantic=False)
    enabled: bool = setting(semantic=False)
    ui_url: str | None = setting(semantic=False)

    @field_validator("ui_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://\S+", value):
            raise _refuse(
                "must be the MLflow UI's http(s) address, e.g. http://127.0.0.1:5000 (got {got})",
                got=show(value),
            )
        return value


class MemorySettings(Settings):
    """runner.memory: fractions of the machine's memory in use (fedsweep/memory/guard.py)."""

    warn: float
    backpressure: float
    stop: float

    @model_validator(mode="after")
    def _ordered(self) -> "MemorySettings":
        from fedsweep.memory.guard import guard_from_config  # noqa: PLC0415 - its owner's rule; psutil

        try:
            guard_from_config(self.model_dump())
        except ValueError as exc:
            raise _refuse("{reason}", reason=str(exc)) from None
        return self


# Runner keys that moved when engines became plug-ins: a config that still sets one is told where it went
# (the command line's `runner.pool=NAME` and `runner.dask.KEY=VALUE` are translated, cli/aliases.py), and
# MLflow params of runs made before never count as settings that change results (`semantic_params`).
RETIRED_RUNNER_KEYS = {
    "pool": "the engine group: runner/engine=NAME on the command line, `override /runner/engine: NAME` "
    "in a preset",
    "dask": "runner.engine.* with runner/engine=dask (or runner=dask)",
}


class RunnerSettings(Settings):
    """conf/runner/*.yaml (how a cell's tasks run). Only amp, amp_dtype, batch_clients, device and
    torch_threads change the maths."""

    retries: int = setting(semantic=False, ge=0)
    retry_delay_s: float = setting(semantic=False, ge=0)
    task_timeout_s: float = setting(semantic=False, ge=0)
    granularity: str = setting(semantic=False)
    engine: dict[str, Any] = setting(semantic=False)  # where jobs run: a plug-in (conf/runner/engine/*.yaml)
    max_parallel_clients: int = setting(semantic=False, ge=0)
    torch_threads: int = setting(baseline=1, ge=1)
    device: str = setting(baseline="cpu")
    amp: bool = setting(baseline=False)
    # auto: bfloat16 where the device supports it (the CPU; CUDA from Ampere on), else float16 with loss
    # scaling; bfloat16 | float16. Only read with amp=true.
    amp_dtype: str = setting(baseline="auto", default="auto")
    # off: one client at a time | auto: batched on CUDA where the model allows | N: at most N clients per
    # batch (fedsweep/rounds/batch.py); batched results differ from one-by-one ones in float rounding.
    batch_clients: str | int = setting(baseline="off", default="off")
    progress: bool = setting(semantic=False)
    stop_timeout_s: float = setting(semantic=False, ge=0)
    memory: MemorySettings = setting(semantic=False)
    parallel_cells: int = setting(semantic=False, ge=1)

    @field_validator("granularity")
    @classmethod
    def _granularity(cls, value: str) -> str:
        if value not in ("epoch", "client"):
            raise _refuse("must be epoch or client (got {got})", got=show(value))
        return value

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            for old, new in RETIRED_RUNNER_KEYS.items():
                if old in value:
                    raise _refuse(f"{old} is now {new}")
        return value

    @field_validator("engine")
    @classmethod
    def _engine(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("_target_"), str):
            raise _refuse(
                "must be a mapping with a _target_ (an engine: runner/engine=process, thread or dask)"
            )
        return value

    @field_validator("amp_dtype")
    @classmethod
    def _amp_dtype(cls, value: str) -> str:
        if value not in ("auto", "bfloat16", "float16"):
            raise _refuse("must be auto, bfloat16 or float16 (got {got})", got=show(value))
        return value

    @field_validator("batch_clients", mode="before")
    @classmethod
    def _batch_clients(cls, value: Any) -> Any:
        number = isinstance(value, int) and not isinstance(value, bool)
        if value in ("off", "auto") or (number and value >= 1):
            return value
        hint = " (YAML reads a bare off as false: quote it)" if value is False else ""
        raise _refuse("must be off, auto or a number of clients >= 1 (got {got})" + hint, got=show(value))

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.fullmatch(value):
            raise _refuse("must be cpu, auto, cuda, cuda:N or mps (got {got})", got=show(value))
        return value


GROUP_SETTINGS: dict[str, type[Settings]] = {
    "checkpoint": CheckpointSettings,
    "tracking": TrackingSettings,
    "runner": RunnerSettings,
}


def _aggregation(knobs: Knobs, node: Any, key: str) -> Any:
    from fedsweep.rounds.policy import aggregation_policy  # noqa: PLC0415 - its owner's validator

    return aggregation_policy(node, clients_per_round=knobs.clients_per_round, key=key)


def _report(knobs: Knobs, node: Any, key: str) -> Any:
    from fedsweep.summary import report_settings  # noqa: PLC0415 - its owner's validator

    return report_settings(node, key=key)


# Group-free blocks that are optional (defaults apply when absent) and validated by their owner's
# function `(knobs, node, key) -> object`, which raises ValueError naming the key.
BLOCK_CHECKS: dict[str, Callable[[Knobs, Any, str], Any]] = {"aggregation": _aggregation, "report": _report}
# Keys of a block added after cells were keyed: they count in the cell key only off these values.
BLOCK_BASELINES: dict[str, dict[str, Any]] = {"aggregation": {"round_timeout_s": None}}


@dataclass(frozen=True)
class CellSettings:
    """A validated cell config: typed knobs and settings groups; plug-in nodes and blocks as given."""

    knobs: Knobs
    checkpoint: CheckpointSettings
    tracking: TrackingSettings
    runner: RunnerSettings
    nodes: dict[str, Any]

    def to_container(self) -> dict[str, Any]:
        """The plain dict this was validated from (the round trip the property tests check)."""
        groups = {name: getattr(self, name).model_dump() for name in GROUP_SETTINGS}
        return {**self.knobs.model_dump(), **groups, **self.nodes}


def validate(config: Mapping[str, Any], *, groups: Iterable[str] = (), plugins: bool = True) -> CellSettings:
    """Check one cell's resolved config; `groups` names extra optional groups (e.g. Hydra's choices).

    `plugins=False` skips the plug-in checks, which import the plug-ins (torch: seconds): callers
    check every cell's cheap rules first, so that a typo is reported in well under a second.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"the config must be a mapping (got {show(config)})")
    knob_names = set(Knobs.model_fields)
    group_names = [*PLUGIN_GROUPS, *GROUP_SETTINGS, *OPTIONAL_GROUPS, *BLOCK_CHECKS]
    group_names += [g for g in groups if g not in group_names and g not in knob_names]
    allowed = sorted(knob_names | set(group_names))
    for key in config:
        if key not in knob_names and key not in group_names:
            hint = did_you_mean(str(key), allowed)
            raise ConfigError(f"unknown key {key}{hint}; top-level keys: {', '.join(allowed)}", key=str(key))
    knobs = parse(Knobs, {k: v for k, v in config.items() if k in knob_names})
    settings: dict[str, Any] = {}
    for group, model in GROUP_SETTINGS.items():  # they need no import, so a typo there is found fast
        if group not in config:
            raise ConfigError(f"missing key {group}", key=group)
        settings[group] = parse(model, config[group], prefix=f"{group}.")
    for block, check_block in BLOCK_CHECKS.items():
        if block not in config:
            continue
        if not isinstance(config[block], Mapping | None):
            raise ConfigError(f"{block} must be a mapping (got {show(config[block])})", key=block)
        try:
            check_block(knobs, config[block], block)
        except ValueError as exc:
            raise ConfigError(str(exc), key=block) from None
    nodes = {g: config[g] for g in group_names if g in config and g not in GROUP_SETTINGS}
    for group in group_names if plugins else ():
        settled = group in GROUP_SETTINGS or group in BLOCK_CHECKS
        if settled or (group not in PLUGIN_GROUPS and not config.get(group)):
            continue  # an optional group left out or empty ({}) configures nothing
        check_plugin(config, group)
    if plugins:  # the engine is a plug-in inside a settings group (conf/runner/engine/*.yaml)
        build(config["runner"]["engine"], key="runner.engine")
    return CellSettings(knobs=knobs, nodes=nodes, **settings)


def semantic_view(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that can change a cell's results (what the cell key hashes).

    A knob is kept unless its field is `semantic=False`; a settings group keeps only its semantic
    keys whose value differs from their baseline, and is left out when none is; a block keeps its
    keys but those at their `BLOCK_BASELINES` value; every other node (a plug-in group) is kept whole.
    Works on any mapping: keys the schema does not know count. A plug-in node (a group of
    `PLUGIN_GROUPS` or `OPTIONAL_GROUPS`) is kept whole but for its keys at their `KEY_BASELINES`.
    """
    view: dict[str, Any] = {}
    for name, value in config.items():
        if name in REPORT_BLOCKS or (name in KEYLESS_WHEN_EMPTY and not value):
            continue
        if name in (*PLUGIN_GROUPS, *OPTIONAL_GROUPS) and isinstance(value, Mapping):
            base = plugin_baselines(value.get("_target_"))
            view[name] = {k: v for k, v in value.items() if k not in base or v != base[k]}
        elif name in Knobs.model_fields:
            if _counts(Knobs.model_fields[name], value):
                view[name] = value
        elif name in GROUP_SETTINGS and isinstance(value, Mapping):
            fields = GROUP_SETTINGS[name].model_fields
            part = {k: v for k, v in value.items() if k not in fields or _counts(fields[k], v)}
            if part:
                view[name] = part
        elif name in BLOCK_BASELINES and isinstance(value, Mapping):
            base = BLOCK_BASELINES[name]
            view[name] = {k: v for k, v in value.items() if k not in base or v != base[k]}
        else:
            view[name] = value
    return view


@functools.cache
def plugin_baselines(target: Any) -> dict[str, Any]:
    """{parameter: baseline} of the plug-in class `target` names (its `KEY_BASELINES`): parameters
    added after cells were keyed, which count in a cell's identity only off these values. {} for a
    class without them, or a `_target_` that does not import (an old run's, read by compare)."""
    if not isinstance(target, str) or not target:
        return {}
    try:
        cls = locate(target, key="_target_")
    except ConfigError:
        return {}
    baselines = getattr(cls, "KEY_BASELINES", {})
    return dict(baselines) if isinstance(baselines, Mapping) else {}


def _counts(field: FieldInfo, value: Any) -> bool:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if not extra.get("semantic", True):
        return False
    return "baseline" not in extra or value != extra["baseline"]


def semantic_params(params: Mapping[str, str]) -> dict[str, str]:
    """`semantic_view` for flattened keys and string values (a cell's MLflow params: `runner.amp`,
    `lr_schedule.gamma`): the params that can change the cell's results, less those equal to their
    baseline (a block key's or a plug-in's `KEY_BASELINES` value as `str` writes it). A key the schema
    does not know counts, as in `semantic_view`."""
    kept = {}
    plugins = {g: plugin_baselines(params.get(f"{g}._target_")) for g in (*PLUGIN_GROUPS, *OPTIONAL_GROUPS)}
    for key, value in params.items():
        head, _, rest = key.partition(".")
        if head in REPORT_BLOCKS or (key in KEYLESS_WHEN_EMPTY and value in ("{}", "None")):
            continue
        if rest in BLOCK_BASELINES.get(head, {}) and value == str(BLOCK_BASELINES[head][rest]):
            continue
        if rest in plugins.get(head, {}) and value == str(plugins[head][rest]):
            continue
        field: FieldInfo | None
        if head in Knobs.model_fields:
            field, path = Knobs.model_fields[head], rest
        elif head in GROUP_SETTINGS and rest:
            name, _, path = rest.partition(".")
            if head == "runner" and name in RETIRED_RUNNER_KEYS:  # a run made before they moved
                continue
            field = GROUP_SETTINGS[head].model_fields.get(name)
        else:
            field, path = None, ""
        if field is None or _counts_as_text(field, path, value):
            kept[key] = value
    return kept


def _counts_as_text(field: FieldInfo, path: str, value: str) -> bool:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if not extra.get("semantic", True):
        return False
    if "baseline" not in extra:
        return True
    baseline = extra["baseline"]
    for part in path.split(".") if path else ():
        baseline = baseline.get(part) if isinstance(baseline, Mapping) else None
    return value != str(baseline)  # params are logged as str(value) (tasks/track.py)
