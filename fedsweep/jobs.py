"""The pure jobs a cell's tasks hand to the execution engine (fedsweep/execution/).

A job is a module-level function of the cell's folder and small JSON-able arguments, so that any
engine can run it: in this thread, in a worker process, on another machine. It opens the cell from
its folder (`open_cell`, once per process) and calls the round's library (fedsweep/rounds/): a
client's task, a batch of clients' tasks trained together (`runner.batch_clients`), a probe, a part of
the evaluation.
"""

from typing import Any

import torch

from fedsweep.cell.cell import Cell, open_cell
from fedsweep.checkpoint.blobs import BlobRef
from fedsweep.rounds.batch import BatchAnswer, batch_task
from fedsweep.rounds.evaluate import evaluate_global
from fedsweep.rounds.evaluate import probe_loss as loss_at
from fedsweep.rounds.refs import ClientRef
from fedsweep.rounds.work import client_task


def _open(cell_dir: str) -> Cell:
    """The cell, with this process's intra-op threads set to the cell's `runner.torch_threads`: fixed
    per job whatever the machine (the float rounding of a convolution depends on it), and set on
    every job because one process serves cells that may ask for different numbers."""
    cell = open_cell(cell_dir)
    torch.set_num_threads(cell.runner.torch_threads)
    return cell


def client_epoch(cell_dir: str, kwargs: dict[str, Any]) -> ClientRef:
    """One task of a client's round (`fedsweep.rounds.work.client_task`'s keyword arguments)."""
    return client_task(_open(cell_dir), **kwargs)


def client_batch(cell_dir: str, kwargs: dict[str, Any]) -> BatchAnswer:
    """One task of a batch of clients (`fedsweep.rounds.batch.batch_task`'s keyword arguments)."""
    return batch_task(_open(cell_dir), **kwargs)


def probe_loss(cell_dir: str, ref: BlobRef, round: int, client: int, samples: int | None) -> float:
    """A probed client's training loss at the model at `ref` (`fedsweep.rounds.evaluate.probe_loss`)."""
    return loss_at(_open(cell_dir), ref, round=round, client=client, samples=samples)


def evaluate_part(cell_dir: str, ref: BlobRef, part: int, parts: int) -> dict[str, Any]:
    """Evaluation sums of the model at `ref` on one part of the test split."""
    return evaluate_global(_open(cell_dir), ref, part=part, parts=parts)
