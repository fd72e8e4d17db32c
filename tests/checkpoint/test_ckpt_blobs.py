"""BlobStore: round trip with meta, sha256 verification, pruning a round's results."""

import hashlib
import pickle
from collections.abc import Callable

import pytest
import torch

from fedsweep.checkpoint.blobs import BlobStore
from fedsweep.checkpoint.storage import CheckpointError, Storage

KEY = "round-000003/client-0007/epoch-1"


def test_put_get_round_trip(storage: Storage, make_state: Callable) -> None:
    # Prepare
    blobs = BlobStore(storage=storage)
    params = make_state(1)["model"]
    meta = {"loss": 0.25, "num_samples": 120, "epochs_done": 1, "tags": ["a"]}

    # Execute
    sha = blobs.put(KEY, params, meta)
    got, got_meta = blobs.get(KEY, sha)

    # Assert
    assert sha == hashlib.sha256(storage.read(f"{KEY}.safetensors")).hexdigest()
    assert got_meta == meta and list(got) == list(params)
    assert all(got[k].dtype == v.dtype and torch.equal(got[k], v) for k, v in params.items())
    assert storage.exists(f"{KEY}.safetensors") and not storage.exists(
        "round-000003/client-0008/epoch-1.safetensors"
    )


def test_hash_mismatch_and_missing_are_errors(storage: Storage, make_state: Callable) -> None:
    # Prepare
    blobs = BlobStore(storage=storage)
    sha = blobs.put(KEY, make_state(1)["model"], {})
    blobs.put(KEY, make_state(2)["model"], {})  # overwritten since the reference was taken

    # Execute / Assert
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        blobs.get(KEY, sha)
    with pytest.raises(CheckpointError, match="missing"):
        blobs.get("round-000003/client-0001/epoch-1")
    assert blobs.get(KEY)[1] == {}  # without a reference, the current content is returned


def test_pickle_blob_is_refused(storage: Storage) -> None:
    # Prepare
    payload = pickle.dumps({"w": [1.0]})
    storage.write(f"{KEY}.safetensors", payload)

    # Execute / Assert
    with pytest.raises(CheckpointError, match="is not safetensors"):
        BlobStore(storage=storage).get(KEY, hashlib.sha256(payload).hexdigest())


def test_prune_drops_a_whole_prefix(storage: Storage, make_state: Callable) -> None:
    # Prepare
    blobs = BlobStore(storage=storage)
    params = make_state(1)["server_state"]
    for r in (3, 4):
        for c in (1, 2):
            blobs.put(f"round-00000{r}/client-000{c}/epoch-1", params, {"c": c})

    # Execute
    blobs.prune("round-000003")
    blobs.prune("round-000003")  # idempotent

    # Assert
    assert storage.list("") == ["round-000004"]
    assert storage.exists("round-000004/client-0002/epoch-1.safetensors")
    with pytest.raises(ValueError):
        blobs.prune("")  # never the whole store by accident
