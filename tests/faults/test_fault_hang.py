"""Hangs: sleep at least `seconds`, interruptibly, on seeded attempts, then return normally."""

import ctypes
import threading
import time

import pytest
from sweep_cli import slowdown  # upper bounds on wall-clock time scale with the machine's load

from fedsweep.faults.base import ClientCtx
from fedsweep.faults.hang import Hang

CTX = ClientCtx(seed=0, round=1, client=0, local_epochs=1)


def test_sleeps_at_least_seconds_then_returns() -> None:
    # Prepare
    fault = Hang(seconds=0.15, p=1.0)
    # Execute
    start = time.monotonic()
    result = fault.before_epoch(CTX)
    # Assert
    assert result is None and time.monotonic() - start >= 0.15


def test_a_thread_timeout_interrupts_it_within_a_step() -> None:
    # Prepare
    fault, outcome = Hang(seconds=10.0, p=1.0, step=0.05), []

    def target() -> None:
        start = time.monotonic()
        try:
            fault.before_epoch(CTX)
            outcome.append(("returned", time.monotonic() - start))
        except TimeoutError:
            outcome.append(("interrupted", time.monotonic() - start))

    thread = threading.Thread(target=target)
    thread.start()
    time.sleep(0.1)
    # Execute: as Prefect's timeout does for a task in a worker thread
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(TimeoutError))
    thread.join(2.0 * slowdown())
    # Assert
    assert outcome and outcome[0][0] == "interrupted" and outcome[0][1] < 0.5 * slowdown()


def test_which_attempts_hang_is_seeded_and_close_to_p() -> None:
    # Prepare
    fault = Hang(seconds=0.0, p=0.25)
    coords = [
        ClientCtx(seed=0, round=r, client=c, local_epochs=1, attempt=a)
        for r in range(1, 21)
        for c in range(50)
        for a in (1, 2)
    ]
    # Execute
    hung = [fault.hangs(ctx) for ctx in coords]
    # Assert
    assert hung == [fault.hangs(ctx) for ctx in coords]
    assert sum(hung) / len(hung) == pytest.approx(0.25, abs=0.03)
    assert not Hang(seconds=1.0, p=1.0, clients=[3]).hangs(CTX)


def test_rejects_negative_seconds_and_zero_step() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="seconds must be a number >= 0"):
        Hang(seconds=-1.0)
    with pytest.raises(ValueError, match="step must be > 0"):
        Hang(seconds=1.0, step=0.0)


def test_a_deaf_hang_does_not_hear_signals_and_restores_the_mask() -> None:
    # Prepare: a deaf hang in this thread; SIGUSR2 sent to it while it sleeps
    import signal

    fault, heard = Hang(seconds=0.3, p=1.0, step=0.05, deaf=True), []
    previous = signal.signal(signal.SIGUSR2, lambda *_: heard.append(time.monotonic()))
    try:
        timer = threading.Timer(0.1, signal.pthread_kill, args=(threading.get_ident(), signal.SIGUSR2))
        start = time.monotonic()
        timer.start()
        # Execute
        fault.before_epoch(CTX)
        timer.join()
        time.sleep(0.05)
        # Assert: heard only once the hang was over (the signal waited), the mask as it was
        assert len(heard) == 1 and heard[0] - start >= 0.3
        assert signal.SIGUSR2 not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    finally:
        signal.signal(signal.SIGUSR2, previous)
