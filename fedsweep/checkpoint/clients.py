"""Per-client state (SCAFFOLD's c_i, FedDyn's gradient memory), versioned by round.

An entry is one immutable blob: `c<client>-r<round>.safetensors`, the state client `client` had
after round `round`, or `c<client>-r<round>-init.safetensors`, the `init_client_state` a first
participant starts round `round` with. A reference `{"key", "sha256"}` names it; `None` names the
empty state, which is never written (FedAvg pays nothing).

Which entry is each client's current state is the *index* `{client: ref}`, part of the round's
checkpoint meta (written before the manifest): the model, the server state and every client's state
are committed together, so after any kill they belong to the same round, and a client that rejoins
after an outage gets the state the index kept for it. Entries are written by the jobs that produce
them, before the round commits; a resumed round recomputes the same bytes under the same keys.

Disk: after each commit `collect` deletes the entries that no kept checkpoint references, except
those newer than the committed round (a round in flight wrote them), so disk stays
O(clients × state), not O(rounds).
"""

import re

from fedsweep.checkpoint.blobs import SUFFIX, BlobRef, BlobStore
from fedsweep.checkpoint.storage import Storage
from fedsweep.weights import Params

Index = dict[str, BlobRef | None]  # str(client) -> ref: a JSON object's keys are strings
_ENTRY = re.compile(r"c(\d{6,})-r(\d{6,})(-init)?")


def entry_key(client: int, round: int, *, initial: bool = False) -> str:
    return f"c{client:06d}-r{round:06d}" + ("-init" if initial else "")


class ClientStateStore:
    """Client states as verified blobs under one storage root."""

    def __init__(self, *, storage: Storage) -> None:
        self.blobs = BlobStore(storage=storage)

    def put(self, *, client: int, round: int, state: Params, initial: bool = False) -> BlobRef | None:
        """Write a client's state after `round` (`initial`: before it); None for the empty state,
        which is not written."""
        if not state:
            return None
        key = entry_key(client, round, initial=initial)
        return {"key": key, "sha256": self.blobs.put(key, state, {"client": client, "round": round})}

    def get(self, ref: BlobRef | None) -> Params:
        """The state a reference names (verified), {} for None."""
        return {} if ref is None else self.blobs.read(ref)

    def collect(self, *, referenced: set[str], up_to: int) -> list[str]:
        """Delete entries of rounds <= `up_to` whose key is not in `referenced`; returns their keys."""
        dropped = []
        for name in self.blobs.storage.list(""):
            found = _ENTRY.fullmatch(name.removesuffix(SUFFIX))
            if found and int(found.group(2)) <= up_to and found.group(0) not in referenced:
                self.blobs.storage.delete(name)
                dropped.append(found.group(0))
        return dropped
