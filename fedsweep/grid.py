"""Grid planning: an experiment's `grid` becomes cells, each one FL experiment.

A grid maps an axis to its values. Two forms:

    grid:
      strategy: [fedavg, fedprox]          # key -> values: one override `key=value` per point
      num_clients: [10, 50]
      method:                              # label -> overrides: several keys move together
        fedavg_drop: {strategy: fedavg, aggregation.stragglers: drop}
        fedprox_mu1: {strategy: fedprox, strategy.mu: 1.0}

Cells are the cartesian product of the axes, in the order written. A key given on the command line
wins over the grid: its axis is dropped, so `+experiment=quickstart strategy=fedavg` runs only
FedAvg cells. A command-line key inside a config group that the grid varies (`strategy.mu=0.1` in a
FedAvg-vs-FedProx grid) does not drop the axis: it is set in the cells whose option has that key
(`scoped_overrides`, `reaches`). This module is plain Python: it builds override strings, and cli/plan.py
composes each cell's config with Hydra.
"""

import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fedsweep.config.schema import OPTIONAL_GROUPS, PLUGIN_GROUPS, semantic_view

_SHORT = {"num_clients": "c", "rounds": "r", "seed": "s"}


class GridError(ValueError):
    """The experiment's grid is malformed; the message names the axis."""


@dataclass(frozen=True)
class CellPlan:
    """One point of the grid before composition: its overrides and name suffix labels."""

    overrides: tuple[str, ...]
    labels: tuple[str, ...]


def override_key(override: str) -> str:
    """The key an override sets: `+a.b=1` -> `a.b`, `~x` -> `x`."""
    return override.split("=", 1)[0].lstrip("+~")


def deferred(override: str) -> bool:
    """Whether an override sets a key inside a mapping (`strategy.mu=0.1`, `grid.method.a.lr=1`), which
    may exist in some cells only: the grid is read before these are applied (`grid.x=[...]` is not, nor
    Hydra's `hydra.searchpath`, which says where the grid's own options are found)."""
    parts = override_key(override).split(".")
    return len(parts) > 1 and parts[0] != "hydra" and not (parts[0] == "grid" and len(parts) == 2)


def varied_groups(points: Iterable[CellPlan], groups: Iterable[str]) -> dict[str, list[str]]:
    """The config groups the grid's cells choose between, with their options in the grid's order."""
    groups = set(groups)
    varied: dict[str, list[str]] = {}
    for point in points:
        for override in point.overrides:
            key, value = override_key(override), override.split("=", 1)[-1]
            if key in groups and value not in varied.setdefault(key, []):
                varied[key].append(value)
    return varied


def scoped_overrides(command_line: Iterable[str], varied: Mapping[str, list[str]]) -> list[str]:
    """The deferred command-line overrides of a key inside a group the grid varies (`strategy.mu=0.1`)."""
    return [o for o in command_line if deferred(o) and override_key(o).split(".", 1)[0] in varied]


def reaches(config: Mapping[str, Any], key: str) -> bool:
    """Whether the composed `config` holds the dotted `key` (list items by index)."""
    node: Any = config
    for part in key.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def expand_grid(grid: Mapping[str, Any], command_line: Iterable[str]) -> list[CellPlan]:
    """Every point of the grid, skipping axes whose keys the command line sets."""
    fixed = {override_key(o) for o in command_line}
    axes: list[list[tuple[list[str], str]]] = []
    for axis, values in grid.items():
        points = _axis_points(str(axis), values)
        if not any(override_key(o) in fixed for overrides, _ in points for o in overrides):
            axes.append(points)
    plans = []
    for combo in itertools.product(*axes):
        overrides = [o for point_overrides, _ in combo for o in point_overrides]
        labels = [label for _, label in combo if label]
        plans.append(CellPlan(overrides=tuple(overrides), labels=tuple(labels)))
    return plans


def _axis_points(axis: str, values: Any) -> list[tuple[list[str], str]]:
    if isinstance(values, Mapping):
        points = []
        for label, moves in values.items():
            if not isinstance(moves, Mapping) or not moves:
                raise GridError(f"grid.{axis}.{label}: expected a mapping of key: value overrides")
            points.append(([f"{k}={_format(v)}" for k, v in moves.items()], str(label)))
        return points
    if isinstance(values, (list, tuple)) and values:
        # a config group's options name themselves (`-oort`); other values get their key (`-alpha0.1`)
        named = axis in (*PLUGIN_GROUPS, *OPTIONAL_GROUPS)
        label_of = (
            (lambda v: "")
            if axis in (*_SHORT, "strategy")
            else (lambda v: f"{'' if named else _short(axis)}{v}")
        )
        return [([f"{axis}={_format(v)}"], label_of(v)) for v in values]
    raise GridError(f"grid.{axis}: expected a non-empty list of values or a mapping of labelled overrides")


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _format(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def cell_name(*, strategy: str, num_clients: int, rounds: int, seed: int, labels: Iterable[str]) -> str:
    """`fedprox-c100-r50-s0`, then any labels of other axes; `-r50` says where the cell stops."""
    base = f"{strategy}-c{num_clients}-r{rounds}-s{seed}"
    return "-".join([base, *labels])


def cell_stem(
    *, strategy: str, num_clients: int, seed: int, labels: Iterable[str], rounds: int | None = None
) -> str:
    """The name a cell's folder starts with: its name without `-rN` (`fedprox-c100-s0`), since the
    rounds are where a cell stops, not what it is; with `rounds` when they are (`cell_key`)."""
    base = f"{strategy}-c{num_clients}" + (f"-r{rounds}" if rounds is not None else "") + f"-s{seed}"
    return "-".join([base, *labels])


def cell_key(config: Mapping[str, Any], *, with_rounds: bool = False) -> str:
    """A content key: sha256 over the resolved config's semantic keys (the schema says which, see
    `fedsweep.config.schema.semantic_view`: runner.amp, runner.device and runner.torch_threads count
    only off their baselines, so cells keyed before they counted keep their keys), less `rounds`:
    a cell's first rounds do not depend on how many follow, so `rounds=10` after 5 continues the same
    cell. `with_rounds=True` keeps `rounds` in: the key of a cell whose rounds are part of what it is
    (a grid that varies them, a setting interpolated from them), and the key every cell had before
    (`legacy_key`)."""
    view = semantic_view(config)
    if not with_rounds:
        view.pop("rounds", None)
    text = json.dumps(view, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def legacy_key(config: Mapping[str, Any]) -> str:
    """The key cells had when `rounds` was part of every key (their folders `<name>-<key[:8]>`)."""
    return cell_key(config, with_rounds=True)


def differing_settings(config: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> list[str]:
    """The dotted semantic keys (less `rounds`) whose value in `config` differs from any of `others`."""
    mine = flatten(semantic_view(config))
    keys: set[str] = set()
    for other in others:
        theirs = flatten(semantic_view(other))
        keys |= {k for k in mine.keys() | theirs.keys() if mine.get(k, _MISSING) != theirs.get(k, _MISSING)}
    keys.discard("rounds")
    return sorted(keys)


def name_suffix(config: Mapping[str, Any], differing: list[str], key: str) -> str:
    """What tells a cell from others of the same name: the class a differing `_target_` names
    (`tinynet`), the one differing setting (`mu0.1`), else the start of its key (`k3fa9b1`)."""
    targets = [k for k in differing if k.endswith("_target_")]
    flat = flatten(config)
    if targets:
        return "-".join(str(flat.get(k, "none")).rsplit(".", 1)[-1].lower() for k in targets)
    if len(differing) == 1:
        label = f"{_short(differing[0])}{_format(flat.get(differing[0]))}"
        if re.fullmatch(r"[A-Za-z0-9_.+=-]{1,32}", label):
            return label
    return f"k{key[:6]}"


_MISSING = object()


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}` (MLflow params)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat
