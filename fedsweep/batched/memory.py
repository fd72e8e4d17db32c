"""GPU memory for batched clients: how many fit, what happens when they do not, and the peak.

- **How many fit** (`runner.batch_clients=auto` on CUDA): a trial step of two clients measures what
  one client costs (its stacked parameters, gradients, momentum and activations; the peak of
  `torch.cuda.max_memory_allocated` over the trial, halved: the fixed part counts twice, a margin),
  once per model, batch size and device in a process; each job then reads the free memory
  (`torch.cuda.mem_get_info` plus what PyTorch's allocator holds unused) and trains at most
  `FREE_FRACTION` of it worth of clients at once.
- **When they do not** (`torch.OutOfMemoryError`, an estimate gone wrong or memory taken by
  another process): the batch is split in two halves that train one after the other, and again if
  need be, down to one client, whose OOM is then an error like any other. A split spends no retry;
  the job counts splits and the round logs them. The halves' results equal an unsplit batch's up to
  float rounding (a client's result does not depend on its batch-mates beyond that).
- **The peak** (`gpu_mem_mb`): `torch.cuda.max_memory_allocated` since the job started, reported
  with its answer; the round's metric is the largest of its jobs' and its own (evaluation).

Measured nowhere yet: the sessions that wrote this had no GPU. Whether `torch.cuda.empty_cache()`
between rounds helps is measured by benchmarks/gpu.py, not assumed: nothing here calls it but the
OOM path, before re-running the halves.
"""

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

log = logging.getLogger("fedsweep")
FREE_FRACTION = 0.8  # of the free memory a job fills with clients
T = TypeVar("T")
R = TypeVar("R")
_PER_CLIENT: dict[tuple[int, int, str], int] = {}  # (id(model), batch_size, device) -> bytes per client


def reset_peak(device: torch.device) -> None:
    """Start measuring the peak GPU memory (nothing on other devices)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device: torch.device) -> float | None:
    """MiB of GPU memory allocated at the peak since `reset_peak` (None off CUDA)."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def clients_that_fit(
    device: torch.device, per_client: Callable[[], int], *, key: tuple[int, int]
) -> int | None:
    """How many clients one batch may hold on `device` now (None: no limit, off CUDA);
    `per_client()` measures one client's bytes, once per `key` (model id, batch size) and device."""
    if device.type != "cuda":
        return None
    memo = (*key, str(device))
    if memo not in _PER_CLIENT:
        _PER_CLIENT[memo] = max(1, per_client())
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return max(1, int(FREE_FRACTION * free // _PER_CLIENT[memo]))


def measure(device: torch.device, trial: Callable[[], object], clients: int) -> int:
    """Bytes per client of `trial` (a batched step of `clients` clients) on a CUDA `device`."""
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    trial()
    torch.cuda.synchronize(device)
    return int((torch.cuda.max_memory_allocated(device) - base) / clients)


def in_halves(
    members: Sequence[T], train: Callable[[Sequence[T]], list[R]], *, what: str
) -> tuple[list[R], int]:
    """(`train(members)`, splits): on `torch.OutOfMemoryError` the members are split in halves
    trained one after the other (recursively, down to one member); no retry is spent."""
    try:
        return train(members), 0
    except torch.OutOfMemoryError:
        if len(members) < 2:
            raise
    half = len(members) // 2
    log.warning(
        "%s: out of GPU memory with %d clients in a batch: split in two and run again", what, len(members)
    )
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    first, a = in_halves(members[:half], train, what=what)
    second, b = in_halves(members[half:], train, what=what)
    return first + second, 1 + a + b


def chunks(members: Sequence[T], size: int | None) -> list[Sequence[T]]:
    """`members` in consecutive chunks of at most `size` (one chunk without a size)."""
    if not size or size >= len(members):
        return [members]
    return [members[i : i + size] for i in range(0, len(members), size)]
