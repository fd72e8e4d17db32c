"""Corrupt and malicious checkpoints: fall back with one warning line, or stop; never unpickle."""

import hashlib
import io
import json
import logging
import pathlib
import pickle
from collections.abc import Callable

import pytest
import torch

from fedsweep.checkpoint.storage import CheckpointError, Storage
from fedsweep.checkpoint.store import CheckpointStore

R2 = "round-000002"


def flip_byte(storage: Storage, path: str) -> None:
    data = bytearray(storage.read(path))
    data[len(data) // 2] ^= 0xFF
    storage.write(path, bytes(data))


CORRUPTIONS: dict[str, tuple[Callable[[Storage], None], str]] = {
    "truncate": (
        lambda s: s.write(f"{R2}/model.safetensors", s.read(f"{R2}/model.safetensors")[:-7]),
        "is corrupt (model.safetensors: size",
    ),
    "flip model byte": (
        lambda s: flip_byte(s, f"{R2}/model.safetensors"),
        "(model.safetensors: sha256 mismatch)",
    ),
    "flip meta byte": (lambda s: flip_byte(s, f"{R2}/meta.json"), "(meta.json: sha256 mismatch)"),
    "delete tensor file": (
        lambda s: s.delete(f"{R2}/client_state/0.safetensors"),
        "(client_state/0.safetensors: missing)",
    ),
    "garbage manifest": (
        lambda s: s.write(f"{R2}/MANIFEST.json", b"{garbage"),
        "(MANIFEST.json: not valid JSON)",
    ),
    "manifest not an object": (lambda s: s.write(f"{R2}/MANIFEST.json", b"[1]"), "not a JSON object"),
    "manifest of another round": (
        lambda s: s.write(f"{R2}/MANIFEST.json", s.read("round-000001/MANIFEST.json")),
        "(MANIFEST.json: names round 1)",
    ),
    "manifest from the future": (
        lambda s: s.write(f"{R2}/MANIFEST.json", json.dumps({"format": 99, "round": 2}).encode()),
        "format 99, this fedsweep reads format 1",
    ),
    "manifest reaching outside": (
        lambda s: s.write(
            f"{R2}/MANIFEST.json",
            json.dumps(
                {
                    "format": 1,
                    "round": 2,
                    "groups": ["../x"],
                    "files": {
                        "../x.safetensors": {"size": 1, "sha256": "0"},
                        "meta.json": {"size": 1, "sha256": "0"},
                    },
                }
            ).encode(),
        ),
        "bad entry '../x.safetensors'",
    ),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corrupt_newest_falls_back_with_one_warning(
    storage: Storage, make_state: Callable, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    # Prepare
    corrupt, reason = CORRUPTIONS[name]
    store = CheckpointStore(storage=storage)
    for r in (1, 2):
        store.save(round=r, tensors=make_state(r), meta={"round": r})
    corrupt(storage)

    # Execute
    with caplog.at_level(logging.WARNING):
        loaded = store.load_latest()

    # Assert
    assert loaded.round == 1 and loaded.meta == {"round": 1}
    assert torch.equal(loaded.tensors["model"]["conv.weight"], make_state(1)["model"]["conv.weight"])
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"checkpoint {R2} is corrupt (") and reason in line
    assert line.endswith("; falling back to round-000001")


def test_missing_manifest_means_uncommitted(
    storage: Storage, make_state: Callable, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare
    store = CheckpointStore(storage=storage)
    for r in (1, 2):
        store.save(round=r, tensors=make_state(r), meta={"round": r})
    storage.delete(f"{R2}/MANIFEST.json")

    # Execute
    with caplog.at_level(logging.INFO):
        loaded = store.load_latest()

    # Assert: an interrupted write is expected after a kill: said, but not as a warning
    assert loaded.round == 1 and store.committed_rounds() == [1]
    assert (
        f"checkpoint {R2} is incomplete (no MANIFEST.json: a write was interrupted); ignoring it"
        in caplog.text
    )
    assert all(r.levelno == logging.INFO for r in caplog.records if "incomplete" in r.getMessage())


def test_all_corrupt_is_one_clear_error(
    storage: Storage, make_state: Callable, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare
    store = CheckpointStore(storage=storage)
    for r in (1, 2):
        store.save(round=r, tensors=make_state(r), meta={})
        flip_byte(storage, f"round-00000{r}/model.safetensors")

    # Execute
    with caplog.at_level(logging.WARNING), pytest.raises(CheckpointError) as error:
        store.load_latest()

    # Assert
    message = str(error.value)
    assert storage.location in message and "resume=false" in message and "\n" not in message
    assert "round-000001 is corrupt (model.safetensors: sha256 mismatch); no older checkpoint" in caplog.text


class Evil:
    """Unpickling this touches `marker`: what a malicious 'checkpoint' would do with os.system."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (pathlib.Path.touch, (self.marker,))


def raw_pickle(marker: pathlib.Path) -> bytes:
    return pickle.dumps({"conv.weight": Evil(marker)})


def torch_save(marker: pathlib.Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"conv.weight": Evil(marker)}, buffer)
    return buffer.getvalue()


def plant(storage: Storage, round_dir: str, payload: bytes) -> None:
    """Replace model.safetensors by `payload` and make the manifest vouch for it."""
    storage.write(f"{round_dir}/model.safetensors", payload)
    manifest = json.loads(storage.read(f"{round_dir}/MANIFEST.json"))
    sha = hashlib.sha256(payload).hexdigest()
    manifest["files"]["model.safetensors"] = {"size": len(payload), "sha256": sha}
    storage.write(f"{round_dir}/MANIFEST.json", json.dumps(manifest).encode())


@pytest.mark.parametrize("payload", [raw_pickle, torch_save])
def test_malicious_pickle_is_never_unpickled(
    storage: Storage,
    make_state: Callable,
    tmp_path: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
    payload: Callable,
) -> None:
    # Prepare: prove the payload is live (it fires on an unsafe load), then plant it with a valid manifest
    canary, marker = tmp_path / "CANARY", tmp_path / "MARKER"
    live = payload(canary)
    pickle.loads(live) if payload is raw_pickle else torch.load(io.BytesIO(live), weights_only=False)
    assert canary.exists()
    store = CheckpointStore(storage=storage)
    for r in (1, 2):
        store.save(round=r, tensors=make_state(r), meta={"round": r})
    plant(storage, R2, payload(marker))

    # Execute
    with caplog.at_level(logging.WARNING):
        loaded = store.load_latest()

    # Assert
    assert loaded.round == 1
    assert f"{R2} is corrupt (model.safetensors: not a valid safetensors file)" in caplog.text
    assert not marker.exists()


def test_malicious_only_checkpoint_is_an_error(
    storage: Storage, make_state: Callable, tmp_path: pathlib.Path
) -> None:
    # Prepare
    marker = tmp_path / "MARKER"
    store = CheckpointStore(storage=storage)
    store.save(round=2, tensors=make_state(2), meta={})
    plant(storage, R2, torch_save(marker))

    # Execute
    with pytest.raises(CheckpointError, match="no valid checkpoint"):
        store.load_latest()

    # Assert
    assert not marker.exists()


def test_latest_verified_is_the_newest_round_whose_files_match_their_manifest(
    storage: Storage, make_state: Callable
) -> None:
    # Prepare
    store = CheckpointStore(storage=storage)
    for r in (1, 2):
        store.save(round=r, tensors=make_state(r), meta={"round": r})
    # Execute: damage round 2's model, then round 1's (manifests and meta left intact)
    intact = store.latest_verified()
    storage.write(f"{R2}/model.safetensors", b"damaged")
    after_one = store.latest_verified()
    storage.write("round-000001/model.safetensors", b"damaged")
    # Assert: the manifests still list both rounds, but neither verifies at the end
    assert (intact, after_one, store.latest_verified()) == (2, 1, 0)
    assert store.committed_rounds() == [1, 2]
