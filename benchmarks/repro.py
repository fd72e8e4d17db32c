"""Reproductions of published results: run one (full size, or the reduced version the test suite
runs), check its claims over seeds, and write a Markdown report of expected against measured.

    python benchmarks/repro.py --list
    python benchmarks/repro.py fedprox_stragglers                   # full size (hours for some)
    python benchmarks/repro.py fedprox_stragglers --reduced         # the test suite's version
    python benchmarks/repro.py qffl --report benchmarks/results/qffl.md -- runner.progress=false
    python benchmarks/repro.py qffl --no-run                        # judge what MLflow already holds

A reproduction (benchmarks/repro_claims.py) is a preset, `conf/experiment/repro/NAME.yaml` (its
source, settings, expected figures and differences in its comment), the overrides of its reduced
version, and its claims (fedsweep/compare/claims.py). The sweep runs as `python flows/sweep.py
+experiment=repro/NAME` in `--workdir` (default: here), so the same command again resumes it; the
reduced version is the sweep `<sweep name>-reduced`; overrides after `--` go to the sweep. The cells
of the sweep's latest run (outputs/<sweep>/summary.csv) are read back from MLflow (`mlruns/mlflow.db`
of the working directory) as cli/compare.py reads them, and each claim is judged from its paired
95 % t-interval over seeds: holds, does not hold, inconclusive, or not run (a method the reduced grid
leaves out). The report gives the commit, the date, the machine and its load average beside the
figures; `RESULT {...}` ends the output.
"""

import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's fedsweep, as the sweep's

from repro_claims import REPRODUCTIONS, Reproduction
from sweep_env import REPO, sweep_env

from fedsweep.compare.claims import Verdict, bound, by_label, check
from fedsweep.compare.methods import Run, group_cells, method_figures, paired_differences
from fedsweep.compare.stats import Interval
from fedsweep.compare.tables import tables, to_markdown

CELL_KEY, SUPERSEDED_BY = "fedsweep.cell_key", "fedsweep.superseded_by"  # tasks/tags.py


# How the reduced versions run, to fit the suite's minutes: a round's clients trained together (one
# job, not one per client: the figures agree with one by one to ~1e-6, docs/gpu.md) and three cells
# at once. A full-size run may pass the same after `--`.
REDUCED_RUNNER = ("runner.batch_clients=10", "runner.parallel_cells=3")


def sweep_command(repro: Reproduction, *, reduced: bool, extra: list[str]) -> list[str]:
    """The sweep's command line: the preset, the reduced overrides when asked, then `extra`."""
    overrides = (
        [*repro.reduced, *REDUCED_RUNNER, f"sweep_name={repro.sweep_name(reduced=True)}"] if reduced else []
    )
    sweep = str(REPO / "flows" / "sweep.py")
    return [sys.executable, sweep, f"+experiment=repro/{repro.name}", *overrides, *extra]


def latest_keys(workdir: Path, sweep: str) -> set[str] | None:
    """The cell keys of the sweep's latest run (its rows of outputs/<sweep>/summary.csv): the cells
    of the command just run, not those of earlier runs of the sweep with other overrides."""
    path = workdir / "outputs" / sweep / "summary.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    last = max((r["run"] for r in rows), default=None)
    return {r["key"] for r in rows if r["run"] == last}


def read_runs(uri: str, experiment: str, metrics: set[str], keys: set[str] | None = None) -> list[Run]:
    """The finished, not superseded cells of `experiment` (those of `keys` only, when given), with
    the histories of `metrics` too."""
    from mlflow import MlflowClient

    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise SystemExit(
            f"error: no MLflow database at {uri.removeprefix('sqlite:///')}: run it first (without --no-run)"
        )
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"error: no experiment {experiment} in {uri}: run it first (without --no-run)")
    runs, token = [], None
    while True:
        page = client.search_runs(
            [found.experiment_id],
            filter_string="attributes.status = 'FINISHED'",
            order_by=["attributes.start_time ASC"],
            max_results=1000,
            page_token=token,
        )
        for run in page:
            tags = run.data.tags
            if (
                CELL_KEY not in tags
                or SUPERSEDED_BY in tags
                or (keys is not None and tags[CELL_KEY] not in keys)
            ):
                continue
            history = {
                name: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, name)]
                for name in {"accuracy", *metrics}
            }
            runs.append(Run(run.info.run_name, run.data.params, history.pop("accuracy"), history))
        token = page.token
        if not token:
            return runs


def show(value: Interval, digits: int = 4) -> str:
    if value.n == 0:
        return "-"
    half = "n/a" if value.half is None else f"{value.half:.{digits}f}"
    return f"{value.mean:.{digits}f} ± {half}"


def claim_rows(repro: Reproduction, verdicts: list[Verdict]) -> list[list[str]]:
    """One row per claim: claim, relation checked, expected (source), measured, status, reduced too."""
    rows = []
    for checked, v in zip(repro.checks, verdicts, strict=True):
        c = v.claim
        missing = f", {v.missing} without a value" if v.missing else ""
        centre, low, high = v.shown()
        if c.kind == "ratio":
            span = "n/a" if low is None else f"{low:.2f}–{high:.2f}×"
            paired = f"paired ratio {centre:.2f}× (geometric mean; 95 % interval {span})"
        else:
            paired = f"paired difference {show(v.value)}"
        figures = f"{c.a} {show(v.a)}, {c.b} {show(v.b)} ({c.figure.describe()})"
        measured = f"{figures}; {paired} over {v.value.n} seeds{missing}"
        reduced = "yes" if checked.reduced else "full size only"
        rows.append([c.text, f"`{bound(c)}`", c.expected, measured, f"**{v.status}**", reduced])
    return rows


def machine() -> str:
    info = Path("/proc/cpuinfo")
    names = [
        ln.split(":", 1)[1].strip() for ln in info.read_text().splitlines() if ln.startswith("model name")
    ]
    cpu = names[0] if names else platform.processor() or "unknown CPU"
    return f"{os.cpu_count()} × {cpu}, Python {platform.python_version()}"


def commit() -> str:
    """This checkout's commit, marked when it has uncommitted changes; in a tree exported with `git
    archive` (no .git), the commit its `COMMIT` file names."""
    git = ["git", "-C", str(REPO)]
    done = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if done.returncode:
        exported = REPO / "COMMIT"
        return f"{exported.read_text().strip()} (exported tree)" if exported.exists() else "unknown"
    dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + (" (uncommitted changes)" if dirty else "")


def report(repro: Reproduction, verdicts: list[Verdict], runs: list[Run], context: dict[str, str]) -> str:
    cells, _ = group_cells(runs)
    figures = method_figures(cells, repro.target)
    baseline = next((f.method for f in figures if f.method.endswith(f"-{repro.baseline}")), figures[0].method)
    head = [
        f"# {repro.title}{' (reduced)' if context['size'] == 'reduced' else ''}",
        "",
        repro.source,
        "",
        *(f"- {k}: {v}" for k, v in context.items()),
        "",
        "## Claims",
        "",
        "| claim | checked | expected (source) | measured (mean ± 95 % t-interval over seeds) | status "
        "| reduced version checks it |",
        "|---|---|---|---|---|---|",
        *("| " + " | ".join(row) + " |" for row in claim_rows(repro, verdicts)),
        "",
        "## Per method (the tables of cli/compare.py)",
        "",
    ]
    paired = paired_differences(cells, baseline)
    return "\n".join(head) + to_markdown(tables(figures, paired, repro.target))


def arguments() -> argparse.Namespace:
    parse = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], usage="%(prog)s NAME [options] [-- sweep overrides]"
    )
    parse.add_argument("name", nargs="?", choices=sorted(REPRODUCTIONS), help="the reproduction")
    parse.add_argument("--list", action="store_true", help="list the reproductions and exit")
    parse.add_argument("--reduced", action="store_true", help="the reduced version (the test suite's)")
    parse.add_argument(
        "--workdir", type=Path, default=Path.cwd(), help="where the sweep runs (default: here)"
    )
    parse.add_argument("--report", type=Path, help="write the Markdown report here")
    parse.add_argument("--no-run", action="store_true", help="only judge what MLflow holds")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parse.parse_args(argv[:cut])
    args.overrides = argv[cut + 1 :]
    return args


def main() -> None:
    args = arguments()
    if args.list or not args.name:
        for name, r in sorted(REPRODUCTIONS.items()):
            print(f"{name:20s} {r.title}")
        return
    repro = REPRODUCTIONS[args.name]
    command = sweep_command(repro, reduced=args.reduced, extra=args.overrides)
    started, load, at = time.monotonic(), os.getloadavg(), commit()
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if not args.no_run:
        args.workdir.mkdir(parents=True, exist_ok=True)
        print("$ python", " ".join(command[1:]), flush=True)
        done = subprocess.run(command, cwd=args.workdir, env=sweep_env())
        if done.returncode:
            raise SystemExit(f"error: the sweep exited with {done.returncode}")
    wall = time.monotonic() - started
    metrics = {m for c in repro.claims for m in (c.figure.metric, c.figure.clock) if m != "round"}
    uri = f"sqlite:///{(args.workdir / 'mlruns' / 'mlflow.db').resolve()}"
    sweep = repro.sweep_name(reduced=args.reduced)
    runs = read_runs(uri, sweep, metrics, latest_keys(args.workdir, sweep))
    verdicts = [check(claim, by_label(runs)) for claim in repro.claims]
    context = {
        "size": "reduced" if args.reduced else "full",
        "command": f"`python benchmarks/repro.py {repro.name}{' --reduced' if args.reduced else ''}`, i.e. "
        f"`python {Path(command[1]).relative_to(REPO)} {' '.join(command[2:])}`",
        "commit": at,
        "date": when if args.no_run else f"{when} (start)",
        "machine": machine(),
        "load average": f"{load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        "wall time": "not run here (--no-run: figures read from MLflow)" if args.no_run else f"{wall:.0f} s",
    }
    rows = claim_rows(repro, verdicts)
    for row in rows:
        print(f"{row[4].strip('*'):14s} {row[0]}\n{'':15s}{row[3]}")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(report(repro, verdicts, runs, context))
        print(f"report: {args.report}")
    claims = []
    for c, v in zip(repro.checks, verdicts, strict=True):
        centre, low, high = v.shown()
        claims.append(
            {
                "claim": v.claim.text,
                "status": v.status,
                "value": centre,
                "low": low,
                "high": high,
                "n": v.value.n,
                "reduced": c.reduced,
            }
        )
    print("RESULT " + json.dumps({"name": repro.name, "size": context["size"], "claims": claims}), flush=True)


if __name__ == "__main__":
    main()
