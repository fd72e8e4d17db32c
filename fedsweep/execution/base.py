"""The executor protocol, and the backend that runs jobs in the calling thread."""

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
Job = Callable[..., T]


class Executor(Protocol):
    """Runs pure jobs of a cell somewhere; the caller's thread waits for the answer.

    `width` is how many jobs it runs side by side (what `map` splits work into). An error raised by
    a job is raised by `run`; a backend that loses the machine a job ran on raises a retryable
    error (`fedsweep.execution.workers.WorkerLost`), so Prefect's retries run the job again.
    """

    width: int

    def run(self, cell_dir: str, job: Job, *args: Any) -> Any:
        """`job(cell_dir, *args)`."""
        ...

    def map(self, cell_dir: str, job: Job, calls: list[tuple]) -> list[Any]:
        """`job(cell_dir, *args)` for each args in `calls`, side by side; answers in order."""
        ...


class InThread:
    """Jobs run in the calling thread."""

    width = 1

    def run(self, cell_dir: str, job: Job, *args: Any) -> Any:
        return job(cell_dir, *args)

    def map(self, cell_dir: str, job: Job, calls: list[tuple]) -> list[Any]:
        return [job(cell_dir, *args) for args in calls]
