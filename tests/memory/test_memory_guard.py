"""MemoryGuard: levels, messages and concurrency back-pressure, on injected readings."""

import pytest

from fedsweep.memory.guard import MemoryGuard, process_tree_rss, system_reading

GIB = 2**30
TOTAL = 24_000 * 2**20  # 23.4 GiB; a multiple of 1000, so per-mille readings are exact


def reading(fraction: float) -> tuple[int, int]:
    return TOTAL // 1000 * round(fraction * 1000), TOTAL


class Feed:
    """A scripted sequence of readings (the last one repeats)."""

    def __init__(self, *fractions: float) -> None:
        self.fractions = list(fractions)

    def __call__(self) -> tuple[int, int]:
        fraction = self.fractions.pop(0) if len(self.fractions) > 1 else self.fractions[0]
        return reading(fraction)


@pytest.mark.parametrize(
    ("fraction", "level"),
    [
        (0.10, "ok"),
        (0.799, "ok"),
        (0.80, "warn"),
        (0.87, "warn"),
        (0.88, "backpressure"),
        (0.94, "backpressure"),
        (0.95, "stop"),
        (1.0, "stop"),
    ],
)
def test_levels_follow_thresholds(fraction: float, level: str) -> None:
    # Prepare
    guard = MemoryGuard(read=lambda: reading(fraction))
    # Execute
    verdict = guard.check()
    # Assert
    assert verdict.level == level
    assert verdict.total_bytes == TOTAL
    assert verdict.fraction == pytest.approx(fraction, abs=1e-6)


def test_messages_say_what_to_change() -> None:
    ok = MemoryGuard(read=lambda: reading(0.5)).check().message
    warn = MemoryGuard(read=lambda: reading(0.82)).check().message
    back = MemoryGuard(read=lambda: reading(0.90)).check().message
    stop = MemoryGuard(read=lambda: reading(0.96)).check().message

    assert ok == "memory at 50% of 23.4 GiB"
    assert "memory at 82% of 23.4 GiB" in warn and "runner.max_parallel_clients" in warn
    assert "fewer clients" in back and "batch_size" in back
    assert stop.startswith("memory at 96% of 23.4 GiB")
    assert "stopping cleanly after checkpointing" in stop
    assert "runner.max_parallel_clients" in stop and "smaller model" in stop and "resume" in stop


def test_custom_thresholds() -> None:
    guard = MemoryGuard(
        warn_fraction=0.5, backpressure_fraction=0.6, stop_fraction=0.7, read=lambda: reading(0.65)
    )

    assert guard.check().level == "backpressure"


@pytest.mark.parametrize(("warn", "back", "stop"), [(0.9, 0.8, 0.95), (0.8, 0.88, 1.2), (0.0, 0.5, 0.9)])
def test_bad_thresholds_name_the_config_block(warn: float, back: float, stop: float) -> None:
    with pytest.raises(ValueError, match="runner.memory"):
        MemoryGuard(warn_fraction=warn, backpressure_fraction=back, stop_fraction=stop)


def test_allowed_parallel_halves_under_backpressure_and_recovers() -> None:
    # Prepare: pressure for three checks, one warn, then calm.
    guard = MemoryGuard(read=Feed(0.90, 0.90, 0.90, 0.85, 0.5, 0.5, 0.5))
    # Execute
    allowed = [guard.allowed_parallel(8) for _ in range(7)]
    # Assert: 8 -> 4 -> 2 -> 1 under pressure, held while warning, doubled back once calm.
    assert allowed == [4, 2, 1, 1, 2, 4, 8]


def test_allowed_parallel_levels_without_history() -> None:
    assert MemoryGuard(read=lambda: reading(0.5)).allowed_parallel(6) == 6
    assert MemoryGuard(read=lambda: reading(0.85)).allowed_parallel(6) == 6
    assert MemoryGuard(read=lambda: reading(0.90)).allowed_parallel(6) == 3
    assert MemoryGuard(read=lambda: reading(0.90)).allowed_parallel(1) == 1
    assert MemoryGuard(read=lambda: reading(0.99)).allowed_parallel(6) == 1


def test_allowed_parallel_reuses_a_given_verdict() -> None:
    calls = []

    def read() -> tuple[int, int]:
        calls.append(1)
        return reading(0.9)

    guard = MemoryGuard(read=read)
    verdict = guard.check()

    assert guard.allowed_parallel(4, verdict) == 2
    assert len(calls) == 1


def test_allowed_parallel_rejects_zero() -> None:
    with pytest.raises(ValueError, match="requested"):
        MemoryGuard(read=lambda: reading(0.1)).allowed_parallel(0)


def test_default_readers_are_sane() -> None:
    used, total = system_reading()
    budget = MemoryGuard(total_bytes=64 * GIB).check()

    assert 0 <= used <= total and total > 0
    assert process_tree_rss() > 0
    assert budget.total_bytes == 64 * GIB and budget.level == "ok"


def test_zero_total_is_an_error() -> None:
    with pytest.raises(ValueError, match="total"):
        MemoryGuard(read=lambda: (1, 0)).check()
