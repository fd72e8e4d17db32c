"""Cells grouped into methods, and each method's figures over seeds.

A *method* is a cell's configuration minus its seed: the params `semantic_params` keeps (those that
can change results: the cell key's view) less `seed`; group choices (`choice.*` params) are left
out because the groups' contents are params themselves. Two cells of one method and one seed are
the same experiment (run twice, e.g. in two sweeps): the first one read counts, the others are
reported as repeats. A method is labelled by its cells' name without the seed (`fedprox-c10-r5`);
methods that would share a label get the params that tell them apart appended.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fedsweep.compare.stats import Interval, interval, rounds_to_target
from fedsweep.config.schema import semantic_params


@dataclass(frozen=True)
class Run:
    """What a finished cell recorded: its name, params (as strings), accuracy per round and, for
    figures of other metrics (fedsweep/compare/claims.py), any other metric's history."""

    name: str
    params: Mapping[str, str]
    accuracy: Sequence[tuple[int, float]]  # (round, accuracy)
    metrics: Mapping[str, Sequence[tuple[int, float]]] = field(default_factory=dict)  # name -> (round, value)


@dataclass(frozen=True)
class Cell:
    """A run placed in its method."""

    method: str
    seed: int
    accuracy: tuple[tuple[int, float], ...]

    @property
    def final(self) -> float:
        return self.accuracy[-1][1]

    @property
    def best(self) -> float:
        return max(value for _, value in self.accuracy)


def method_params(params: Mapping[str, str]) -> dict[str, str]:
    """The params that identify a cell's method (`rounds` aside: see `identity`)."""
    skip = ("seed", "rounds")
    return {k: v for k, v in semantic_params(params).items() if k not in skip and not k.startswith("choice.")}


def method_identity(run: Run) -> tuple[tuple[str, str], ...]:
    """A run's method and length: its method params and the rounds it has (its last step). A cell's
    run has no `rounds` param when the cell can be extended (the run grows), and an older run's
    `rounds` param says where it stopped first, not where it is."""
    return tuple(
        sorted({**method_params(run.params), "rounds": str(max(s for s, _ in run.accuracy))}.items())
    )


def group_cells(runs: Iterable[Run]) -> tuple[list[Cell], int]:
    """(cells, repeats): each run as a cell of its method, in the order read, less the repeats."""
    runs = [r for r in runs if r.accuracy]
    placed = assign(runs)
    cells = [Cell(method, seed, tuple(sorted(run.accuracy))) for method, seed, run in placed]
    return cells, len(runs) - len(cells)


def assign(runs: Iterable[Run]) -> list[tuple[str, int, Run]]:
    """(method, seed, run) for each run with an accuracy history, in the order read, less the
    repeats (the first run of a method and seed counts)."""
    runs = [r for r in runs if r.accuracy]
    identities = [method_identity(r) for r in runs]
    labels = _labels(runs, identities)
    placed, seen = [], set()
    for run, identity in zip(runs, identities, strict=True):
        seed = int(run.params["seed"])
        if (identity, seed) not in seen:
            seen.add((identity, seed))
            placed.append((labels[identity], seed, run))
    return placed


def _labels(runs: list[Run], identities: list[tuple]) -> dict[tuple, str]:
    label: dict[tuple, str] = {}
    for run, identity in zip(runs, identities, strict=True):
        seed = f"s{run.params['seed']}"
        label.setdefault(identity, "-".join(p for p in run.name.split("-") if p != seed))
    for name in {v for v in label.values() if list(label.values()).count(v) > 1}:
        same = [i for i in label if label[i] == name]
        keys = sorted({k for i in same for k in dict(i)})
        differ = [k for k in keys if len({dict(i).get(k) for i in same}) > 1]
        for i in same:
            label[i] = name + " " + " ".join(f"{k}={dict(i).get(k, '-')}" for k in differ)
    return label


def methods(cells: Sequence[Cell]) -> list[str]:
    """The methods, in the order their first cell was read."""
    return list(dict.fromkeys(c.method for c in cells))


@dataclass(frozen=True)
class MethodFigures:
    """One method over its seeds; `rounds` covers the `reached` cells that reached the target."""

    method: str
    final: Interval
    best: Interval
    rounds: Interval
    reached: int


def method_figures(cells: Sequence[Cell], target: float) -> list[MethodFigures]:
    """Final accuracy, best accuracy and rounds-to-target of every method (t-intervals over seeds)."""
    out = []
    for method in methods(cells):
        mine = [c for c in cells if c.method == method]
        hits = [r for c in mine if (r := rounds_to_target(c.accuracy, target)) is not None]
        out.append(
            MethodFigures(
                method,
                interval([c.final for c in mine]),
                interval([c.best for c in mine]),
                interval([float(r) for r in hits]),
                len(hits),
            )
        )
    return out


@dataclass(frozen=True)
class Paired:
    """Final accuracy of `method` minus the baseline's, seed by seed; `unpaired` seeds had one side."""

    method: str
    baseline: str
    difference: Interval
    unpaired: int


def paired_differences(cells: Sequence[Cell], baseline: str) -> list[Paired]:
    """Every other method against `baseline`, over the seeds both have run.

    Cells with the same seed share their data, partition and client selection, so the per-seed
    difference removes that variation from the comparison (a paired t-interval).
    """
    base = {c.seed: c.final for c in cells if c.method == baseline}
    out = []
    for method in methods(cells):
        if method == baseline:
            continue
        mine = {c.seed: c.final for c in cells if c.method == method}
        common = [s for s in mine if s in base]
        unpaired = len(mine.keys() ^ base.keys())
        out.append(Paired(method, baseline, interval([mine[s] - base[s] for s in common]), unpaired))
    return out
