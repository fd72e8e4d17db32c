"""A round's decisions and bookkeeping, apart from where the work runs: who trains, what failed,
how the client-state index and the selector's state move on, and the round's row of metrics.

The round loop (flows/experiment.py) calls these between its tasks and holds only what they return.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from fedsweep import steps
from fedsweep.cell import CellEnv
from fedsweep.checkpoint.cellstate import CellState
from fedsweep.checkpoint.clients import Index
from fedsweep.faults.base import failure_kind, retryable
from fedsweep.rng import generator
from fedsweep.selection.base import ClientFeedback, Probe
from fedsweep.systems.clock import arrivals

FAILURE_KINDS = (
    "transient",
    "permanent",
    "node_down",
    "oom",
    "timeout",
    "deadline",
    "straggler",
    "invalid_update",
    "other",
)


@dataclass(frozen=True)
class RoundPlan:
    """Who takes part in round `round` and with what."""

    round: int
    available: int  # clients the faults left available
    selected: tuple[int, ...]
    epochs: dict[
        int, int
    ]  # client -> its tasks (local epochs, or chunks of local_steps), for those that train
    states: dict[int, steps.Ref | None]  # client -> the state it starts the round with
    failures: tuple[dict[str, Any], ...]  # stragglers the aggregation policy drops; clients over the deadline
    selection: dict  # the selector's state after `select`
    client_states: Index  # the index with this round's first participants added
    probed: tuple[int, ...] = ()  # clients sent the global model to evaluate (a selector's probe step)
    weights: dict[int, float] | None = None  # the selector's aggregation weights (None: by sample count)
    # With a system model (fedsweep/systems/): over-selected clients dropped untrained, each selected
    # client's simulated seconds, and the round's; without one these stay empty.
    late: tuple[int, ...] = ()
    seconds: dict[int, float] = field(default_factory=dict)
    sim_round_s: float | None = None
    model_bytes: int = 0  # one copy of the model, as sent to or from a client


def plan_round(
    env: CellEnv, state: CellState, rnd: int, probe: Callable[[Probe], dict[int, float]] | None = None
) -> RoundPlan:
    """Select the round's clients, give first participants their initial state, drop stragglers
    the aggregation policy refuses; with a system model, cut those over its deadline and leave the
    over-selected ones that would finish after the first k untrained (fedsweep/systems/clock.py).
    A selector's probe (fedsweep/selection/base.py) is answered by `probe` (the loop's probe task:
    candidate -> loss); probe and select share one generator."""
    rt, knobs = env.runtime, env.runtime.settings.knobs
    k, available = knobs.clients_per_round, rt.available(rnd)
    asked = k if rt.systems is None else rt.systems.to_select(k)  # over-selection asks for more
    draws, population = generator(knobs.seed, "select", rnd), rt.population(rnd)
    wanted = rt.selector.probe(
        round=rnd, available=available, k=asked, generator=draws, state=state.selection, population=population
    )
    if wanted is not None and probe is None:
        raise RuntimeError(f"{rt.selector!r} asked for a probe and the loop answers none")
    losses = probe(wanted) if wanted is not None else None
    chosen = rt.selector.select(
        round=rnd,
        available=available,
        k=asked,
        generator=draws,
        state=state.selection,
        population=population,
        probes=losses,
    )
    planned = {c: steps.planned_work(rt, rnd, c) for c in chosen.clients}
    seconds = rt.client_seconds(planned)
    clock = None if rt.systems is None else arrivals(seconds, k=k, deadline_s=rt.systems.deadline_s)
    cut = () if clock is None else clock.cut
    selected = sorted(chosen.clients) if clock is None else sorted((*clock.on_time, *cut))
    index = dict(state.client_states)
    new = [c for c in selected if str(c) not in index]
    if new:  # init_client_state on first participation only
        params, _ = steps.read_global(env.blobs, state.start["global"])
        for client in new:
            index[str(client)] = env.client_states.put(
                client=client, round=rnd, state=rt.strategy.init_client_state(params), initial=True
            )
    work, unit = steps.local_work(rt)
    epochs = {
        c: steps.tasks_for(rt, c, planned[c])
        for c in selected
        if c not in cut and rt.policy.accept(planned[c], work)
    }
    failures = [
        {"client": c, "kind": "straggler", "message": f"ran {planned[c]} of {work} {unit}"}
        for c in selected
        if c not in epochs and c not in cut
    ]
    failures += [
        {
            "client": c,
            "kind": "deadline",
            "message": f"simulated {seconds[c]:.4g} s is over the deadline: not trained",
        }
        for c in cut
    ]
    failures.sort(key=lambda f: f["client"])
    return RoundPlan(
        round=rnd,
        available=len(available),
        selected=tuple(selected),
        epochs=epochs,
        states={c: index[str(c)] for c in epochs},
        failures=tuple(failures),
        selection=chosen.state,
        client_states=index,
        late=() if clock is None else clock.late,
        seconds=seconds,
        sim_round_s=None if clock is None else clock.seconds,
        model_bytes=rt.model_bytes,
        probed=tuple(wanted.clients) if wanted else (),
        weights=chosen.weights,
    )


def failure_record(client: int, error: BaseException, *, retries: int) -> dict[str, Any]:
    """What a failed client contributes to aggregation (as Flower's `failures`) and to the metrics."""
    kind = failure_kind(error)
    return {
        "client": client,
        "kind": kind if kind in FAILURE_KINDS else "other",
        "message": f"{type(error).__name__}: {error}"[:500],
        "retries": retries if retryable(error) else 0,
    }


def split_invalid(results: list[steps.Ref]) -> tuple[list[steps.Ref], list[dict[str, Any]]]:
    """(results whose update is finite, a failure record for each one that is not)."""
    valid = [r for r in results if r["valid"]]
    rejected = [
        {"client": r["client"], "kind": "invalid_update", "message": "NaN/Inf"}
        for r in results
        if not r["valid"]
    ]
    return valid, rejected


def after_round(
    env: CellEnv,
    state: CellState,
    plan: RoundPlan,
    start: dict[str, steps.Ref],
    results: list[steps.Ref],
    failures: list[dict[str, Any]],
    *,
    kept: bool,
    row: dict[str, float],
    committing: bool,
) -> CellState:
    """The cell's state once round `plan.round` is aggregated: the new start, the clients' new
    states (unchanged for clients that failed, and for everyone when the policy skipped the round),
    and what the selector learnt from each selected client.

    The selector's `observe` may update the state it is given in place (fedsweep/selection/base.py):
    `committing` says that the previous round's checkpoint, which holds these same tensors, may still
    be being written (a commit past its bounded wait), and then `observe` gets a copy."""
    index = dict(plan.client_states)
    if not kept:
        index.update({str(r["client"]): r["client_state"] for r in results})
    failed = {f["client"]: f["kind"] for f in failures} | dict.fromkeys(plan.late, "late")
    done = {r["client"]: r for r in results}
    seconds = {c: plan.seconds.get(c, math.nan) for c in (*plan.selected, *plan.late)}
    feedback = [
        ClientFeedback(
            client=c,
            num_samples=done[c]["num_samples"],
            loss=done[c]["loss"],
            loss_sq=done[c].get("loss_sq", float("nan")),
            steps=done[c]["steps"],
            seconds=seconds[c],
            sketch=torch.tensor(done[c]["sketch"]).float() if "sketch" in done[c] else None,
        )
        if c in done
        else ClientFeedback(client=c, failure=failed.get(c, "other"), seconds=seconds[c])
        for c in sorted(seconds)
    ]
    held = {name: t.clone() for name, t in plan.selection.items()} if committing else plan.selection
    selection = env.runtime.selector.observe(round=plan.round, feedback=feedback, state=held)
    if plan.sim_round_s is not None:  # cumulative, from the checkpointed history: it survives a resume
        row = {
            **row,
            "sim_clock_s": (state.history[-1].get("sim_clock_s", 0.0) if state.history else 0.0)
            + plan.sim_round_s,
        }
    return state.advance(start=start, selection=selection, client_states=index, history=(*state.history, row))


def round_row(
    plan: RoundPlan,
    results: list[steps.Ref],
    failures: list[dict[str, Any]],
    *,
    num_clients: int,
    kept: bool,
    evaluation: dict[str, float],
    **measured: float,
) -> dict[str, float]:
    """The round's metrics (one MLflow step): evaluation, clients, failures by kind, `measured`."""
    counts = {f"failed_{kind}": 0.0 for kind in FAILURE_KINDS}
    for failure in failures:
        counts[f"failed_{failure['kind']}"] += 1
    retries = sum(r.get("attempt", 1) - 1 for r in results) + sum(f.get("retries", 0) for f in failures)
    total = sum(r["num_samples"] for r in results)
    # Every selected client (late ones too) and every probed one downloads the model; each client
    # whose training completed uploads its update.
    downloads = len(plan.selected) + len(plan.late) + len(plan.probed)
    traffic = {
        "bytes_down": float(plan.model_bytes * downloads),
        "bytes_up": float(plan.model_bytes * len(results)),
    }
    clock = (
        {} if plan.sim_round_s is None else {"sim_round_s": plan.sim_round_s, "clients_late": len(plan.late)}
    )
    return {
        "round": plan.round,
        **evaluation,
        "train_loss": sum(r["loss"] * r["num_samples"] for r in results) / total if total else float("nan"),
        "clients_selected": len(plan.selected) + len(plan.late),
        "clients_probed": len(plan.probed),
        "clients_ok": len(plan.selected) - len(failures),
        "clients_failed": len(failures),
        "clients_unavailable": num_clients - plan.available,
        "skipped": float(kept),
        **counts,
        "retries": float(retries),
        **traffic,
        **clock,
        **measured,
    }
