"""A round's blobs: keys under `round-000007/` of the cell's work store, pruned once round 7's
checkpoint is committed.

    round-000007/global        the global model the round starts from (+ what the strategy
                               broadcasts to clients, `server.*`)
    round-000007/server        the server state the round starts from (never sent to clients)
    round-000007/c00003-e1     client 3 after its task 1 (an epoch, or a chunk of local_steps; + `opt.*`)
    round-000007/deadline.json the clients the round's deadline cut (fedsweep/rounds/deadline.py)

Aggregating round 7 writes `round-000008/global` and `round-000008/server`: the next round's start.
Client states live in their own store (fedsweep/checkpoint/clients.py).
"""

from fedsweep.cell.cell import Cell
from fedsweep.cell.layout import round_dir
from fedsweep.checkpoint.blobs import BlobRef, BlobStore
from fedsweep.rounds.refs import RoundStart
from fedsweep.weights import Params

OPT, SERVER = "opt.", "server."


def split_prefixed(tensors: Params, prefix: str) -> tuple[Params, Params]:
    """(tensors without the prefix, tensors with it, prefix removed)."""
    plain = {k: v for k, v in tensors.items() if not k.startswith(prefix)}
    tagged = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    return plain, tagged


def join_prefixed(plain: Params, tagged: Params, prefix: str) -> Params:
    return {**plain, **{prefix + k: v for k, v in tagged.items()}}


def client_key(round: int, client: int, task: int) -> str:
    """The blob of `client` after its task `task` of round `round`."""
    return f"{round_dir(round)}/c{client:05d}-e{task}"


def prune_rounds(blobs: BlobStore, *, up_to: int) -> None:
    """Drop the intermediate blobs of every round <= `up_to` (their checkpoint is committed)."""
    for name in blobs.storage.list(""):
        if name.startswith("round-") and name[6:].isdigit() and int(name[6:]) <= up_to:
            blobs.prune(name)


def start_round(cell: Cell, *, round: int, params: Params, server_state: Params) -> RoundStart:
    """Write what round `round` starts from; returns {"global": ref, "server": ref}."""
    broadcast = cell.methods.strategy.broadcast(server_state)
    refs = {}
    for name, tensors in (("global", join_prefixed(params, broadcast, SERVER)), ("server", server_state)):
        key = f"{round_dir(round)}/{name}"
        refs[name] = {"key": key, "sha256": cell.stores.blobs.put(key, tensors, {"round": round})}
    return RoundStart(**refs)  # type: ignore[typeddict-item]


def read_global(blobs: BlobStore, ref: BlobRef) -> tuple[Params, Params]:
    """(params, what the strategy broadcasts) from a round's global reference."""
    return split_prefixed(blobs.read(ref), SERVER)
