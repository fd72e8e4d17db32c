"""What a round leaves: its row of metrics (one MLflow step), and the cell's next state (the new
start, the clients' states, what the selector learnt from each selected client)."""

import math

import torch

from fedsweep.cell.cell import Cell
from fedsweep.failures import FAILURE_KINDS, Failure, failure
from fedsweep.rounds.plan import RoundPlan
from fedsweep.rounds.refs import ClientRef, RoundStart
from fedsweep.rounds.state import CellState
from fedsweep.selection.base import ClientFeedback


def split_invalid(results: list[ClientRef]) -> tuple[list[ClientRef], list[Failure]]:
    """(results whose update is finite, a failure record for each one that is not)."""
    valid = [r for r in results if r["valid"]]
    return valid, [failure(r["client"], "invalid_update", "NaN/Inf") for r in results if not r["valid"]]


def after_round(
    cell: Cell,
    state: CellState,
    plan: RoundPlan,
    start: RoundStart,
    results: list[ClientRef],
    failures: list[Failure],
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
    selection = cell.methods.selector.observe(round=plan.round, feedback=feedback, state=held)
    if plan.sim_round_s is not None:  # cumulative, from the checkpointed history: it survives a resume
        row = {
            **row,
            "sim_clock_s": (state.history[-1].get("sim_clock_s", 0.0) if state.history else 0.0)
            + plan.sim_round_s,
        }
    return state.advance(start=start, selection=selection, client_states=index, history=(*state.history, row))


def round_row(
    plan: RoundPlan,
    results: list[ClientRef],
    failures: list[Failure],
    *,
    num_clients: int,
    kept: bool,
    evaluation: dict[str, float],
    **measured: float,
) -> dict[str, float]:
    """The round's metrics (one MLflow step): evaluation, clients, failures by kind, `measured`."""
    counts = {f"failed_{kind}": 0.0 for kind in FAILURE_KINDS}
    for f in failures:
        counts[f"failed_{f['kind']}"] += 1
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


# What a cell's MLflow run charts (tasks/track.py logs it): every round's metrics, but those that
# carry no news stay out of the run's charts until they do. Counters of what went wrong (or was
# unusual) while every round so far has 0; per-round constants (what each round transfers, how many
# clients it selects and trains at once) while every round so far has the first round's value.
QUIET_WHILE_ZERO = (
    *(f"failed_{kind}" for kind in FAILURE_KINDS),
    "retries",
    "skipped",
    "clients_probed",
    "clients_unavailable",
    "clients_late",
    "tasks_reused",
)
QUIET_WHILE_CONSTANT = ("bytes_down", "bytes_up", "clients_selected", "parallel_clients")


def _moved(history: list[dict[str, float]], name: str) -> bool:
    values = [h[name] for h in history if name in h]
    if name in QUIET_WHILE_ZERO:
        return any(v != 0 for v in values)
    return len(set(values)) > 1


def charted_points(history: list[dict[str, float]]) -> dict[int, dict[str, float]]:
    """The points (round -> metric -> value) that the last round of `history` adds to the cell's
    charts: its own metrics less the quiet ones still at rest, and every earlier round of a quiet
    metric that moves in this round (so its chart is a whole series)."""
    *before, last = history
    rnd = int(last["round"])
    points: dict[int, dict[str, float]] = {rnd: {}}
    for name, value in last.items():
        if name == "round":
            continue
        if name not in QUIET_WHILE_ZERO and name not in QUIET_WHILE_CONSTANT:
            points[rnd][name] = value
        elif _moved(history, name):
            points[rnd][name] = value
            if not _moved(before, name):  # it moves now: its earlier rounds join the chart
                for row in before:
                    if name in row:
                        points.setdefault(int(row["round"]), {})[name] = row[name]
    return points


def constants(history: list[dict[str, float]]) -> dict[str, float]:
    """The per-round constants that never moved (not charted): their one value, for the run's tags."""
    return {
        name: history[0][name]
        for name in QUIET_WHILE_CONSTANT
        if history and name in history[0] and not _moved(history, name)
    }
