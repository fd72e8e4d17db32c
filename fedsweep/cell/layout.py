"""A cell's folder: its config record, round blobs, client states and checkpoints.

    <cell folder>/cell.json          the resolved config, key and name (what every process rebuilds from)
    <cell folder>/work/round-000007/ the round's intermediate blobs (fedsweep/rounds/work.py), pruned
                                     once round 7's checkpoint is committed
    <cell folder>/clients/           per-client state, versioned by round (fedsweep/checkpoint/clients.py)
    <cell folder>/checkpoints/       committed rounds (fedsweep/checkpoint/store.py)

`round_dir` names a round's blobs and, prefixed by the cell key, its tasks' cache keys.
"""

import json
from dataclasses import dataclass
from typing import Any

from fedsweep.checkpoint.blobs import BlobStore
from fedsweep.checkpoint.clients import ClientStateStore
from fedsweep.checkpoint.storage import open_storage
from fedsweep.checkpoint.store import CheckpointStore

CONFIG_FILE = "cell.json"
CHECKPOINTS = "checkpoints"


def round_dir(round: int) -> str:
    """`round-000007`: where round 7's blobs live, and the middle of its tasks' cache keys."""
    return f"round-{round:06d}"


@dataclass(frozen=True)
class CellStores:
    """Where a cell's state lives: round blobs, client states, committed checkpoints."""

    blobs: BlobStore
    client_states: ClientStateStore
    checkpoints: CheckpointStore


def open_stores(cell_dir: str, *, keep: int) -> CellStores:
    """The stores of the cell in `cell_dir`, keeping the last `keep` checkpoints."""
    root = cell_dir.rstrip("/")
    return CellStores(
        blobs=BlobStore(storage=open_storage(f"{root}/work")),
        client_states=ClientStateStore(storage=open_storage(f"{root}/clients")),
        checkpoints=CheckpointStore(storage=open_storage(f"{root}/{CHECKPOINTS}"), keep=keep),
    )


def write_cell_config(
    cell_dir: str, *, key: str, name: str, config: dict[str, Any], suffix: str | None = None
) -> None:
    """Record the resolved config beside the cell's state (what every process rebuilds from), with
    the suffix that tells its name from other cells' (cli/identity.py) when it was given one."""
    record: dict[str, Any] = {"key": key, "name": name, "config": config}
    if suffix is not None:
        record["suffix"] = suffix
    text = json.dumps(record, indent=1, sort_keys=True)
    open_storage(cell_dir).write(CONFIG_FILE, text.encode())


def read_cell_config(cell_dir: str) -> dict[str, Any]:
    """{"key", "name", "config"} as `write_cell_config` recorded them."""
    record: dict[str, Any] = json.loads(open_storage(cell_dir).read(CONFIG_FILE))
    return record


def committed_round(cell_dir: str) -> int:
    """The newest round whose checkpoint manifest and meta verify (0: none), read without building
    the cell or reading its tensors, and without writing anything."""
    return int(_newest_meta(cell_dir).get("round", 0))


def committed_history(cell_dir: str) -> list[dict[str, Any]]:
    """The metric rows of the committed rounds ([]: none), read as `committed_round` reads them."""
    return list(_newest_meta(cell_dir).get("history", []))


def _newest_meta(cell_dir: str) -> dict[str, Any]:
    store = CheckpointStore(storage=open_storage(f"{cell_dir.rstrip('/')}/{CHECKPOINTS}"))
    return max(store.kept_metas(), key=lambda meta: int(meta.get("round", 0)), default={})


def verified_round(cell_dir: str) -> int:
    """The newest round whose checkpoint files all verify against their manifest (0: none): what a
    resume would start from, read without building the cell or parsing its tensors."""
    store = CheckpointStore(storage=open_storage(f"{cell_dir.rstrip('/')}/{CHECKPOINTS}"))
    return store.latest_verified()
