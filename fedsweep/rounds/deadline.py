"""A round's deadline (`aggregation.round_timeout_s`) and the record of the clients it cut off.

The deadline counts from the start of the round's training. Rules:

- **What is cut.** Once it passes, every selected client whose chain of epoch tasks did not
  complete (running, retrying, or not yet started) is a failure of kind `deadline`, and the round
  aggregates what arrived under `min_fit` / `on_insufficient`. The client-epoch task bounds each
  attempt by the time left (tasks/train.py); an attempt that starts after the deadline fails at
  once, so a retry does no work past it.
- **What is recorded.** Which clients a deadline cuts depends on timing, not on the seed, so it is
  written down (`work/round-000007/deadline.json`, atomically, before aggregation) and a replay of
  the round (a resumed run) trains none of them and cuts them again: the aggregation's input, and
  the final weights, are those of the run that wrote the record. The record goes with the round's
  other intermediate files once the round is committed. A round never cut has no record, and a
  replayed round gets a fresh deadline for the clients it does train.
- A run in which a deadline fired is therefore reproducible from its records, not from scratch.
"""

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

from fedsweep.cell.cell import Cell
from fedsweep.cell.layout import round_dir
from fedsweep.checkpoint.storage import CheckpointError
from fedsweep.failures import Failure

RECORD = "deadline.json"
GRACE_S = 1.0  # how long past the deadline the round loop waits for attempts to notice it


@dataclass(frozen=True, kw_only=True)
class Deadline:
    """Round `round`'s deadline: `at` on `time.monotonic()`'s clock; `earlier` were cut before."""

    round: int
    seconds: float
    at: float
    earlier: frozenset[int] = frozenset()

    def left(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0

    def failures(self, clients: Iterable[int]) -> list[Failure]:
        """The failure records of cut clients; the same words in every run, as aggregation hashes them."""
        message = f"not done by the round deadline ({self.seconds:g} s)"
        return [Failure(client=c, kind="deadline", message=message, retries=0) for c in sorted(clients)]


def start(cell: Cell, rnd: int) -> Deadline | None:
    """Round `rnd`'s deadline from now, with the clients an earlier run cut off; None without one."""
    seconds = cell.methods.policy.round_timeout_s
    if seconds is None:
        return None
    at = time.monotonic() + seconds
    return Deadline(round=rnd, seconds=float(seconds), at=at, earlier=cut_off(cell, rnd))


def _path(rnd: int) -> str:
    return f"{round_dir(rnd)}/{RECORD}"


def cut_off(cell: Cell, rnd: int) -> frozenset[int]:
    """The clients a deadline cut off in round `rnd` of an earlier run (none without a record)."""
    storage = cell.stores.blobs.storage
    if not storage.exists(_path(rnd)):
        return frozenset()
    try:
        record = json.loads(storage.read(_path(rnd)))
        clients = record["clients"]
        if record["round"] != rnd or not all(isinstance(c, int) and not isinstance(c, bool) for c in clients):
            raise ValueError("not a deadline record of this round")
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{storage.location}/{_path(rnd)} is not a valid deadline record ({exc}); "
            "delete it to replay the round without it"
        ) from None
    return frozenset(clients)


def record(cell: Cell, deadline: Deadline, clients: Iterable[int]) -> None:
    """Write (atomically) that `clients`, with those cut earlier, did not make round's deadline."""
    cut = sorted(set(clients) | deadline.earlier)
    text = json.dumps({"round": deadline.round, "seconds": deadline.seconds, "clients": cut})
    cell.stores.blobs.storage.write(_path(deadline.round), text.encode())
