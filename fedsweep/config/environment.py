"""Pre-flight checks of the world a valid config points at: folders, URLs, dataset files, devices.

They run after `validate` and before anything is written, so a sweep that cannot write its outputs
or find its data stops with one line instead of failing in its first task. Rules:

- **Nothing is created or modified.** A folder that does not exist yet is fine if it could be
  created: its nearest existing ancestor must be a directory we may write to. (As root, permission
  bits do not stop writes; a file in the way still does.)
- **Nothing is loaded.** Dataset files are checked by name and existence only, never read.
- **URLs are not contacted.** `s3://…` only needs fsspec to know the protocol and its package to be
  importable; credentials and buckets are the storage layer's business. The one exception is a
  Dask scheduler's address and a PostgreSQL server for Prefect: one TCP connect each, bounded by a
  few seconds, says whether anything answers.
- Each check raises `ConfigError` naming the key and the path or package.
"""

import importlib.util
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fedsweep.config.errors import ConfigError
from fedsweep.config.plugins import build


def check_creatable(path: str | os.PathLike[str], *, key: str) -> None:
    """`path` is a writable directory, or could be created as one."""
    target = Path(path).expanduser().absolute()
    probe = target
    while not probe.exists():
        if probe.is_symlink():
            raise ConfigError(f"{key}: cannot create {target}: {probe} is a broken symlink", key=key)
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{key}: cannot create {target}: {probe} is not a directory", key=key)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}: cannot write to {probe} (permission denied)", key=key)


def check_location(location: str, *, key: str) -> None:
    """A local path (or file:// URL) we can create, or an fsspec URL whose protocol is installed."""
    if "://" not in location:
        check_creatable(location, key=key)
        return
    protocol, rest = location.split("://", 1)
    if protocol == "file":
        check_creatable(rest, key=key)
        return
    import fsspec  # noqa: PLC0415 - only for a location given as a URL
    from fsspec.registry import known_implementations  # noqa: PLC0415 - as fsspec

    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError:
        package = known_implementations[protocol]["class"].split(".")[0]
        raise ConfigError(
            f"{key}={location} needs the {package!r} package (pip install {package})", key=key
        ) from None
    except ValueError:
        raise ConfigError(
            f"{key}={location}: unknown protocol {protocol!r}; use a local path or an fsspec "
            "URL such as s3://bucket/prefix",
            key=key,
        ) from None


def check_tracking(tracking: Mapping[str, Any]) -> None:
    """Where MLflow will write (a sqlite file's folder, a file store, the artifact root) can be created."""
    if not tracking.get("enabled"):
        return
    uri = str(tracking["uri"])
    if uri.startswith("sqlite:///"):
        db = uri[len("sqlite:///") :]
        if db and db != ":memory:":
            check_creatable(Path(db).parent, key="tracking.uri")
    elif uri.startswith("file:") or "://" not in uri:
        check_creatable(uri.removeprefix("file://").removeprefix("file:"), key="tracking.uri")
    root = str(tracking["artifact_root"])
    if "://" not in root or root.startswith("file://"):
        check_creatable(root.removeprefix("file://"), key="tracking.artifact_root")


def check_prefect_database(url: str, *, key: str) -> None:
    """The database a private Prefect server is told to use (`key`, an environment variable) can
    be used: a sqlite+aiosqlite file, or a PostgreSQL server (asyncpg installed) that answers a TCP
    connect within a few seconds. The password never appears in the message."""

    if url.startswith("sqlite+aiosqlite:"):
        return
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
    if parts.scheme != "postgresql+asyncpg":
        raise ConfigError(
            f"{key}={shown}: Prefect's server takes a postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB "
            "or a sqlite+aiosqlite:///PATH URL",
            key=key,
        )
    if importlib.util.find_spec("asyncpg") is None:
        raise ConfigError(
            f'{key} names a PostgreSQL database: pip install "fedsweep[postgres]" (asyncpg)', key=key
        )
    if not parts.hostname:  # a Unix socket given in the query string: left to the server
        return
    try:
        socket.create_connection((parts.hostname, parts.port or 5432), timeout=5.0).close()
    except OSError as exc:
        raise ConfigError(
            f"{key}={shown}: no PostgreSQL server answers there ({exc.strerror or type(exc).__name__})",
            key=key,
        ) from None


def resolved_device(device: str) -> str:
    """`auto` as this machine resolves it (`cuda` when CUDA is present, else `cpu`); any other device as
    given. A cell is keyed with the device it runs on, so `auto` on a CPU-only machine is the cell
    `cpu` is (and keeps the key it had before `auto` existed)."""
    if device != "auto":
        return device
    import torch  # noqa: PLC0415 - only for `auto`: seconds to import

    return "cuda" if torch.cuda.is_available() else "cpu"


def with_device_resolved(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with `runner.device=auto` resolved (a shallow copy; itself if there is nothing to do)."""
    runner = config.get("runner")
    if not isinstance(runner, Mapping) or runner.get("device") != "auto":
        return config
    return {**config, "runner": {**runner, "device": resolved_device("auto")}}


def check_device(device: str) -> None:
    """A requested accelerator exists (`auto` falls back to the CPU by itself)."""
    kind = device.split(":", 1)[0]
    if kind in ("cpu", "auto"):
        return
    import torch  # noqa: PLC0415 - only for a GPU device: a typo is reported without it

    available: dict[str, Callable[[], bool]] = {
        "cuda": torch.cuda.is_available,
        "mps": torch.backends.mps.is_available,
        "xpu": lambda: hasattr(torch, "xpu") and torch.xpu.is_available(),
    }
    if not available.get(kind, lambda: True)():
        raise ConfigError(
            f"runner.device={device} but this machine has no {kind} device; use cpu or auto",
            key="runner.device",
        )


def check_dataset_files(node: Mapping[str, Any]) -> None:
    """Every file the dataset will read exists (its `missing_files()`: checked by name, never opened)."""
    missing = build(node, key="dataset").missing_files()
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConfigError(
            f"dataset files missing: {missing[0]}{more}; copy them there, set dataset.root, or set "
            "dataset.download=true",
            key="dataset.root",
        )
