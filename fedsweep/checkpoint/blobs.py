"""Intermediate results (a client's model after an epoch) stored by key, verified by sha256.

A blob is one safetensors file, `<key>.safetensors`, whose small JSON meta (loss, sample count,
epochs done, …) travels inside the safetensors header, so tensors and meta are written in one
atomic `Storage.write` and can never disagree.

Rules:

- `put` returns the sha256 of the exact bytes written; a task passes that reference (key + sha256)
  on instead of the tensors, and `get(key, sha256)` refuses any other content with
  `CheckpointError`, so a result overwritten or damaged since it was produced is never used.
- Loading never unpickles: bytes that are not valid safetensors raise `CheckpointError`.
- Keys are relative `/`-paths (e.g. `round-000005/c00003-e1`); `prune(prefix)` drops a
  whole prefix, which the runner does once a round's checkpoint is committed, so disk use stays
  O(clients per round × model size).
"""

import hashlib
from typing import Any, TypedDict

from fedsweep.checkpoint.storage import CheckpointError, Storage, check_path
from fedsweep.weights import Params, from_bytes, meta_of, to_bytes

SUFFIX = ".safetensors"


class BlobRef(TypedDict):
    """A blob by its key and the sha256 of its bytes (what a reader verifies)."""

    key: str
    sha256: str


class BlobStore:
    """Tensors + small meta under string keys, addressed and verified by sha256."""

    def __init__(self, *, storage: Storage) -> None:
        self.storage = storage

    def _path(self, key: str) -> str:
        return check_path(key) + SUFFIX

    def put(self, key: str, params: Params, meta: dict[str, Any]) -> str:
        """Write atomically; return the sha256 of the bytes written."""
        data = to_bytes(params, meta)
        self.storage.write(self._path(key), data)
        return hashlib.sha256(data).hexdigest()

    def get(self, key: str, sha256: str | None = None) -> tuple[Params, dict[str, Any]]:
        """Tensors and meta under `key`; with `sha256`, only if the bytes still hash to it."""
        try:
            data = self.storage.read(self._path(key))
        except FileNotFoundError:
            raise CheckpointError(f"blob {key!r} is missing from {self.storage.location}") from None
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise CheckpointError(f"blob {key!r} in {self.storage.location}: sha256 mismatch")
        try:  # safetensors only: a pickle fails the header check and is never executed
            return from_bytes(data), meta_of(data)
        except Exception:  # noqa: BLE001 - any parse failure means "not safetensors"
            raise CheckpointError(f"blob {key!r} in {self.storage.location} is not safetensors") from None

    def read(self, ref: BlobRef) -> Params:
        """The tensors a reference names, verified."""
        tensors, _ = self.get(ref["key"], ref["sha256"])
        return tensors

    def holds(self, ref: BlobRef) -> bool:
        """Whether the blob a reference `{"key", "sha256"}` names is still there, with the same bytes."""
        try:
            self.get(ref["key"], ref["sha256"])
        except CheckpointError:
            return False
        return True

    def prune(self, prefix: str) -> None:
        """Delete every blob under the folder `prefix` (missing is fine)."""
        self.storage.delete_tree(check_path(prefix))
