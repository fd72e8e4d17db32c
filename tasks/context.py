"""Per-process access to a cell's runtime and stores, keyed by the cell's folder.

Tasks receive only small references (the cell folder, round and client numbers, blob references);
the runtime is built once per process from `cell.json` in the cell folder, so a task can run in
this process, a worker process or a resumed run alike.
"""

import json
from dataclasses import dataclass
from functools import lru_cache

from fedsweep.cell import CellRuntime, build_runtime
from fedsweep.checkpoint.blobs import BlobStore
from fedsweep.checkpoint.storage import open_storage
from fedsweep.checkpoint.store import CheckpointStore

CONFIG_FILE = "cell.json"


@dataclass(frozen=True)
class CellEnv:
    """A cell's runtime and where its state lives."""

    runtime: CellRuntime
    blobs: BlobStore
    checkpoints: CheckpointStore
    key: str


def write_cell_config(cell_dir: str, *, key: str, name: str, config: dict) -> None:
    """Record the resolved config beside the cell's state (what every process rebuilds from)."""
    text = json.dumps({"key": key, "name": name, "config": config}, indent=1, sort_keys=True)
    open_storage(cell_dir).write(CONFIG_FILE, text.encode())


@lru_cache(maxsize=8)
def cell_env(cell_dir: str) -> CellEnv:
    """The cell's runtime and stores, built once per process."""
    record = json.loads(open_storage(cell_dir).read(CONFIG_FILE))
    config = record["config"]
    return CellEnv(
        runtime=build_runtime(config),
        blobs=BlobStore(storage=open_storage(f"{cell_dir.rstrip('/')}/work")),
        checkpoints=CheckpointStore(
            storage=open_storage(f"{cell_dir.rstrip('/')}/checkpoints"), keep=int(config["checkpoint"]["keep"])
        ),
        key=record["key"],
    )
