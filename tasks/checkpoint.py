"""The checkpoint task: commit a round (model, server, selector and client states, metric history)."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from fedsweep.cell.cell import Cell
from fedsweep.rounds.state import CellState, commit


@task(cache_policy=NO_CACHE, name="checkpoint", task_run_name="r{round}-checkpoint")
def commit_round(cell: Cell, round: int, state: CellState) -> int:
    """Write round `round`'s checkpoint (manifest last), then drop what no kept checkpoint needs."""
    commit(cell, state)
    return round
