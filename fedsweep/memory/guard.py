"""A memory guard for the round loop: warn, apply back-pressure, or stop cleanly before the OOM killer.

The seeds' simulator froze the whole machine at ~95 % RAM around round 70 and its emergency cleanup
came too late (shared/seeds/001). fedsweep's memory is flat by design, but a user can still ask for
too much (a big model, many parallel clients, a big batch), or something else on the machine can
take the memory. The guard turns a memory reading into one of four levels, each with a message that
says what to change:

    ok            below warn_fraction
    warn          >= warn_fraction (0.80): log it, nothing else
    backpressure  >= backpressure_fraction (0.88): run fewer clients at once (`allowed_parallel`)
    stop          >= stop_fraction (0.95): finish/commit the round's checkpoint and exit non-zero;
                  re-running the same command resumes, so stopping loses nothing, a kill loses more

What is measured: with `total_bytes=None`, the machine (or the container, when a cgroup v2 memory
limit is lower than the machine's RAM, since that limit is what the OOM killer enforces): used =
total - available. With `total_bytes=N`, a budget for this process: used = RSS of this process and
its children, out of N. Tests inject `read`, a callable returning (used, total) in bytes.

Plain psutil, no Prefect or MLflow: the round loop's `MemoryLimit` callback
(flows/callbacks.py) decides what a level does.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil

from fedsweep.memory.rss import process_tree_rss

Level = Literal["ok", "warn", "backpressure", "stop"]
Reading = Callable[[], tuple[int, int]]  # () -> (used bytes, total bytes)
_CGROUP = Path("/sys/fs/cgroup")
_ADVICE = "lower runner.max_parallel_clients or batch_size, or use a smaller model"


def system_reading() -> tuple[int, int]:
    """(used, total) of the machine, or of the cgroup v2 limit when that is the tighter bound."""
    vm = psutil.virtual_memory()
    used, total = vm.total - vm.available, vm.total
    try:
        limit = (_CGROUP / "memory.max").read_text().strip()
        if limit != "max" and int(limit) < total:
            # memory.current counts page cache the kernel can drop; subtract inactive file pages.
            current = int((_CGROUP / "memory.current").read_text())
            stat = dict(line.split() for line in (_CGROUP / "memory.stat").read_text().splitlines())
            return max(0, current - int(stat.get("inactive_file", 0))), int(limit)
    except (OSError, ValueError):
        pass  # no cgroup v2 (or unreadable): the machine's figures are the bound
    return used, total


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """One reading and what it means."""

    level: Level
    used_bytes: int
    total_bytes: int
    fraction: float
    message: str


class MemoryGuard:
    """Maps memory readings to ok/warn/backpressure/stop and adapts client concurrency."""

    def __init__(
        self,
        *,
        warn_fraction: float = 0.80,
        backpressure_fraction: float = 0.88,
        stop_fraction: float = 0.95,
        total_bytes: int | None = None,
        read: Reading | None = None,
    ) -> None:
        if not 0.0 < warn_fraction <= backpressure_fraction <= stop_fraction <= 1.0:
            raise ValueError(
                "runner.memory: need 0 < warn <= backpressure <= stop <= 1, got "
                f"warn={warn_fraction}, backpressure={backpressure_fraction}, stop={stop_fraction}"
            )
        if total_bytes is not None and total_bytes <= 0:
            raise ValueError(f"MemoryGuard: total_bytes must be > 0 or None, got {total_bytes}")
        self.warn_fraction = warn_fraction
        self.backpressure_fraction = backpressure_fraction
        self.stop_fraction = stop_fraction
        if read is None:
            read = system_reading if total_bytes is None else (lambda: (process_tree_rss(), total_bytes))
        self._read = read
        self._limit: int | None = None  # the current parallelism allowance; None = unrestricted

    def check(self) -> Verdict:
        """Read memory now and classify it."""
        used, total = self._read()
        if total <= 0:
            raise ValueError(f"MemoryGuard: memory reading has total={total}")
        fraction = used / total
        if fraction >= self.stop_fraction:
            level: Level = "stop"
        elif fraction >= self.backpressure_fraction:
            level = "backpressure"
        elif fraction >= self.warn_fraction:
            level = "warn"
        else:
            level = "ok"
        return Verdict(
            level=level,
            used_bytes=used,
            total_bytes=total,
            fraction=fraction,
            message=self._message(level, fraction, total),
        )

    def allowed_parallel(self, requested: int, verdict: Verdict | None = None) -> int:
        """How many clients may train at once now, out of `requested`.

        Under back-pressure the allowance halves on every call (down to 1): if halving once was not
        enough, the next round halves again. In the warn band it holds; below warn it doubles back
        towards `requested`, so a passing spike does not slow the rest of the sweep. At `stop` it is 1:
        the caller should be stopping, and 0 would stall a loop that forgot to.
        """
        if requested < 1:
            raise ValueError(f"allowed_parallel: requested must be >= 1, got {requested}")
        level = (verdict or self.check()).level
        current = min(self._limit or requested, requested)
        if level in ("backpressure", "stop"):
            current = max(1, current // 2) if level == "backpressure" else 1
        elif level == "ok":
            current = min(requested, current * 2)
        self._limit = None if current >= requested else current
        return current

    def _message(self, level: Level, fraction: float, total: int) -> str:
        where = f"memory at {fraction:.0%} of {total / 2**30:.1f} GiB"
        if level == "ok":
            return where
        if level == "warn":
            return f"{where} (warning at {self.warn_fraction:.0%}); if it keeps growing, {_ADVICE}"
        if level == "backpressure":
            return (
                f"{where} (back-pressure at {self.backpressure_fraction:.0%}): training fewer clients "
                f"at once; to avoid this, {_ADVICE}"
            )
        return (
            f"{where} (stop at {self.stop_fraction:.0%}): stopping cleanly after checkpointing; "
            f"{_ADVICE}, then re-run the same command to resume"
        )


def guard_from_config(fractions: dict[str, float]) -> MemoryGuard:
    """The guard `runner.memory` ({warn, backpressure, stop}) describes."""
    return MemoryGuard(
        warn_fraction=fractions["warn"],
        backpressure_fraction=fractions["backpressure"],
        stop_fraction=fractions["stop"],
    )
