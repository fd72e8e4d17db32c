"""Storage: atomic writes, safe paths, temp-file cleanup, and open_storage's choices and errors."""

import os
import subprocess
import sys
import uuid

import fsspec
import pytest

from fedsweep.checkpoint.storage import FsspecStorage, LocalStorage, Storage, open_storage


def test_write_read_list_delete(storage: Storage) -> None:
    # Prepare
    storage.write("a/b/one.bin", b"1")
    storage.write("a/two.bin", b"22")
    storage.write("a/two.bin", b"222")  # overwrite

    # Execute
    listed, nested = storage.list("a"), storage.list("a/b")
    content = storage.read("a/two.bin")

    # Assert
    assert isinstance(storage, Storage)
    assert listed == ["b", "two.bin"] and nested == ["one.bin"] and storage.list("") == ["a"]
    assert content == b"222" and storage.exists("a/b/one.bin") and not storage.exists("a/none")
    assert storage.list("missing") == []
    storage.delete("a/two.bin")
    storage.delete("a/two.bin")  # missing is fine
    storage.delete_tree("a/b")
    storage.delete_tree("a/b")
    assert storage.list("a") == []


@pytest.mark.parametrize("bad", ["../x", "/abs", "a//b", "a/./b", ".tmp-1-x", "a/..", ""])
def test_unsafe_paths_are_refused(storage: Storage, bad: str) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="not a plain relative path"):
        storage.write(bad, b"x")


def test_local_failed_write_leaves_no_partial_file(tmp_path, monkeypatch) -> None:
    # Prepare
    storage = LocalStorage(tmp_path)
    storage.write("d/old.bin", b"old content")

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)

    # Execute
    with pytest.raises(OSError, match="disk full"):
        storage.write("d/new.bin", b"new")
    with pytest.raises(OSError, match="disk full"):
        storage.write("d/old.bin", b"half-new")

    # Assert
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["old.bin"]  # no temp files either
    assert (tmp_path / "d" / "old.bin").read_bytes() == b"old content"


def test_fsspec_failed_move_leaves_no_partial_file(monkeypatch) -> None:
    # Prepare
    storage = FsspecStorage("memory://atomic")
    storage.write("d/old.bin", b"old content")

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("connection reset")

    monkeypatch.setattr(storage.fs, "mv", crash)

    # Execute
    with pytest.raises(OSError, match="connection reset"):
        storage.write("d/new.bin", b"new")

    # Assert
    assert storage.fs.ls("/atomic/d", detail=False) == ["/atomic/d/old.bin"]
    assert storage.read("d/old.bin") == b"old content"


def test_clean_temp_removes_only_dead_pids(tmp_path) -> None:
    # Prepare: a temp file left by a killed process, one of a live process, and a real file
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    storage = LocalStorage(tmp_path)
    storage.write("round-000001/model.safetensors", b"ok")
    stale = tmp_path / "round-000001" / f".tmp-{dead.pid}-abcd1234-model.safetensors"
    live = tmp_path / "round-000001" / f".tmp-{os.getpid()}-abcd1234-meta.json"
    stale.write_bytes(b"half")
    live.write_bytes(b"being written")

    # Execute
    listed = storage.list("round-000001")
    removed = storage.clean_temp()

    # Assert
    assert listed == ["model.safetensors"]  # temp files are invisible
    assert removed == [f"round-000001/{stale.name}"]
    assert not stale.exists() and live.exists()
    assert storage.read("round-000001/model.safetensors") == b"ok"


def test_open_storage_picks_the_implementation(tmp_path) -> None:
    # Execute
    plain, file_url = open_storage(str(tmp_path / "x")), open_storage(f"file://{tmp_path}/y")
    memory = open_storage("memory://z")

    # Assert
    assert isinstance(plain, LocalStorage) and plain.root == tmp_path / "x"
    assert isinstance(file_url, LocalStorage) and file_url.root == tmp_path / "y"
    assert isinstance(memory, FsspecStorage)


def test_open_storage_unknown_protocol_is_one_clear_line() -> None:
    # Execute
    with pytest.raises(ValueError) as unknown:
        open_storage("nosuchproto://bucket/x")

    # Assert
    message = str(unknown.value)
    assert "nosuchproto://bucket/x" in message and "pip install" in message and "\n" not in message


def test_open_storage_missing_package_names_it() -> None:
    # Prepare
    try:
        fsspec.get_filesystem_class("s3")
        pytest.skip("s3fs is installed")
    except ImportError:
        pass

    # Execute
    with pytest.raises(ValueError) as missing:
        open_storage(f"s3://bucket-{uuid.uuid4().hex[:6]}/runs")

    # Assert
    assert "pip install s3fs" in str(missing.value) and "s3://bucket-" in str(missing.value)
