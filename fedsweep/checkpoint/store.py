"""Round checkpoints: committed by a manifest written last, verified by sha256, kept last-K.

Layout under the store's `Storage` root (one directory per round)::

    round-000005/
        model.safetensors               one safetensors file per tensor group (the groups a cell
        server_state.safetensors        saves are named in fedsweep/rounds/state.py; a
        selection.safetensors           group name may contain `/`)
        meta.json                       small JSON-able state: metric history, client-state index, …
        MANIFEST.json                   format, round, groups, and size + sha256 of every file above

Rules:

- **Manifest last.** `save` writes every tensor file and `meta.json` (each atomically), then
  `MANIFEST.json`. A round directory without a manifest is *not committed*: a crash at any point of
  a save leaves the previous committed round as the latest one.
- **Verify on load.** `load_latest` tries committed rounds newest first; a round is used only if its
  manifest parses, names its own round and a known format, and every listed file exists with the
  listed size and sha256 and parses. Otherwise it logs one line ("checkpoint round-000007 is corrupt
  (model.safetensors: sha256 mismatch); falling back to round-000006") and tries the previous one.
  If checkpoints exist but none is valid it raises `CheckpointError` (resuming from a wrong state is
  worse than stopping); with no committed round at all it returns None (a fresh start).
- **Never unpickle.** Tensors are read only through safetensors (`fedsweep.weights.from_bytes`);
  a file that is not valid safetensors, e.g. a pickle, is corrupt, even with a matching sha256.
- **The last save wins, but never rewinds.** Saving round r while a *valid* newer round exists is a
  ValueError (the caller should have resumed from it; `resume=false` deletes the whole cell folder
  first). After round r is committed the store prunes (best effort: a failure is logged, the
  save stands) rounds newer than r (corrupt ones we fell back from, which would otherwise be
  re-tried on every resume), uncommitted rounds older than r, and committed rounds beyond the
  newest `keep`. A pruned round loses its manifest first, so a crash mid-prune leaves an
  uncommitted directory, never a half-deleted committed one.
- Re-saving an existing round replaces it (its old directory is deleted first, which uncommits it).
"""

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from fedsweep.checkpoint.storage import CheckpointError, Storage
from fedsweep.weights import Params, from_bytes, to_bytes

FORMAT = 1
MANIFEST = "MANIFEST.json"
META = "meta.json"
SUFFIX = ".safetensors"
_GROUP = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=-]*(/[A-Za-z0-9_][A-Za-z0-9_.=-]*)*")
_ROUND_DIR = re.compile(r"round-(\d{6,})")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkpoint:
    """One verified round: tensor groups in the order they were saved, and the JSON meta."""

    round: int
    tensors: dict[str, Params]
    meta: dict[str, Any]


class _Corrupt(Exception):
    """Why a round cannot be used (one short phrase)."""


def round_dir(round: int) -> str:
    return f"round-{round:06d}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class CheckpointStore:
    """Saves and loads round checkpoints under one storage root."""

    def __init__(self, *, storage: Storage, keep: int = 3) -> None:
        if keep < 2:
            raise ValueError(f"checkpoint.keep must be >= 2 (got {keep}): one round has no fallback")
        self.storage = storage
        self.keep = keep

    def save(self, *, round: int, tensors: dict[str, Params], meta: dict[str, Any]) -> None:
        """Write round `round` and commit it (manifest last); then prune."""
        if round < 0:
            raise ValueError(f"checkpoint round must be >= 0 (got {round})")
        for group in tensors:
            if not _GROUP.fullmatch(group):
                raise ValueError(f"checkpoint tensor group {group!r}: use letters, digits, _ . = - and /")
        meta_bytes = json.dumps(meta).encode()  # fail on non-JSON meta before touching the disk
        self._refuse_rewind(round)
        base = round_dir(round)
        self.storage.delete_tree(base)  # uncommits a previous attempt at this round
        files: dict[str, dict[str, Any]] = {}
        for group, params in tensors.items():
            data = to_bytes(params)  # one group in memory at a time
            self.storage.write(f"{base}/{group}{SUFFIX}", data)
            files[f"{group}{SUFFIX}"] = {"size": len(data), "sha256": _sha256(data)}
        self.storage.write(f"{base}/{META}", meta_bytes)
        files[META] = {"size": len(meta_bytes), "sha256": _sha256(meta_bytes)}
        manifest = {"format": FORMAT, "round": round, "groups": list(tensors), "files": files}
        self.storage.write(f"{base}/{MANIFEST}", json.dumps(manifest, indent=1).encode())
        try:
            self._prune(round)
        except Exception as exc:  # noqa: BLE001 - the round is committed; leftovers are only disk space
            log.warning("checkpoint pruning after %s failed: %s: %s", base, type(exc).__name__, exc)

    def _refuse_rewind(self, round: int) -> None:
        # Saving r prunes every round newer than r: fine for a corrupt one we fell back from, but a
        # valid newer round means the caller is confused (or forgot resume=false): stop, lose nothing.
        for newer in (r for r in reversed(self.committed_rounds()) if r > round):
            try:
                self._load(newer)
            except _Corrupt:
                continue
            raise ValueError(
                f"checkpoint round {round} is older than the valid {round_dir(newer)} in "
                f"{self.storage.location}; resume from it, or start over with resume=false"
            )

    def _rounds(self) -> list[int]:
        """Every round directory, committed or not, ascending."""
        found = (_ROUND_DIR.fullmatch(name) for name in self.storage.list(""))
        return sorted(int(m.group(1)) for m in found if m)

    def committed_rounds(self) -> list[int]:
        """Rounds whose manifest exists (not yet verified), ascending."""
        return [r for r in self._rounds() if self.storage.exists(f"{round_dir(r)}/{MANIFEST}")]

    def _drop(self, round: int) -> None:
        self.storage.delete(f"{round_dir(round)}/{MANIFEST}")
        self.storage.delete_tree(round_dir(round))

    def _prune(self, saved: int) -> None:
        committed = set(self.committed_rounds())
        kept = sorted(r for r in committed if r <= saved)[-self.keep :]
        for r in self._rounds():
            if r > saved or r not in kept:
                self._drop(r)

    def load_latest(self) -> Checkpoint | None:
        """The newest valid committed round; None if nothing was ever committed."""
        committed = self.committed_rounds()
        for r in reversed(self._rounds()):
            # Invisible to resume; worth a line when it is newer than what we resume from.
            if r not in committed and (not committed or r > committed[-1]):
                log.info(
                    "checkpoint %s is incomplete (no %s: a write was interrupted); ignoring it",
                    round_dir(r),
                    MANIFEST,
                )
        for i, r in enumerate(reversed(committed)):
            try:
                return self._load(r)
            except _Corrupt as why:
                older = committed[-i - 2] if i + 1 < len(committed) else None
                then = f"falling back to {round_dir(older)}" if older is not None else "no older checkpoint"
                log.warning("checkpoint %s is corrupt (%s); %s", round_dir(r), why, then)
        if committed:
            raise CheckpointError(
                f"no valid checkpoint in {self.storage.location} ({len(committed)} corrupt, see the "
                "warnings above); set resume=false to start over"
            )
        return None

    def kept_metas(self) -> list[dict[str, Any]]:
        """The JSON meta of every committed round whose manifest and meta verify (tensors unread)."""
        metas = []
        for r in self.committed_rounds():
            base = round_dir(r)
            try:
                manifest = _parse_manifest(self._read(base, MANIFEST), r)
                metas.append(json.loads(self._verified(base, META, manifest["files"])))
            except (_Corrupt, ValueError):
                continue
        return metas

    def latest_verified(self) -> int:
        """The newest committed round whose every file matches its manifest (size and sha256; the
        tensors are hashed, not parsed); 0: none."""
        for r in reversed(self.committed_rounds()):
            base = round_dir(r)
            try:
                files = _parse_manifest(self._read(base, MANIFEST), r)["files"]
                for name in files:
                    self._verified(base, name, files)
            except (_Corrupt, ValueError):
                continue
            return r
        return 0

    def _read(self, base: str, name: str) -> bytes:
        try:
            return self.storage.read(f"{base}/{name}")
        except FileNotFoundError:
            raise _Corrupt(f"{name}: missing") from None
        except OSError as exc:
            raise _Corrupt(f"{name}: unreadable ({exc})") from None

    def _load(self, round: int) -> Checkpoint:
        base = round_dir(round)
        manifest = _parse_manifest(self._read(base, MANIFEST), round)
        tensors = {}
        for group in manifest["groups"]:  # one group's bytes in memory at a time
            data = self._verified(base, f"{group}{SUFFIX}", manifest["files"])
            try:  # safetensors only: a pickle here fails the header check and is never executed
                tensors[group] = from_bytes(data)
            except Exception:  # noqa: BLE001 - any parse failure means "not safetensors"
                raise _Corrupt(f"{group}{SUFFIX}: not a valid safetensors file") from None
        try:
            meta = json.loads(self._verified(base, META, manifest["files"]))
        except ValueError:
            raise _Corrupt(f"{META}: not valid JSON") from None
        return Checkpoint(round=round, tensors=tensors, meta=meta)

    def _verified(self, base: str, name: str, files: dict[str, dict[str, Any]]) -> bytes:
        data = self._read(base, name)
        if len(data) != files[name]["size"]:
            raise _Corrupt(f"{name}: size {len(data)}, the manifest says {files[name]['size']}")
        if _sha256(data) != files[name]["sha256"]:
            raise _Corrupt(f"{name}: sha256 mismatch")
        return data


def _parse_manifest(data: bytes, round: int) -> dict[str, Any]:
    """The manifest if its shape is right, else `_Corrupt` saying what is wrong."""
    try:
        manifest = json.loads(data)
    except ValueError:
        raise _Corrupt(f"{MANIFEST}: not valid JSON") from None
    if not isinstance(manifest, dict):
        raise _Corrupt(f"{MANIFEST}: not a JSON object")
    if manifest.get("format") != FORMAT:
        raise _Corrupt(f"{MANIFEST}: format {manifest.get('format')!r}, this fedsweep reads format {FORMAT}")
    if manifest.get("round") != round:
        raise _Corrupt(f"{MANIFEST}: names round {manifest.get('round')!r}")
    files, groups = manifest.get("files"), manifest.get("groups")
    if not isinstance(files, dict) or not isinstance(groups, list):
        raise _Corrupt(f"{MANIFEST}: 'files' or 'groups' missing")
    for name, entry in files.items():
        ok_name = name == META or (name.endswith(SUFFIX) and _GROUP.fullmatch(name[: -len(SUFFIX)]))
        if not ok_name or not isinstance(entry, dict):
            raise _Corrupt(f"{MANIFEST}: bad entry {name!r}")
        if not isinstance(entry.get("size"), int) or not isinstance(entry.get("sha256"), str):
            raise _Corrupt(f"{MANIFEST}: bad entry {name!r}")
    if not all(isinstance(g, str) for g in groups) or set(files) != {META, *(f"{g}{SUFFIX}" for g in groups)}:
        raise _Corrupt(f"{MANIFEST}: its groups and files do not match")
    return manifest
