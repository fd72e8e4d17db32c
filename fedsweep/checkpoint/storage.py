"""Where state is written: a tiny `Storage` contract, a local and an fsspec implementation.

Everything that persists state (round checkpoints, client results) goes through a `Storage`, so
that the rules below hold in one place and a test can swap in a storage that fails on purpose.

Rules:

- **Atomic writes.** After `write(path, data)` returns, `path` holds exactly `data`; if it raises
  (or the process is killed), `path` holds its old content or does not exist: never a prefix.
  Locally: a temp file in the same directory (`.tmp-<pid>-…`), write, flush, `os.fsync`,
  `os.replace`, then fsync the directory so that the rename itself survives a power cut. On fsspec
  filesystems: the same temp-then-move, except on object stores, where one PUT is atomic already.
- **Relative paths only.** Paths are `/`-separated and relative to the storage's root; `..`, `.`,
  empty segments and the reserved `.tmp-` prefix are refused, so a crafted manifest cannot reach
  outside the checkpoint directory.
- **Temp files are invisible.** `list` never returns them. A killed run can leave one behind;
  `LocalStorage.clean_temp()` removes those whose pid is no longer alive.
- Deleting something that does not exist is not an error (a retried prune must succeed).

`open_storage(location)` picks the implementation: a plain path or `file://` is local; any other
`proto://` goes to fsspec (`memory://` in tests; `s3://`, `gs://`, … once their package is installed).
"""

# Lazy annotations: inside the classes below, the method `list` shadows the builtin `list[str]`.
from __future__ import annotations

import builtins
import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Protocol, runtime_checkable

import fsspec
from fsspec.registry import known_implementations

TEMP_PREFIX = ".tmp-"
# One PUT is atomic on these; a temp-then-move would be a copy plus a delete, i.e. worse.
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oci"})


class CheckpointError(Exception):
    """A checkpoint or stored blob that cannot be used (corrupt, missing, or of an unknown format)."""


@runtime_checkable
class Storage(Protocol):
    """Files under one root; `write` is atomic; paths are relative and `/`-separated."""

    location: str

    def write(self, path: str, data: bytes) -> None: ...
    def read(self, path: str) -> bytes: ...
    def exists(self, path: str) -> bool: ...
    def list(self, prefix_dir: str) -> list[str]: ...
    def delete(self, path: str) -> None: ...
    def delete_tree(self, dir: str) -> None: ...


def check_path(path: str, *, allow_root: bool = False) -> str:
    """`path` if it is a safe relative path, else ValueError naming it."""
    if path == "" and allow_root:
        return path
    parts = path.split("/")
    if any(p in ("", ".", "..") or p.startswith(TEMP_PREFIX) or "\\" in p for p in parts):
        raise ValueError(f"storage path {path!r} is not a plain relative path")
    return path


def _temp_name(name: str) -> str:
    return f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{name}"


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync elsewhere
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class LocalStorage:
    """A directory on the local filesystem."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def _full(self, path: str, *, allow_root: bool = False) -> Path:
        return self.root / check_path(path, allow_root=allow_root)

    def _makedirs(self, directory: Path) -> None:
        missing = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for d in reversed(missing):
            d.mkdir(exist_ok=True)
            _fsync_dir(d.parent)  # the new directory's entry must survive a crash too

    def write(self, path: str, data: bytes) -> None:
        target = self._full(path)
        self._makedirs(target.parent)
        tmp = target.parent / _temp_name(target.name)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def read(self, path: str) -> bytes:
        return self._full(path).read_bytes()

    def exists(self, path: str) -> bool:
        return self._full(path).exists()

    def list(self, prefix_dir: str) -> list[str]:
        directory = self._full(prefix_dir, allow_root=True)
        if not directory.is_dir():
            return []
        return sorted(p.name for p in directory.iterdir() if not p.name.startswith(TEMP_PREFIX))

    def delete(self, path: str) -> None:
        self._full(path).unlink(missing_ok=True)

    def delete_tree(self, dir: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self._full(dir))

    def clean_temp(self) -> builtins.list[str]:  # `list` is a method name here
        """Remove temp files left by dead processes (a killed run); return their relative paths."""
        removed = []
        for tmp in sorted(self.root.rglob(f"{TEMP_PREFIX}*")) if self.root.is_dir() else []:
            pid = tmp.name[len(TEMP_PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                tmp.unlink(missing_ok=True)
                removed.append(tmp.relative_to(self.root).as_posix())
        return removed


class FsspecStorage:
    """A folder on any fsspec filesystem (`memory://`, `s3://bucket/prefix`, …)."""

    def __init__(self, url: str) -> None:
        self.location = url
        self.fs, root = fsspec.core.url_to_fs(url)
        self.root = root.rstrip("/")
        protocol = self.fs.protocol
        self.atomic_put = bool(OBJECT_STORES & set(protocol if isinstance(protocol, tuple) else (protocol,)))

    def _full(self, path: str, *, allow_root: bool = False) -> str:
        path = check_path(path, allow_root=allow_root)
        return f"{self.root}/{path}" if path else self.root

    def write(self, path: str, data: bytes) -> None:
        target = self._full(path)
        if self.atomic_put:
            self.fs.pipe_file(target, data)
            return
        parent, name = target.rsplit("/", 1)
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/{_temp_name(name)}"
        try:
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, target)
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: the original error is the one to report
                self.fs.rm_file(tmp)
            raise

    def read(self, path: str) -> bytes:
        return self.fs.cat_file(self._full(path))

    def exists(self, path: str) -> bool:
        return self.fs.exists(self._full(path))

    def list(self, prefix_dir: str) -> list[str]:
        directory = self._full(prefix_dir, allow_root=True)
        try:
            entries = self.fs.ls(directory, detail=False)
        except FileNotFoundError:
            return []
        names = {e.rstrip("/").rsplit("/", 1)[-1] for e in entries if e.rstrip("/") != directory}
        return sorted(n for n in names if n and not n.startswith(TEMP_PREFIX))

    def delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._full(path))

    def delete_tree(self, dir: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._full(dir), recursive=True)


def visible_to_other_processes(location: str) -> bool:
    """False for `memory://`, which lives inside one process (worker processes would not see it)."""
    return not location.startswith("memory://")


def open_storage(location: str) -> Storage:
    """A `LocalStorage` for a path or `file://` URL, an `FsspecStorage` for any other `proto://`."""
    if "://" not in location:
        return LocalStorage(location)
    protocol, rest = location.split("://", 1)
    if protocol == "file":
        return LocalStorage(rest)
    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError:
        package = known_implementations[protocol]["class"].split(".")[0]
        raise ValueError(
            f"checkpoint location {location!r} needs the {package!r} package: pip install {package}"
        ) from None
    except ValueError:
        raise ValueError(
            f"checkpoint location {location!r}: unknown protocol {protocol!r}; use a local path or an "
            "fsspec URL (s3:// needs pip install s3fs, gs:// needs gcsfs, az:// needs adlfs)"
        ) from None
    return FsspecStorage(location)
