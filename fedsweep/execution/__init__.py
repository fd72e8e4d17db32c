"""The execution seam: where a cell's pure jobs run, chosen in one place (`executor_for`).

Prefect's tasks stay in the sweep's process (retries, timeouts, persisted results, the UI) and hand
their work here as a *job*: a module-level function `job(cell_dir, *args)` that rebuilds what it
needs from the cell folder (`fedsweep.cell.cell_env`) and returns a small JSON-able answer (a blob
reference, a few sums). A job is pure, so running it anywhere, twice, or again after a kill gives
the same bytes. Backends:

- `InThread` (base.py): in the calling thread (`runner.pool=thread`, a GPU, `memory://` state).
- `Processes` (processes.py): long-lived worker processes, the dataset shipped once to each as
  shared memory (`runner.pool=process`, the default on the CPU).
- `DaskExecutor` (dask.py): a Dask cluster, local or remote, whose workers rebuild a cell from its
  folder once per process (`runner.pool=dask`, settings in `runner.dask`).

Every backend trains with `runner.torch_threads` intra-op threads per job (default 1), whatever
the machine, so a cell's results do not depend on where or how widely it ran.
"""

from fedsweep.execution.base import Executor, InThread
from fedsweep.execution.choose import (
    describe,
    executor_for,
    parallel_clients,
    round_measures,
    shutdown,
    start,
)

__all__ = [
    "Executor",
    "InThread",
    "describe",
    "executor_for",
    "parallel_clients",
    "round_measures",
    "shutdown",
    "start",
]
