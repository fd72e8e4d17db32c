"""A full disk while checkpointing: the error is reported, the previous round stays the valid latest,
no partial file is left behind, and the next save succeeds once there is room again."""

import errno
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fedsweep.checkpoint.storage import TEMP_PREFIX, LocalStorage
from fedsweep.checkpoint.store import MANIFEST, CheckpointStore
from fedsweep.weights import weights_sha256


class FullDisk:
    """A Storage whose `fail_at`-th write (0-based, counted from `arm()`) raises ENOSPC."""

    def __init__(self, inner: LocalStorage) -> None:
        self.inner, self.location = inner, inner.location
        self.fail_at: int | None = None
        self.writes = 0

    def arm(self, fail_at: int) -> None:
        self.fail_at, self.writes = fail_at, 0

    def write(self, path: str, data: bytes) -> None:
        if self.writes == self.fail_at:
            self.writes += 1
            raise OSError(errno.ENOSPC, "No space left on device", path)
        self.writes += 1
        self.inner.write(path, data)

    def read(self, path: str) -> bytes:
        return self.inner.read(path)

    def exists(self, path: str) -> bool:
        return self.inner.exists(path)

    def list(self, prefix_dir: str) -> list[str]:
        return self.inner.list(prefix_dir)

    def delete(self, path: str) -> None:
        self.inner.delete(path)

    def delete_tree(self, dir: str) -> None:
        self.inner.delete_tree(dir)


def state(seed: int) -> dict[str, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return {
        "model": {"w": torch.randn(64, 8, generator=g)},
        "server_state": {"c": torch.randn(8, generator=g)},
    }


# A save writes model, server_state, meta.json, then MANIFEST.json: fail at each of them in turn.
@pytest.mark.parametrize("fail_at", [0, 1, 2, 3], ids=["model", "server_state", "meta", "manifest"])
def test_disk_full_mid_save_keeps_the_previous_round(tmp_path: Path, fail_at: int) -> None:
    # Prepare
    disk = FullDisk(LocalStorage(tmp_path / "ckpt"))
    store = CheckpointStore(storage=disk, keep=2)
    store.save(round=1, tensors=state(1), meta={"round": 1})
    disk.arm(fail_at)
    # Execute
    with pytest.raises(OSError) as err:
        store.save(round=2, tensors=state(2), meta={"round": 2})
    latest = store.load_latest()
    # Assert
    assert err.value.errno == errno.ENOSPC
    assert latest is not None and latest.round == 1
    assert weights_sha256(latest.tensors["model"]) == weights_sha256(state(1)["model"])
    assert not (tmp_path / "ckpt" / "round-000002" / MANIFEST).exists()
    assert not list((tmp_path / "ckpt").rglob(f"{TEMP_PREFIX}*"))
    # ... and once there is room again, the same round commits over the leftovers
    disk.arm(-1)
    store.save(round=2, tensors=state(2), meta={"round": 2})
    assert store.load_latest().round == 2


SCRIPT = textwrap.dedent("""
    import errno, json, resource, signal, sys, torch
    from fedsweep.checkpoint.storage import LocalStorage
    from fedsweep.checkpoint.store import CheckpointStore
    store = CheckpointStore(storage=LocalStorage(sys.argv[1]), keep=2)
    store.save(round=1, tensors={"model": {"w": torch.zeros(8)}}, meta={"round": 1})
    # The kernel refuses to grow any file past 64 KiB (EFBIG, the per-process twin of ENOSPC):
    # a real write that fails half-way, leaving a real partial temp file for the store to clean.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        store.save(round=2, tensors={"model": {"w": torch.ones(1 << 20)}}, meta={"round": 2})
        error = None
    except OSError as exc:
        error = exc.errno
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    print(json.dumps({"errno": error, "latest": store.load_latest().round}))
""")


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics are Linux's")
def test_a_real_failed_write_leaves_no_partial_file(tmp_path: Path) -> None:
    # Execute
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "ckpt")],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    # Assert
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"errno": errno.EFBIG, "latest": 1}
    assert not list((tmp_path / "ckpt").rglob(f"{TEMP_PREFIX}*"))
    assert not (tmp_path / "ckpt" / "round-000002" / MANIFEST).exists()
