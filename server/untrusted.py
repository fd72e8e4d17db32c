"""Only plain data may sit where Prefect looks for persisted task results.

Why: Prefect 3.8 decides how to decode a cached result from the record itself
(`ResultRecord.deserialize`, called by `ResultStore.read` and even by `ResultStore.exists`). A record
whose metadata claims the `pickle` serializer is unpickled, which runs any code it carries; a `json`
record may name its own `jsonlib` or `object_decoder` (any importable callable, e.g.
`subprocess.call`), and Prefect's default decoder imports the class named by a `__class__` or
`__exc_type__` field. So a planted or foreign file in `outputs/<sweep>/prefect-results/` would run
code as soon as a resumed sweep reaches its task.

Rules:

- `guard_results(results_dir)` runs before the sweep flow starts (cli/run.py calls it). Every
  file under `results_dir` must be a record as fedsweep's tasks write it: a JSON object with exactly
  `metadata` and `result`; `metadata.serializer` equal to Prefect's default `JSONSerializer`; no
  storage block; `result` a JSON text of plain data (no `__class__` / `__exc_type__` markers).
- Anything else (a pickle, a foreign or malformed file, a symlink, a FIFO, a file over
  `MAX_BYTES`) is deleted, with one warning line naming the file and why. Its task then recomputes
  it, which gives the same bytes (tasks are pure functions of their inputs), so nothing is lost.
- A torn write of our own is deleted the same way but silently (one INFO line): Prefect writes a
  record in place, not atomically, so a sweep stopped mid-write leaves an empty file or the start
  of a record that names its own path as `storage_key`, and no valid JSON. That is what an
  interrupted run leaves, not an attack (and being invalid JSON, it cannot run anything).
- So is the exception record of a failed task of ours: Prefect writes a failed task's exception
  (`{"__exc_type__": ..., "message": ...}`) at the top of the results folder, under a random
  name, naming its own path, and never reads it back. Decoding it would import the class, so it
  goes, but it is routine (a client that failed), not hostile.
- Deciding never executes the file: it is read with the stdlib `json` parser only, no hooks.
- A file that cannot be deleted stops the sweep (`UntrustedResultError`): running next to it is not
  safe.
"""

import json
import logging
import os
import re
import stat
from functools import lru_cache
from pathlib import Path
from typing import Any

MAX_BYTES = 8 * 1024 * 1024  # our records are references of a few hundred bytes
_MARKERS = ("__class__", "__exc_type__")
TORN = "a torn write of an interrupted run"
FAILED_TASK = "the exception record of a failed task"
ROUTINE = (TORN, FAILED_TASK)  # ours, removed with an INFO line
_METADATA_KEYS = {"storage_key", "expiration", "serializer", "prefect_version", "storage_block_id"}
log = logging.getLogger("fedsweep")


class UntrustedResultError(RuntimeError):
    """An untrusted file in the results folder could not be removed."""


@lru_cache(maxsize=1)
def expected_serializer() -> dict[str, Any]:
    """Prefect's default JSON serializer as it appears in a record's metadata."""
    from prefect.serializers import JSONSerializer  # noqa: PLC0415 - only once a sweep really runs

    return JSONSerializer().model_dump(mode="json")


def why_untrusted(path: Path) -> str | None:
    """None if `path` is a plain-data JSON result record, else a short reason."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None  # gone already: nothing left to read
    if stat.S_ISLNK(info.st_mode):
        return "a symlink"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size > MAX_BYTES:
        return f"{info.st_size} bytes, more than any result record"
    data = path.read_bytes()
    try:
        record = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return TORN if _torn_write(path, data) else "not valid JSON (foreign or damaged)"
    if not isinstance(record, dict) or set(record) != {"metadata", "result"}:
        return "not a result record"
    metadata = record["metadata"]
    if not isinstance(metadata, dict) or not set(metadata) <= _METADATA_KEYS:
        return "unexpected record metadata"
    serializer = metadata.get("serializer")
    if serializer != expected_serializer():
        kind = serializer.get("type") if isinstance(serializer, dict) else serializer
        return f"serializer {kind!r} is not Prefect's plain JSON serializer"
    if metadata.get("storage_block_id") is not None:
        return "names a storage block"
    if not isinstance(record["result"], str):
        return "result is not JSON text"
    try:
        payload = json.loads(record["result"])
    except ValueError:
        return "result is not valid JSON"
    if _has_marker(payload):
        return (
            FAILED_TASK
            if _failed_task(path, metadata, payload)
            else "result asks the decoder to import a class"
        )
    return None


def _failed_task(path: Path, metadata: dict, payload: Any) -> bool:
    """Whether a record is the exception of a failed task, as Prefect persists it for fedsweep."""
    return (
        re.fullmatch(r"[0-9a-f]{32}", path.name) is not None
        and metadata.get("storage_key") in {str(path.absolute()), str(path.resolve())}
        and isinstance(payload, dict)
        and set(payload) == {"__exc_type__", "message"}
        and all(isinstance(v, str) for v in payload.values())
    )


def _torn_write(path: Path, data: bytes) -> bool:
    """Whether `data` (not valid JSON) is the beginning of a record Prefect was writing at `path`."""
    for where in {str(path.absolute()), str(path.resolve())}:
        head = b'{"metadata":{"storage_key":' + json.dumps(where).encode()
        if head.startswith(data) or data.startswith(head):
            return True
    return False


def _has_marker(value: Any) -> bool:
    if isinstance(value, dict):
        return any(m in value for m in _MARKERS) or any(_has_marker(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_marker(v) for v in value)
    return False


def guard_results(results_dir: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Delete every untrusted file under `results_dir`; returns (relative path, reason) for each."""
    root = Path(results_dir)
    removed: list[tuple[str, str]] = []
    if not root.is_dir():
        return removed
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        # A symlinked folder is listed in `dirs` but never entered: remove the link itself.
        entries = [*files, *(d for d in dirs if (here / d).is_symlink())]
        for name in sorted(entries):
            path = here / name
            reason = why_untrusted(path)
            if reason is None:
                continue
            rel = path.relative_to(root).as_posix()
            try:
                path.unlink()
            except OSError as exc:
                raise UntrustedResultError(
                    f"cannot remove untrusted Prefect result {path} ({reason}): {exc}; delete it by hand"
                ) from None
            if reason in ROUTINE:
                log.info("removed %s (%s); its task will be recomputed", path, reason)
            else:
                log.warning(
                    "removed untrusted Prefect result %s (%s); its task will be recomputed", path, reason
                )
            removed.append((rel, reason))
    return removed
