"""Who takes part in a round and with what: selection (with a selector's probe), first participants'
client state, the faults' stragglers under the aggregation policy, and the simulated clock."""

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from fedsweep.cell.cell import Cell
from fedsweep.checkpoint.blobs import BlobRef
from fedsweep.checkpoint.clients import Index
from fedsweep.failures import Failure, failure
from fedsweep.rng import generator
from fedsweep.rounds.blobs import read_global
from fedsweep.rounds.state import CellState
from fedsweep.rounds.work import local_work, planned_work, tasks_for
from fedsweep.selection.base import Probe
from fedsweep.systems.clock import arrivals


@dataclass(frozen=True)
class RoundPlan:
    """Who takes part in round `round` and with what."""

    round: int
    available: int  # clients the faults left available
    selected: tuple[int, ...]
    epochs: dict[
        int, int
    ]  # client -> its tasks (local epochs, or chunks of local_steps), for those that train
    states: dict[int, BlobRef | None]  # client -> the state it starts the round with
    failures: tuple[Failure, ...]  # stragglers the aggregation policy drops; clients over the deadline
    selection: dict[str, torch.Tensor]  # the selector's state after `select`
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
    cell: Cell, state: CellState, rnd: int, probe: Callable[[Probe], dict[int, float]] | None = None
) -> RoundPlan:
    """Select the round's clients, give first participants their initial state, drop stragglers
    the aggregation policy refuses; with a system model, cut those over its deadline and leave the
    over-selected ones that would finish after the first k untrained (fedsweep/systems/clock.py).
    A selector's probe (fedsweep/selection/base.py) is answered by `probe` (the loop's probe task:
    candidate -> loss); probe and select share one generator."""
    methods, fleet, knobs = cell.methods, cell.fleet, cell.knobs
    k, available = knobs.clients_per_round, fleet.available(rnd)
    asked = k if fleet.systems is None else fleet.systems.to_select(k)  # over-selection asks for more
    draws, population = generator(knobs.seed, "select", rnd), fleet.population(rnd)
    wanted = methods.selector.probe(
        round=rnd, available=available, k=asked, generator=draws, state=state.selection, population=population
    )
    losses = None
    if wanted is not None:
        if probe is None:
            raise RuntimeError(f"{methods.selector!r} asked for a probe and the loop answers none")
        losses = probe(wanted)
    chosen = methods.selector.select(
        round=rnd,
        available=available,
        k=asked,
        generator=draws,
        state=state.selection,
        population=population,
        probes=losses,
    )
    planned = {c: planned_work(cell, rnd, c) for c in chosen.clients}
    seconds = fleet.client_seconds(planned)
    clock = None if fleet.systems is None else arrivals(seconds, k=k, deadline_s=fleet.deadline_s)
    cut = () if clock is None else clock.cut
    selected = sorted(chosen.clients) if clock is None else sorted((*clock.on_time, *cut))
    index = dict(state.client_states)
    new = [c for c in selected if str(c) not in index]
    if new:  # init_client_state on first participation only
        params, _ = read_global(cell.stores.blobs, state.start["global"])
        for client in new:
            index[str(client)] = cell.stores.client_states.put(
                client=client, round=rnd, state=methods.strategy.init_client_state(params), initial=True
            )
    work, unit = local_work(cell)
    epochs = {
        c: tasks_for(cell, c, planned[c])
        for c in selected
        if c not in cut and methods.policy.accept(planned[c], work)
    }
    failures = [
        failure(c, "straggler", f"ran {planned[c]} of {work} {unit}")
        for c in selected
        if c not in epochs and c not in cut
    ]
    failures += [
        failure(c, "deadline", f"simulated {seconds[c]:.4g} s is over the deadline: not trained") for c in cut
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
        model_bytes=methods.model_bytes,
        probed=tuple(wanted.clients) if wanted else (),
        weights=chosen.weights,
    )
