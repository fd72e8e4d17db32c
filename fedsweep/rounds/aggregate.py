"""The round's valid client updates into the start of the next round, by the cell's strategy."""

from collections.abc import Iterator, Sequence

from fedsweep.cell.cell import Cell
from fedsweep.failures import Failure
from fedsweep.rounds.blobs import OPT, read_global, split_prefixed, start_round
from fedsweep.rounds.refs import ClientRef, RoundStart
from fedsweep.rounds.work import local_work, tasks_for
from fedsweep.strategies.base import ClientMeta, ClientResult, ClientResults, RoundContext


class BlobResults(ClientResults):
    """The round's client results as references, read from the blob stores on each iteration;
    `weights` (client -> relative aggregation weight, the selector's) replace the sample counts."""

    def __init__(self, cell: Cell, refs: list[ClientRef], weights: dict[int, float] | None = None) -> None:
        self.cell, self.refs = cell, sorted(refs, key=lambda r: r["client"])
        work = local_work(cell)[0]  # epochs_* count tasks: epochs, or chunks of local_steps
        self._meta = [
            ClientMeta(
                client=r["client"],
                num_samples=r["num_samples"],
                loss=r["loss"],
                steps=r["steps"],
                epochs_done=r["epochs_done"],
                epochs_planned=tasks_for(cell, r["client"], work),
                weight=float(r["num_samples"] if weights is None else weights[r["client"]]),
            )
            for r in self.refs
        ]

    @property
    def meta(self) -> Sequence[ClientMeta]:
        return self._meta

    def __iter__(self) -> Iterator[ClientResult]:
        blobs, states = self.cell.stores.blobs, self.cell.stores.client_states
        for meta, ref in zip(self._meta, self.refs, strict=True):
            params, _ = split_prefixed(blobs.read(ref), OPT)
            yield ClientResult(
                **vars(meta),
                params=params,
                client_state=states.get(ref.get("client_state")),
                previous_client_state=states.get(ref.get("previous_client_state")),
            )


def aggregate(
    cell: Cell,
    *,
    round: int,
    start: RoundStart,
    results: list[ClientRef],
    failures: list[Failure],
    selected: list[int],
    keep: bool,
    weights: dict[int, float] | None = None,
) -> RoundStart:
    """The start of round `round + 1`: the strategy's aggregate of `results` (valid updates only,
    weighted by the selector's `weights` if any, else by sample count), or, with `keep`, round
    `round`'s model and server state unchanged (the policy skipped it)."""
    blobs = cell.stores.blobs
    params, _ = read_global(blobs, start["global"])
    server_state = blobs.read(start["server"])
    if not keep:
        out = cell.methods.strategy.aggregate(
            global_params=params,
            results=BlobResults(cell, results, weights),
            failures=failures,
            server_state=server_state,
            context=RoundContext(round=round, selected=tuple(selected), num_clients=cell.num_clients),
        )
        params, server_state = out.params, out.server_state
    return start_round(cell, round=round + 1, params=params, server_state=server_state)
