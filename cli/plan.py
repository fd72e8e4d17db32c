"""From a Hydra config to a sweep plan: one fully resolved config per cell, validated, nothing written.

Everything here runs before Prefect or MLflow is imported and before any file is created, so a
mistyped command costs a one-line error and nothing else. Rules:

- Every user mistake is one `ConfigError` (fedsweep/config/): Hydra's own composition errors,
  a malformed grid, a schema violation in any cell, or a pre-flight failure (an output folder that
  cannot be created, a checkpoint URL whose package is missing, dataset files that are absent).
- Checks go from cheap to costly: composition and the top-level schema need no torch; plug-in
  checks import their modules; the file-system checks come last and only read metadata.
- An error found in one grid cell names the cell's overrides when the bad key is one the grid sets.
- A command-line key inside a group the grid varies (`strategy.mu=0.1` beside `grid.strategy`) is
  set in the cells whose option has it; one that reaches no cell, and the forms that cannot work
  (`+strategy.mu=…`, `grid.strategy.fedprox.mu=…`), are one error naming the rule and the options.
- The plan for a command line is computed once per process: `flows/sweep.py` plans every job before
  handing over to Hydra, and the job then finds its plan here instead of composing it again.
- Each cell is keyed without `rounds` unless its rounds are part of what it is, with `runner.device=auto`
  resolved first, and placed in its folder (its own, or an earlier folder of the same cell) and named
  by cli/identity.py, which reads the folders already there and writes nothing.
"""

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from cli.identity import Folder, assign_names, place
from cli.overrides import check_reached, for_hydra, read_command_line
from fedsweep.config import CellSettings, ConfigError, validate
from fedsweep.config.compose import Composed, compose_cell
from fedsweep.config.environment import (
    check_creatable,
    check_dataset_files,
    check_device,
    check_location,
    check_tracking,
    with_device_resolved,
)
from fedsweep.config.schema import TrackingSettings
from fedsweep.grid import (
    CellPlan,
    GridError,
    cell_key,
    cell_name,
    cell_stem,
    expand_grid,
    flatten,
    override_key,
    reaches,
)

# What a grid may not vary: these describe the sweep as a whole, not one of its cells.
SWEEP_KEYS = ("sweep_name", "output_dir", "resume", "grid", "tracking", "report")


@dataclass(frozen=True)
class SweepPlan:
    """What `flows/sweep.py` runs: the cells (plain dicts: they travel to tasks and cell.json) and
    where their results go."""

    name: str
    key: str
    dir: Path
    cells: list[dict[str, Any]]
    tracking: TrackingSettings
    resume: bool
    params: dict[str, Any] = field(default_factory=dict)
    # Per cell: its grid point's overrides, then the command line's grid-scoped ones it has the key of.
    overrides: list[tuple[str, ...]] = field(default_factory=list)
    scoped: tuple[str, ...] = ()  # the command line's grid-scoped overrides (`strategy.mu=0.1`)
    folders: tuple[Folder, ...] = ()  # cell folders already there that the cells' names were chosen beside


_PLANS: dict[tuple[str, tuple[str, ...]], SweepPlan] = {}


def plan_sweep(cfg: DictConfig) -> SweepPlan:
    """Inside `hydra.main`: the plan for this job's overrides (ConfigError on any user mistake)."""
    hydra_cfg = HydraConfig.get()
    # The user's config folders are Hydra's own overrides, not the job's, yet the cells compose from them.
    searchpath = [o for o in hydra_cfg.overrides.hydra if override_key(o) == "hydra.searchpath"]
    return plan_overrides(hydra_cfg.job.config_name, [*searchpath, *hydra_cfg.overrides.task])


def plan_overrides(config_name: str, overrides: list[str]) -> SweepPlan:
    """Compose every cell of the grid with the command line's overrides (which win over the grid).

    Needs an initialised Hydra (`hydra.main` or `initialize_config_dir`); raises ConfigError.
    """
    # Hydra's keys (hydra.searchpath) first, wherever they were typed: the job finds the same plan.
    overrides = sorted(overrides, key=lambda o: override_key(o).split(".", 1)[0] != "hydra")
    memo = (config_name, tuple(overrides))
    if memo in _PLANS:
        return _PLANS[memo]
    base, common, scoped, varied = read_command_line(config_name, overrides)
    grid = base.config.get("grid")
    try:
        points = expand_grid(grid, common)
        _check_axes(points)
    except GridError as err:
        raise ConfigError(str(err), key="grid") from None
    planned = [_plan_cell(config_name, common, scoped, point, base) for point in points]
    cells, settings = [cell for cell, _, _ in planned], [s for _, s, _ in planned]
    check_reached(scoped, [applied for _, _, applied in planned], varied)
    _check_unique(cells)
    sweep = settings[0]  # a grid cannot vary SWEEP_KEYS: every cell has the sweep's own
    sweep_name = sweep.knobs.sweep_name
    sweep_dir = Path(sweep.knobs.output_dir) / sweep_name
    _check_paths(sweep_dir, settings, sweep.tracking)
    folders = place(cells, with_device_resolved)  # reads the cell folders already there
    assign_names(cells, folders)
    for cell, point in zip(cells, points, strict=True):  # the plug-ins: these imports cost seconds
        try:
            validate(cell["config"], groups=cell["choices"])
        except ConfigError as err:
            raise _in_cell(err, point) from None
    _check_inputs(cells, settings)
    for cell in cells:
        for planning_only in ("choices", "folder", "location"):
            del cell[planning_only]
    keys = "".join(sorted(c["key"] for c in cells))
    plan = SweepPlan(
        name=sweep_name,
        key=hashlib.sha256(f"{sweep_name}:{keys}".encode()).hexdigest()[:16],
        dir=sweep_dir,
        cells=cells,
        tracking=sweep.tracking,
        resume=sweep.knobs.resume,
        params={"grid": str(grid), "overrides": " ".join(overrides)},
        overrides=[
            (*point.overrides, *applied) for point, (_, _, applied) in zip(points, planned, strict=True)
        ],
        scoped=tuple(scoped),
        folders=tuple(folders),
    )
    _PLANS[memo] = _PLANS[(config_name, tuple(for_hydra(overrides, plan.scoped)))] = plan
    return plan


def _plan_cell(
    config_name: str,
    common: list[str],
    scoped: list[str],
    point: CellPlan,
    base: Composed,
) -> tuple[dict[str, Any], CellSettings, tuple[str, ...]]:
    """One cell (composed unless it is the base config: no grid), checked cheaply and keyed; with its
    validated settings and the grid-scoped overrides it has the keys of. Its folder and name come
    later (`place`, `assign_names`), once every cell of the job is known."""
    try:
        composed = compose_cell(config_name, [*common, *point.overrides]) if point.overrides else base
        config, choices = copy.deepcopy(composed.config), dict(composed.choices)
        applied = tuple(o for o in scoped if reaches(config, override_key(o)))
        if applied:
            composed = compose_cell(config_name, [*common, *point.overrides, *applied])
            config, choices = composed.config, composed.choices
        settings = validate(config, groups=choices, plugins=False)
    except ConfigError as err:
        raise _in_cell(err, point) from None
    config = with_device_resolved(config)  # `auto` on this machine: the cell of the device it runs on
    knobs = settings.knobs
    # Rounds are where a cell stops, unless the grid varies them or a setting is interpolated from them.
    rounds_in_key = bool(composed.rounds_from) or any(override_key(o) == "rounds" for o in point.overrides)
    naming = {
        "strategy": choices["strategy"],
        "num_clients": knobs.num_clients,
        "seed": knobs.seed,
        "labels": point.labels,
    }
    key = cell_key(config, with_rounds=rounds_in_key)
    sweep_dir = Path(knobs.output_dir) / knobs.sweep_name
    params = {
        **flatten(config),
        **{f"choice.{k}": v for k, v in choices.items() if not k.startswith("hydra")},
    }
    cell = {
        "name": cell_name(
            rounds=knobs.rounds, **naming
        ),  # until `assign_names` (the rounds committed, a suffix)
        "key": key,
        "config": config,
        "params": params,
        "choices": choices,
        "rounds_in_key": rounds_in_key,
        "rounds_from": list(composed.rounds_from),
        "stem": cell_stem(**naming, rounds=knobs.rounds if rounds_in_key else None),
        "base": cell_stem(**naming),
        "naming": naming,
        "location": settings.checkpoint.location or str(sweep_dir / "cells"),
    }
    return cell, settings, applied


def _check_axes(points: list[CellPlan]) -> None:
    for point in points:
        for override in point.overrides:
            key = override_key(override)
            if key.split(".", 1)[0] in SWEEP_KEYS:
                raise GridError(f"grid: {key} describes the whole sweep and cannot vary between cells")


def _in_cell(err: ConfigError, point: CellPlan) -> ConfigError:
    """The error, naming the grid cell when the bad key is one the grid sets for it."""
    grid_keys = {override_key(o) for o in point.overrides}
    bad = err.key or ""
    if not any(bad == k or bad.startswith(f"{k}.") or k.startswith(f"{bad}.") for k in grid_keys):
        return err
    return ConfigError(f"{err} (in the grid cell {' '.join(point.overrides)})", key=err.key)


def _check_unique(cells: list[dict[str, Any]]) -> None:
    seen: dict[str, str] = {}
    for cell in cells:
        if cell["key"] in seen:
            raise ConfigError(
                f"grid: cells {seen[cell['key']]} and {cell['name']} are the same experiment; "
                "remove the repeated value",
                key="grid",
            )
        seen[cell["key"]] = cell["name"]


def _check_paths(sweep_dir: Path, settings: list[CellSettings], tracking: TrackingSettings) -> None:
    """Can the sweep write where it will? (Nothing is created.)"""
    check_creatable(sweep_dir, key="output_dir")
    check_tracking(tracking.model_dump())
    for location in sorted({s.checkpoint.location for s in settings} - {None}):
        check_location(location, key="checkpoint.location")


def _check_inputs(cells: list[dict[str, Any]], settings: list[CellSettings]) -> None:
    """Is everything the cells read there: the device, the dataset files, the engine? (Nothing is
    started or written; data are loaded only for the checks that need them, and kept.)"""
    from fedsweep import execution  # noqa: PLC0415 - torch: after the cheap checks, as the plug-ins
    from fedsweep.batched.support import check_config as check_batchable  # noqa: PLC0415 - as execution
    from fedsweep.cell.cell import build_parts  # noqa: PLC0415 - as execution

    for device in sorted({s.runner.device for s in settings}):
        check_device(device)
    execution.check_plan(cells)
    datasets = {repr(sorted(c["config"]["dataset"].items())): c["config"]["dataset"] for c in cells}
    for dataset in datasets.values():
        check_dataset_files(dataset)
    for cell in cells:  # last: a simulated deadline is checked on the cell's clients (its data and model)
        if (cell["config"].get("systems") or {}).get("deadline_s") is not None:
            build_parts(cell["config"])  # ConfigError if no client can meet it; the data stay cached
    for cell in cells:  # batch_clients=N: the model and strategy must batch (a trial step; data cached)
        if isinstance(cell["config"]["runner"]["batch_clients"], int):
            check_batchable(cell["config"])


def name_jobs(plans: list[SweepPlan]) -> None:
    """Names across every job of a command (`-m`): a later job's cell that differs from an earlier
    job's cell of the same name gets a suffix, as cells of one grid do (cli/identity.py)."""
    if len(plans) > 1:
        assign_names([c for p in plans for c in p.cells], [f for p in plans for f in p.folders])
