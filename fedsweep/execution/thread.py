"""The thread engine: every job in the calling thread (`runner/engine=thread`).

No processes to start and no data to ship: the simplest engine, and the one a GPU or an
in-memory state (`checkpoint.location=memory://...`) needs, since other processes cannot share them.
"""

from fedsweep.cell.cell import Cell
from fedsweep.execution.base import Engine, Executor, InThread
from fedsweep.execution.workers import usable_cpus


class ThreadEngine(Engine):
    """Jobs in the thread of the task that asks for them."""

    def executor(self, cell: Cell) -> Executor:
        return InThread(cell.dir)

    def width(self) -> int:
        """Client chains run side by side in the task runner's threads, one per usable CPU."""
        return usable_cpus()
