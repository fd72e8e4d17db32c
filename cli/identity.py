"""Which folder each planned cell is, and the names cells go by. Read-only: the dry run uses it too.

**Identity.** A cell's key (fedsweep/grid.py `cell_key`) hashes every setting that can change its
results but `rounds`, which is where a cell stops: the first 5 rounds of a 10-round cell are those
of the 5-round cell, so `rounds=10` after 5 continues the same cell from its round-5 checkpoint.
`rounds` stays part of what a cell is (its key and its folder's name) where it changes more than
where the cell stops: for the cells of a grid that varies it, and where another setting is
interpolated from it (`${rounds}`). `runner.device=auto` is resolved before keying (cli/plan.py), so
on a machine without CUDA it is the same cell as `runner.device=cpu`.

**Folders.** `<cells>/<stem>-<key[:8]>`, the stem being the cell's name without `-rN`
(`fedavg-c10-s0-1a2b3c4d`). A cell made while `rounds` was part of every key (its folder
`fedavg-c10-r5-s0-<that key[:8]>`) is found by the config recorded in its folder (`cell.json`) and
used as it is, key and folder kept: its checkpoints, persisted task results, MLflow run and the
sweep's receipt stay valid, nothing is recomputed or moved. Of several such folders of one cell
(made by runs at several `rounds`), the one with the most committed rounds not beyond `rounds` is
taken (else the one with the fewest).

**Names.** `<strategy>-c<N>-r<R>-s<seed>[-labels]`, R the round the cell stops at: `rounds`, or the
rounds already committed where there are more (a smaller `rounds` undoes nothing: the cell is
finished and reports its rounds). Cells of one sweep folder that differ in any setting have different
names: a cell whose stem is held by a different cell of the folder (or of the same command) gets a
suffix saying what differs (`-tinynet`: another class for a `_target_`; `-mu0.1`: the one differing
setting; else `-k<key[:6]>`). The first holder keeps the plain name, and a suffix, once given, is
recorded in the cell's folder and kept.
"""

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fedsweep.cell.layout import CONFIG_FILE, committed_round
from fedsweep.checkpoint.storage import open_storage
from fedsweep.grid import cell_key, cell_name, differing_settings, legacy_key, name_suffix

_FOLDER = re.compile(r"^(?P<stem>.+)-(?P<key>[0-9a-f]{8})$")
_ROUNDS_IN_STEM = re.compile(r"^(?P<head>.+?-c\d+)-r\d+(?P<tail>-s-?\d+(?:-.*)?)$")


@dataclass(frozen=True)
class Folder:
    """A cell folder found beside the planned ones, as its `cell.json` records it."""

    name: str
    dir: str
    key: str
    cell: str
    suffix: str | None  # None: recorded before names had suffixes
    config: dict[str, Any]


def base_of(folder_name: str) -> str | None:
    """A folder's stem without its key and without `-rN` (`fedavg-c10-s0`), or None if it is not
    named like a cell folder."""
    match = _FOLDER.match(folder_name)
    if match is None:
        return None
    stem = match["stem"]
    inner = _ROUNDS_IN_STEM.match(stem)
    return f"{inner['head']}{inner['tail']}" if inner else stem


def read_folders(location: str, bases: set[str], normalise: Callable[[dict], dict]) -> list[Folder]:
    """The readable cell folders under `location` whose base is one of `bases`, by name."""
    storage = open_storage(location)
    found = []
    for name in storage.list(""):
        if base_of(name) not in bases:
            continue
        try:
            record = json.loads(storage.read(f"{name}/{CONFIG_FILE}"))
        except (OSError, ValueError):
            continue  # not a cell folder, or one being written: nothing to adopt or to avoid
        if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
            continue
        found.append(
            Folder(
                name=name,
                dir=f"{location.rstrip('/')}/{name}",
                key=str(record.get("key", "")),
                cell=str(record.get("name", "")),
                suffix=record.get("suffix"),
                config=normalise(record["config"]),
            )
        )
    return found


def same_cell(config: Mapping[str, Any], cell: Mapping[str, Any]) -> bool:
    """Whether a recorded (normalised) config is the planned cell's, keyed as the cell is now."""
    if cell["rounds_in_key"]:
        return legacy_key(config) == cell["key"]
    return cell_key(config) == cell["key"]


def place(cells: list[dict[str, Any]], normalise: Callable[[dict], dict]) -> list[Folder]:
    """Give each planned cell its folder and key (its own, or an earlier folder of the same cell),
    and the rounds committed there; returns the folders read beside them (for `assign_names`)."""
    folders: list[Folder] = []
    by_location: dict[str, list[dict[str, Any]]] = {}
    for cell in cells:
        by_location.setdefault(cell["location"], []).append(cell)
    for location, placed in by_location.items():
        nearby = read_folders(location, {c["base"] for c in placed}, normalise)
        folders += nearby
        names = {f.name: f for f in nearby}
        for cell in placed:
            own = f"{cell['stem']}-{cell['key'][:8]}"
            earlier = [f for f in nearby if f.name != own and same_cell(f.config, cell)]
            if own not in names and earlier:
                chosen = _choose(earlier, int(cell["config"]["rounds"]))
                cell.update(dir=chosen.dir, key=chosen.key, folder=chosen)
            else:
                cell.update(dir=f"{location.rstrip('/')}/{own}", folder=names.get(own))
            cell["committed"] = committed_round(cell["dir"]) if cell["folder"] is not None else 0
    return folders


def _choose(folders: list[Folder], rounds: int) -> Folder:
    """Of one cell's earlier folders: the most rounds committed not beyond `rounds`, else the fewest."""
    done = {f.name: committed_round(f.dir) for f in folders}
    within = [f for f in folders if done[f.name] <= rounds]
    if within:
        return max(within, key=lambda f: (done[f.name], f.name))
    return min(folders, key=lambda f: (done[f.name], f.name))


def assign_names(cells: Iterable[dict[str, Any]], folders: Iterable[Folder]) -> None:
    """Set each planned cell's `name` and `suffix` (module docstring): the cells in command order,
    after the folders already there (in name order), each holding its name."""
    holders: dict[str, list[tuple[str, dict[str, Any], str]]] = {}  # base -> (key, config, suffix)

    def hold(base: str, key: str, config: dict[str, Any], suffix: str | None) -> str:
        same = [h for h in holders.setdefault(base, []) if h[0] == key]
        if same and suffix is None:  # the same cell again (a later job of the command)
            return same[0][2]
        others = [
            h for h in holders.setdefault(base, []) if h[0] != key and differing_settings(config, [h[1]])
        ]
        if suffix is None:  # a plain name unless a different cell holds it already
            clash = [h for h in others if not h[2]]
            suffix = (
                name_suffix(config, differing_settings(config, [h[1] for h in clash]), key) if clash else ""
            )
            if suffix and any(h[2] == suffix for h in others):
                suffix = f"k{key[:6]}"
        if not any(h[0] == key for h in holders[base]):
            holders[base].append((key, config, suffix))
        return suffix

    recorded: dict[str, str] = {}
    for folder in sorted({f.dir: f for f in folders}.values(), key=lambda f: (f.name, f.dir)):
        base = base_of(folder.name)
        if base is not None:
            recorded[folder.dir] = hold(base, folder.key, folder.config, folder.suffix)
    for cell in cells:
        known = recorded.get(cell["dir"])
        suffix = known if known is not None else hold(cell["base"], cell["key"], cell["config"], None)
        stop = max(int(cell["config"]["rounds"]), int(cell.get("committed", 0)))
        name = cell_name(rounds=stop, **cell["naming"])
        cell.update(name=f"{name}-{suffix}" if suffix else name, suffix=suffix)
