"""The probe task: each candidate's training loss at the round's global model, before selection.

A selector that asks for it (`Selector.probe`, power-of-choice) gets the losses from this task. The
work is one job per candidate, handed to the execution seam side by side like evaluation. The result
is persisted under a content key (the cell, the round, the global model's hash, the candidates and
the sample count), so a resumed run reads the same losses instead of recomputing them, and selects
the same clients.
"""

import hashlib
import json
from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from fedsweep import jobs
from fedsweep.cell.cell import Cell
from fedsweep.cell.layout import round_dir
from fedsweep.checkpoint.blobs import BlobRef
from fedsweep.execution import executor_for


def probe_key(context: TaskRunContext, p: dict[str, Any]) -> str:
    asked = hashlib.sha256(json.dumps([sorted(p["clients"]), p["samples"]]).encode()).hexdigest()[:16]
    return f"{p['cell'].key}/{round_dir(p['round'])}/probe-{p['global_ref']['sha256'][:24]}-{asked}"


@task(
    name="probe",
    task_run_name="r{round}-probe",
    cache_key_fn=probe_key,
    persist_result=True,
    result_serializer="json",
)
def probe_losses(
    cell: Cell, round: int, global_ref: BlobRef, clients: list[int], samples: int | None
) -> dict[str, float]:
    """{str(client): its mean training loss at `global_ref`} for each of `clients` (on `samples` of
    its samples, or all of them); the keys are strings because the result is stored as JSON."""
    executor = executor_for(cell)
    calls = [(global_ref, round, client, samples) for client in clients]
    losses = executor.map(jobs.probe_loss, calls)
    return {str(client): float(loss) for client, loss in zip(clients, losses, strict=True)}
