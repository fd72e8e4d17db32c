"""Hanging clients: an attempt sleeps `seconds` (in short steps, so the task timeout can cut it) and
then goes on normally. Set `runner.task_timeout_s` below `seconds` to turn a hang into a timeout.

A hang in a worker process is stopped by the worker pool's interruption (a signal) when its task gives
up on it; `+faults.deaf=true` hangs where no signal reaches, as a call stuck in C code does, so that
only killing the worker ends it (fedsweep/execution/workers.py: a warm spare takes its place). It is
not in conf/faults/hang.yaml: a new key there would change the identity of every hang cell run before.

An attempt hangs with probability `p`, drawn from generator(seed, "fault", "hang", round, client,
epoch, attempt): a retry after a timeout is an independent draw (p2pfl-style node stalls,
https://github.com/p2pfl/p2pfl).
"""

import signal
from dataclasses import dataclass

from fedsweep.faults.base import (
    HANG_STEP_S,
    ClientCtx,
    Fault,
    FaultConfigError,
    bernoulli,
    client_ids,
    interruptible_sleep,
    nonnegative,
    probability,
    set_field,
    targets,
)


@dataclass(frozen=True, kw_only=True)
class Hang(Fault):
    """Sleep `seconds` at the start of an attempt with probability `p` (only for `clients`, if given)."""

    seconds: float = 30.0
    p: float = 1.0
    clients: tuple[int, ...] | None = None
    step: float = HANG_STEP_S
    deaf: bool = False

    def __post_init__(self) -> None:
        set_field(self, "seconds", nonnegative(self, "seconds"))
        set_field(self, "p", probability(self, "p"))
        set_field(self, "clients", client_ids(self, "clients"))
        if not nonnegative(self, "step") > 0:
            raise FaultConfigError(type(self).__name__, "step", f"must be > 0, got {self.step!r}")
        set_field(self, "step", float(self.step))
        if not isinstance(self.deaf, bool):
            raise FaultConfigError(type(self).__name__, "deaf", f"must be true or false, got {self.deaf!r}")

    def hangs(self, ctx: ClientCtx) -> bool:
        """Whether this attempt hangs."""
        coords = (ctx.seed, "fault", "hang", ctx.round, ctx.client, ctx.epoch, ctx.attempt)
        return targets(self.clients, ctx.client) and bernoulli(self.p, *coords)

    def before_epoch(self, ctx: ClientCtx) -> None:
        """Sleep interruptibly (`deaf`: deaf to signals, still to an exception raised into the thread),
        then return."""
        if not self.hangs(ctx):
            return
        if not self.deaf:
            interruptible_sleep(self.seconds, step=self.step)
            return
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())  # SIGKILL aside
        try:
            interruptible_sleep(self.seconds, step=self.step)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def before_batched_epoch(self, ctx: ClientCtx) -> float:
        """The hang's seconds, not slept (a batch decides: fedsweep/faults/base.py)."""
        return self.seconds if self.hangs(ctx) else 0.0
