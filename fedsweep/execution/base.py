"""The engine contract: where a sweep's pure jobs run.

An engine is a plug-in like every method: a class named by `_target_` in `conf/runner/engine/*.yaml`
(chosen with `runner/engine=NAME`, or `runner=dask`), its keyword arguments the yaml's other keys.
The sweep holds one instance per distinct engine config (fedsweep/execution/__init__.py), and
nothing outside fedsweep/execution/ names an engine. Rules:

- **Jobs.** Prefect's tasks stay in the sweep's process (retries, timeouts, persisted results, the
  UI) and hand their work to the engine as a *job*: a module-level function `job(cell_dir, *args)`
  (fedsweep/jobs.py) that opens the cell from its folder and returns a small JSON-able answer. A job
  is pure, so running it anywhere, twice, or again after a kill gives the same bytes.
- **Life.** `start(cells)` once, before the sweep starts other threads, with the planned cells
  (resolved config and folder) that use this engine (worker processes fork then; a cluster is
  reached then, so that an unreachable one is a one-line error before anything is written);
  `shutdown()` at the end.
- **Executors.** `executor(cell)` says where that cell's jobs run: an `Executor` bound to the cell's
  folder, whose `width` is how many jobs it runs side by side (what evaluation splits into).
  `width()` is the engine's own parallelism: `runner.max_parallel_clients=0` means that many client
  chains at once.
- **Plan-time checks.** `check_plan(settings, locations)`, a classmethod, refuses what cannot work
  (a missing package, a scheduler that does not answer, state workers cannot reach) with a
  `ConfigError` naming the key, before anything is written.
- **Faults.** An error raised by a job is raised by `run`; an engine that loses the machine a job ran
  on raises a retryable error (`WorkerLost`), so Prefect's retries run the job again; an engine lost
  as a whole (a Dask scheduler gone) raises `EngineLost`, which stops the sweep cleanly: re-running
  resumes.
- **Reporting.** `describe()` is what the sweep says about where jobs run (`EngineInfo`: one terminal
  line, tags of the sweep's MLflow run, links shown as Prefect artifacts), or None when there is
  nothing to say; `round_measures(cell)` adds per-round metrics (Dask: `workers`).

Every engine trains with `runner.torch_threads` intra-op threads per job (set by the job itself), so
a cell's results do not depend on where or how widely it ran.

Clients batched on a GPU (`runner.batch_clients`, docs/gpu.md) are a kind of job, not an engine: a
batch is one job (`fedsweep.jobs.client_batch`) that every engine runs like any other, so a Dask
cluster spreads a round's batches over its workers; `Executor.width` says how many run at once.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from fedsweep.cell.cell import Cell

T = TypeVar("T")
Job = Callable[..., T]
Config = Mapping[str, Any]  # a cell's resolved config
PlannedCell = Mapping[str, Any]  # a cell of the sweep's plan: at least its "config" and its folder, "dir"


@dataclass(frozen=True)
class EngineInfo:
    """Where a sweep's jobs run, as the sweep reports it."""

    line: str  # printed once at the start, e.g. "dask: scheduler tcp://..., dashboard http://..."
    tags: dict[str, str] = field(default_factory=dict)  # on the sweep's MLflow run
    links: tuple[tuple[str, str, str], ...] = ()  # (artifact key, url, description): Prefect link artifacts


class EngineLost(RuntimeError):
    """The engine as a whole stopped answering: the sweep cannot go on (re-running resumes)."""


class WorkerLost(RuntimeError):
    """A worker died in the middle of a job (killed, out of memory, crashed): worth a retry."""


class Executor(Protocol):
    """Runs one cell's jobs somewhere; the caller's thread waits for the answer."""

    @property
    def width(self) -> int:
        """How many jobs it runs side by side."""
        ...

    def run(self, job: Job, *args: Any) -> Any:
        """`job(cell_dir, *args)`."""
        ...

    def map(self, job: Job, calls: list[tuple]) -> list[Any]:
        """`job(cell_dir, *args)` for each args in `calls`, side by side; answers in order."""
        ...


class InThread:
    """A cell's jobs in the calling thread."""

    width = 1

    def __init__(self, cell_dir: str) -> None:
        self.cell_dir = cell_dir

    def run(self, job: Job, *args: Any) -> Any:
        return job(self.cell_dir, *args)

    def map(self, job: Job, calls: list[tuple]) -> list[Any]:
        return [job(self.cell_dir, *args) for args in calls]


class Engine(ABC):
    """Base class of engines (see the module docstring for the contract)."""

    def start(self, cells: Sequence[PlannedCell]) -> None:
        """Get ready for these cells of the sweep (called once, before other threads start)."""

    @abstractmethod
    def executor(self, cell: Cell) -> Executor:
        """Where `cell`'s jobs run."""

    def width(self) -> int:
        """Jobs the engine runs side by side: client chains at once under `max_parallel_clients=0`."""
        return 1

    def describe(self) -> EngineInfo | None:
        """What the sweep says about where its jobs run (None: nothing worth saying)."""
        return None

    def round_measures(self, cell: Cell) -> dict[str, float]:
        """Per-round metrics of the engine for `cell` since the last call."""
        return {}

    def shutdown(self) -> None:
        """Stop what `start` started."""

    @classmethod
    def check_plan(cls, settings: Mapping[str, Any], locations: Sequence[str]) -> None:
        """ConfigError for what cannot work with this engine's `settings` (its yaml's keys) and the
        cells' state `locations`; nothing is started or written."""
