"""The cell object: identity, settings and parts of one FL experiment, built once per process.

Everything is derived from the resolved config alone (`cell.json` in the cell's folder), so a
worker process, a retry or a resumed run rebuilds exactly the same objects.
"""

import threading
from collections.abc import Mapping
from typing import Any

from fedsweep.cell.data import CellData, build_data
from fedsweep.cell.fleet import Fleet
from fedsweep.cell.layout import CellStores, open_stores, read_cell_config
from fedsweep.cell.methods import CellMethods, build_methods
from fedsweep.config.plugins import build
from fedsweep.config.schema import CellSettings, Knobs, RunnerSettings, validate
from fedsweep.systems.base import SYSTEM_MODEL


class Cell:
    """One cell in this process: its key, name and folder, settings, data, methods, fleet and stores.

    A plain class, not a dataclass: Prefect walks the dataclasses among a task's parameters (looking
    for futures), and a cell holds a dataset.
    """

    def __init__(
        self,
        *,
        key: str,
        name: str,
        dir: str,
        config: dict[str, Any],
        settings: CellSettings,
        data: CellData,
        methods: CellMethods,
        fleet: Fleet,
        stores: CellStores,
    ) -> None:
        self.key, self.name, self.dir, self.config, self.settings = key, name, dir, config, settings
        self.data, self.methods, self.fleet, self.stores = data, methods, fleet, stores

    @property
    def knobs(self) -> Knobs:
        return self.settings.knobs

    @property
    def runner(self) -> RunnerSettings:
        return self.settings.runner

    @property
    def num_clients(self) -> int:
        return self.data.num_clients

    def __repr__(self) -> str:
        return f"Cell({self.name}, {self.key}, {self.dir})"


def build_parts(config: Mapping[str, Any]) -> tuple[CellSettings, CellData, CellMethods, Fleet]:
    """A cell's settings, data, methods and fleet from its resolved config (plain dict); a ConfigError
    when the fleet could never meet a simulated deadline."""
    settings = validate(config, plugins=False)  # the plug-ins are checked as `build` makes them
    knobs = settings.knobs
    data = build_data(config)
    methods = build_methods(config, settings, data)
    systems = build(config["systems"], key="systems", expect=SYSTEM_MODEL) if config.get("systems") else None
    steps = knobs.local_steps is not None
    fleet = Fleet(
        seed=knobs.seed,
        num_samples=data.num_samples,
        faults=methods.faults,
        systems=systems,
        model_bytes=methods.model_bytes,
        full_work=knobs.local_steps if knobs.local_steps is not None else int(knobs.local_epochs or 0),
        steps_batch_size=methods.local.batch_size if steps else None,
    )
    fleet.check_deadline()
    return settings, data, methods, fleet


def build_cell(config: Mapping[str, Any], *, key: str, name: str, dir: str) -> Cell:
    """The cell of a resolved config whose state lives in `dir`."""
    config = dict(config)
    settings, data, methods, fleet = build_parts(config)
    return Cell(
        key=key,
        name=name,
        dir=dir,
        config=config,
        settings=settings,
        data=data,
        methods=methods,
        fleet=fleet,
        stores=open_stores(dir, keep=settings.checkpoint.keep),
    )


_OPEN: dict[str, Cell] = {}
_OPEN_KEPT = 8
_OPEN_LOCK = threading.Lock()


def open_cell(cell_dir: str) -> Cell:
    """The cell recorded in `cell_dir` (its `cell.json`), built once per process and kept.

    What a job calls where it runs (another process or machine), and what a sweep calls once per
    cell before handing the object to its flow; nothing else looks a cell up by its folder.
    """
    with _OPEN_LOCK:
        cell = _OPEN.get(cell_dir)
        if cell is None:
            record = read_cell_config(cell_dir)
            cell = build_cell(record["config"], key=record["key"], name=record["name"], dir=cell_dir)
            _OPEN[cell_dir] = cell
            while len(_OPEN) > _OPEN_KEPT:
                _OPEN.pop(next(iter(_OPEN)))
        return cell


def forget_cell(cell_dir: str) -> None:
    """Build the cell in `cell_dir` again at its next `open_cell`: its `cell.json` was rewritten (a
    cell extended to more rounds by a later `-m` job of the same process)."""
    with _OPEN_LOCK:
        _OPEN.pop(cell_dir, None)
