"""Is memory flat? The per-round `rss_mb` curve of every cell of a finished sweep, pass or fail.

The seeds' simulator crashed around round 70 of 3 methods × 100 clients × 100 rounds because its
memory grew every round (DataLoader workers, loaders kept alive). fedsweep logs the RSS of the
process and its children every round (`rss_mb`, step = round); this script reads those curves back
from MLflow and checks that they are flat once the process is warm:

    growth = rss(last round) - rss(round 10)  <=  50 MB        (--from-round, --max-growth-mb)

Round 10 rather than round 1 because the first rounds legitimately grow (allocator pools, oneDNN
primitive caches, imports done lazily); what kills long sweeps is growth that never stops.

    python flows/sweep.py +experiment=scale100            # the crash workload (long)
    python benchmarks/memory_curve.py mlruns/mlflow.db    # then, per cell: r10, last, growth, max

Exit status 0 only if every cell long enough to judge passed (1 otherwise, 2 for a missing file or
experiment), so CI can run it.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

Curve = list[tuple[int, float]]  # (round, rss_mb), sorted by round


@dataclass(frozen=True, kw_only=True)
class CurveSummary:
    """A cell's RSS curve reduced to what decides pass/fail."""

    rounds: int
    at_start: float  # rss at `from_round` (or the first logged round at or after it)
    at_end: float  # rss at the last logged round
    growth: float  # at_end - at_start
    peak: float
    passed: bool | None  # None: the curve never reached `from_round`, nothing to judge


def summarise(curve: Curve, *, from_round: int = 10, max_growth_mb: float = 50.0) -> CurveSummary:
    """Pure maths of the verdict; `curve` need not be sorted and may repeat a round (last one wins)."""
    if not curve:
        raise ValueError("summarise: empty curve")
    by_round = dict(sorted(curve))
    rounds = sorted(by_round)
    last = rounds[-1]
    start_round = next((r for r in rounds if r >= from_round), None)
    peak = max(by_round.values())
    if start_round is None or start_round == last:
        # Too short to say anything about steady state: report, don't judge.
        first = by_round[rounds[0]]
        return CurveSummary(
            rounds=len(rounds),
            at_start=first,
            at_end=by_round[last],
            growth=by_round[last] - first,
            peak=peak,
            passed=None,
        )
    growth = by_round[last] - by_round[start_round]
    return CurveSummary(
        rounds=len(rounds),
        at_start=by_round[start_round],
        at_end=by_round[last],
        growth=growth,
        peak=peak,
        passed=growth <= max_growth_mb,
    )


def read_curves(db: Path, *, experiment: str | None = None, metric: str = "rss_mb") -> dict[str, Curve]:
    """`run name -> curve` for every run in the sqlite MLflow store that logged `metric`, in run order."""
    if not db.is_file():
        raise FileNotFoundError(f"no MLflow database at {db}")
    from mlflow import MlflowClient  # seconds to import; keep --help fast

    client = MlflowClient(tracking_uri=f"sqlite:///{db.absolute()}")
    if experiment is None:
        experiments = client.search_experiments()
    else:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise LookupError(f"no experiment named {experiment!r} in {db}")
        experiments = [found]
    found: list[tuple[int, str, Curve]] = []
    for exp in experiments:
        for run in client.search_runs([exp.experiment_id], max_results=10_000):
            history = client.get_metric_history(run.info.run_id, metric)
            if history:
                name = run.info.run_name or run.info.run_id
                if len(experiments) > 1:
                    name = f"{exp.name}/{name}"
                first_logged = min(m.timestamp for m in history)
                found.append((first_logged, name, [(int(m.step), float(m.value)) for m in history]))
    # In the order the cells ran: a sweep runs them one after another in one process.
    return {name: curve for _, name, curve in sorted(found)}


def report(curves: dict[str, Curve], *, from_round: int, max_growth_mb: float) -> tuple[str, str]:
    """(table text, overall verdict): PASS if every judged cell passed, N/A if none could be judged."""
    head = (
        f"{'cell':<34} {'rounds':>6} {'rss@r' + str(from_round):>10} "
        f"{'rss@last':>10} {'growth':>9} {'max':>10}  verdict"
    )
    lines, judged, ok = [head], 0, True
    for name, curve in curves.items():
        s = summarise(curve, from_round=from_round, max_growth_mb=max_growth_mb)
        if s.passed is None:
            verdict = f"n/a (fewer than {from_round} rounds; growth from the first round)"
        else:
            judged += 1
            ok &= s.passed
            verdict = "PASS" if s.passed else f"FAIL (> {max_growth_mb:g} MB)"
        lines.append(
            f"{name:<34} {s.rounds:>6} {s.at_start:>10.1f} {s.at_end:>10.1f} {s.growth:>+9.1f} "
            f"{s.peak:>10.1f}  {verdict}"
        )
    if len(curves) > 1:
        lines.append(_across(list(curves.values()), from_round))
    return "\n".join(lines), ("PASS" if ok else "FAIL") if judged else "N/A"


def _across(curves: list[Curve], from_round: int) -> str:
    """Drift over the whole sweep (not judged): what a long sequence of cells would accumulate."""
    first, last = dict(curves[0]), dict(curves[-1])
    start = first.get(from_round, first[min(first)])
    end = last[max(last)]
    rounds = sum(len(c) for c in curves)
    return (
        f"{'(across the sweep, in run order)':<34} {rounds:>6} {start:>10.1f} {end:>10.1f} "
        f"{end - start:>+9.1f} {max(v for c in curves for _, v in c):>10.1f}  "
        f"{(end - start) / rounds * 100:+.1f} MB per 100 rounds (informational)"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Per-cell rss_mb curve of a finished sweep: flat or not.")
    p.add_argument("db", nargs="?", default="mlruns/mlflow.db", type=Path, help="MLflow sqlite file")
    p.add_argument("--experiment", help="only this sweep (MLflow experiment name)")
    p.add_argument("--from-round", type=int, default=10)
    p.add_argument("--max-growth-mb", type=float, default=50.0)
    args = p.parse_args(argv)
    try:
        curves = read_curves(args.db, experiment=args.experiment)
    except (FileNotFoundError, LookupError) as err:
        print(f"memory_curve: {err}", file=sys.stderr)
        return 2
    if not curves:
        print(f"memory_curve: no run in {args.db} logged rss_mb", file=sys.stderr)
        return 1
    table, verdict = report(curves, from_round=args.from_round, max_growth_mb=args.max_growth_mb)
    print(table)
    print(f"\nmemory flat (growth <= {args.max_growth_mb:g} MB from round {args.from_round}): {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
