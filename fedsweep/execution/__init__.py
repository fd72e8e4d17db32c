"""The execution seam: the sweep's engines, one per distinct `runner.engine` config, and the one
place that turns a cell into the executor of its jobs.

Engines (fedsweep/execution/base.py is their contract) are plug-ins chosen by `_target_` in
conf/runner/engine/*.yaml: `process` (worker processes, the default), `thread` (this thread) and
`dask` (a Dask cluster). The command line, the flows and the tasks call the functions here and never
name an engine: `check_plan` at planning, `start` before anything else, `executor_for` in a task,
`parallel_clients`, `describe` and `round_measures` for the round and the record, `shutdown` last.
"""

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any, cast

from fedsweep.cell.cell import Cell
from fedsweep.config.plugins import build, plugin_class
from fedsweep.execution.base import Engine, EngineInfo, EngineLost, Executor, PlannedCell, WorkerLost

__all__ = [
    "EngineInfo",
    "EngineLost",
    "WorkerLost",
    "check_plan",
    "describe",
    "engine_of",
    "executor_for",
    "parallel_clients",
    "round_measures",
    "shutdown",
    "start",
]

ENGINE = (Engine, "an execution engine (a fedsweep.execution.base.Engine subclass)")
_ENGINES: dict[str, Engine] = {}  # the engine config, as JSON -> the sweep's engine
_lock = threading.Lock()


def _node(config: Mapping[str, Any]) -> Mapping[str, Any]:
    node: Mapping[str, Any] = config["runner"]["engine"]
    return node


def _key(node: Mapping[str, Any]) -> str:
    return json.dumps(node, sort_keys=True, default=str)


def engine_of(config: Mapping[str, Any]) -> Engine:
    """The sweep's engine for a cell's config, built on first use (ConfigError naming the key)."""
    node = _node(config)
    key = _key(node)
    with _lock:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = build(node, key="runner.engine", expect=ENGINE)
        return engine


def check_plan(cells: Sequence[PlannedCell]) -> None:
    """Plan time: each engine's own checks on its settings and its cells' state folders (nothing is
    started or written); ConfigError naming the key."""
    by_engine: dict[str, list[PlannedCell]] = {}
    for cell in cells:
        by_engine.setdefault(_key(_node(cell["config"])), []).append(cell)
    for group in by_engine.values():
        node = _node(group[0]["config"])
        cls = cast(type[Engine], plugin_class(node, key="runner.engine", expect=ENGINE))
        settings = {k: v for k, v in node.items() if not k.startswith("_")}
        cls.check_plan(settings, sorted({c["dir"].rsplit("/", 1)[0] for c in group}))


def start(cells: Sequence[PlannedCell]) -> None:
    """Start the engines the sweep's cells use (called first, while this process has no other thread:
    worker processes fork then; a cluster is reached then). ConfigError if one cannot start."""
    by_engine: dict[int, tuple[Engine, list[PlannedCell]]] = {}
    for cell in cells:
        engine = engine_of(cell["config"])
        by_engine.setdefault(id(engine), (engine, []))[1].append(cell)
    for engine, group in by_engine.values():
        engine.start(group)


def executor_for(cell: Cell) -> Executor:
    """Where the jobs of `cell` run."""
    return engine_of(cell.config).executor(cell)


def parallel_clients(config: Mapping[str, Any]) -> int:
    """A cell's `runner.max_parallel_clients`, with 0 meaning as many as its engine runs side by side."""
    return int(config["runner"]["max_parallel_clients"]) or engine_of(config).width()


def round_measures(cell: Cell) -> dict[str, float]:
    """Per-round metrics of the cell's engine (Dask: `workers`, those that ran the cell's jobs)."""
    return engine_of(cell.config).round_measures(cell)


def describe() -> list[EngineInfo]:
    """What the sweep says about where its jobs run: one `EngineInfo` per engine that has something
    to say (a Dask cluster: its scheduler and dashboard)."""
    with _lock:
        engines = list(_ENGINES.values())
    return [info for info in (engine.describe() for engine in engines) if info is not None]


def shutdown() -> None:
    """Stop every engine (worker processes, the Dask client and the cluster it started)."""
    with _lock:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        engine.shutdown()
