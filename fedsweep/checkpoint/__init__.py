"""Persisting state without ever losing or trusting it blindly: atomic storage, manifest-committed
round checkpoints (last-K, sha256-verified, never unpickled), verified intermediate blobs, and a
background writer with back-pressure. See each module's docstring for its rules.
"""

from fedsweep.checkpoint.blobs import BlobStore
from fedsweep.checkpoint.storage import CheckpointError, FsspecStorage, LocalStorage, Storage, open_storage
from fedsweep.checkpoint.store import Checkpoint, CheckpointStore
from fedsweep.checkpoint.writer import BackgroundWriter

__all__ = [
    "BackgroundWriter",
    "BlobStore",
    "Checkpoint",
    "CheckpointError",
    "CheckpointStore",
    "FsspecStorage",
    "LocalStorage",
    "Storage",
    "open_storage",
]
