"""A cell's state between rounds, and the one place its checkpoint groups are named.

A round's checkpoint holds four kinds of state, committed together by one manifest:

    model.safetensors           the global parameters                      (group "model")
    server_state.safetensors    the strategy's server state                (group "server_state")
    selection.safetensors       the selector's state, when it has one      (group "selection")
    meta.json                   the metric history and the client-state index (`client_states`)

`resume` turns the newest valid checkpoint (or the cell's initial model) into a `CellState` whose
next round's start is written as blobs; `commit` writes a `CellState` as a checkpoint, then drops
the round blobs and client-state entries that no kept checkpoint needs.
"""

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from fedsweep.cell.cell import Cell
from fedsweep.checkpoint.clients import Index
from fedsweep.rounds.blobs import prune_rounds, read_global, start_round
from fedsweep.rounds.refs import RoundStart
from fedsweep.weights import Params, to_bytes, weights_sha256

MODEL, SERVER, SELECTION = "model", "server_state", "selection"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CellState:
    """Everything a cell carries from round to round; `start` is where round `round + 1` begins."""

    round: int
    start: RoundStart
    selection: dict[str, torch.Tensor] = field(default_factory=dict)
    client_states: Index = field(default_factory=dict)
    history: tuple[dict[str, float], ...] = ()

    def advance(self, **changes: Any) -> "CellState":
        return replace(self, round=self.round + 1, **changes)


def resume(cell: Cell) -> CellState:
    """The state after the newest valid committed round, or before round 1."""
    latest = cell.stores.checkpoints.load_latest()
    if latest is None:
        params = cell.methods.initial_params
        start = start_round(
            cell, round=1, params=params, server_state=cell.methods.strategy.init_server_state(params)
        )
        return CellState(round=0, start=start)
    history = tuple(latest.meta["history"])
    start = start_round(
        cell,
        round=len(history) + 1,
        params=latest.tensors[MODEL],
        server_state=latest.tensors.get(SERVER, {}),
    )
    return CellState(
        round=len(history),
        start=start,
        selection=latest.tensors.get(SELECTION, {}),
        client_states=latest.meta.get("client_states", {}),
        history=history,
    )


def commit(cell: Cell, state: CellState) -> None:
    """Write `state` as round `state.round`'s checkpoint (manifest last), then collect garbage."""
    params, _ = read_global(cell.stores.blobs, state.start["global"])
    groups: dict[str, Params] = {MODEL: params, SERVER: cell.stores.blobs.read(state.start["server"])}
    if state.selection:
        groups[SELECTION] = state.selection
    meta: dict[str, Any] = {"round": state.round, "history": list(state.history)}
    if state.client_states:
        meta["client_states"] = state.client_states
    cell.stores.checkpoints.save(round=state.round, tensors=groups, meta=meta)
    # Only after the commit: until then a resumed run still needs the round's client results.
    # Earlier rounds too: their own commit may have failed and been superseded by this one.
    prune_rounds(cell.stores.blobs, up_to=state.round)
    _collect_client_states(cell, state.round)


def _collect_client_states(cell: Cell, committed: int) -> None:
    """Drop client-state entries that no kept checkpoint's index names (best effort)."""
    try:
        indexes = [meta.get("client_states", {}) for meta in cell.stores.checkpoints.kept_metas()]
    except Exception as exc:  # noqa: BLE001 - unsure what is referenced: keep everything this time
        log.warning("client-state cleanup after round %d skipped: %s", committed, exc)
        return
    referenced = {ref["key"] for index in indexes for ref in index.values() if ref}
    cell.stores.client_states.collect(referenced=referenced, up_to=committed)


def final_model(cell: Cell, state: CellState) -> tuple[str, bytes]:
    """(`final_weights_sha256`, safetensors bytes) of the model the cell ended with."""
    params, _ = read_global(cell.stores.blobs, state.start["global"])
    return weights_sha256(params), to_bytes(params)
