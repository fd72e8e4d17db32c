"""The pure jobs a cell's tasks hand to the execution seam (fedsweep/execution/).

A job is a module-level function of the cell's folder and small JSON-able arguments, so that any
backend can run it: in this thread, in a worker process, on another machine. It rebuilds the cell
from its folder (`cell_env`, once per process) and calls a step (fedsweep/steps.py).
"""

from typing import Any

import torch

from fedsweep import steps
from fedsweep.cell import CellEnv, cell_env


def _env(cell_dir: str) -> CellEnv:
    """The cell, with this process's intra-op threads set to the cell's `runner.torch_threads`: fixed
    per job whatever the machine (the float rounding of a convolution depends on it), and set on
    every job because one process serves cells that may ask for different numbers."""
    env = cell_env(cell_dir)
    torch.set_num_threads(env.runtime.settings.runner.torch_threads)
    return env


def client_epoch(cell_dir: str, kwargs: dict[str, Any]) -> steps.Ref:
    """One client epoch (`steps.client_epoch`'s keyword arguments)."""
    return steps.client_epoch(_env(cell_dir), **kwargs)


def probe_loss(cell_dir: str, ref: steps.Ref, round: int, client: int, samples: int | None) -> float:
    """A probed client's training loss at the model at `ref` (`steps.probe_loss`)."""
    return steps.probe_loss(_env(cell_dir), ref, round=round, client=client, samples=samples)


def evaluate_part(cell_dir: str, ref: steps.Ref, part: int, parts: int) -> dict[str, Any]:
    """Evaluation sums of the model at `ref` on one part of the test split."""
    return steps.evaluate_global(_env(cell_dir), ref, part=part, parts=parts)
