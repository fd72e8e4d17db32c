"""Compare the methods of past sweeps from what MLflow recorded.

    python cli/compare.py --experiment quickstart
    python cli/compare.py --experiment noniid noniid-more-seeds --target 0.3 --baseline fedavg-c10-r20
    python cli/compare.py --experiment quickstart --csv compare.csv --markdown compare.md

Reads the finished child runs (one per cell) of each named experiment (a sweep name), leaving out
runs superseded by a start-over (`resume=false`), and prints per method (a cell's configuration
minus its seed) the mean ± 95 % t-interval over seeds of final accuracy, best accuracy and the
rounds it took to reach `--target`, then each method's paired difference of final accuracy
against `--baseline` (the first method read unless named). The figures come from
fedsweep/compare/; this file only reads MLflow and writes. No Prefect: it starts in MLflow's
import time. A mistake (an unknown experiment or baseline, no finished cells, a bad target) is
one `error: ...` line and exit status 2, with nothing written.
"""

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn

import yaml

from fedsweep.compare.methods import Run, group_cells, method_figures, methods, paired_differences
from fedsweep.compare.tables import tables, to_csv, to_markdown, to_text
from tasks.tags import CELL_KEY, SUPERSEDED_BY

USAGE_ERROR = 2  # as flows/sweep.py: every user mistake
TRACKING_CONF = Path(__file__).resolve().parents[1] / "conf" / "tracking" / "mlflow.yaml"
DEFAULT_URI = yaml.safe_load(TRACKING_CONF.read_text())["uri"]  # the sweeps' default store


class CompareError(Exception):
    """A user's mistake, said in one line."""


def read_runs(uri: str, experiments: list[str]) -> list[Run]:
    """The finished, not superseded cell runs of each experiment, experiment by experiment, each in
    the order its cells started."""
    from mlflow import MlflowClient  # noqa: PLC0415 - seconds to import: after the arguments are checked

    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise CompareError(f"--tracking-uri: no MLflow database at {uri.removeprefix('sqlite:///')}")
    client = MlflowClient(tracking_uri=uri)
    runs = []
    for name in experiments:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            known = ", ".join(sorted(e.name for e in client.search_experiments()))
            raise CompareError(f"--experiment: no experiment named {name} in {uri} (there are: {known})")
        cells = [
            Run(
                run.info.run_name,
                run.data.params,
                [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "accuracy")],
            )
            for run in _finished(client, experiment.experiment_id)
            if CELL_KEY in run.data.tags and SUPERSEDED_BY not in run.data.tags
        ]
        if not any(run.accuracy for run in cells):
            raise CompareError(f"--experiment: {name} has no finished cells")
        runs += cells
    return runs


def _finished(client: Any, experiment_id: str) -> list[Any]:
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string="attributes.status = 'FINISHED'",
            order_by=["attributes.start_time ASC"],
            max_results=1000,
            page_token=token,
        )
        runs += page
        token = page.token
        if not token:
            return runs


def compare(args: argparse.Namespace) -> str:
    """The comparison's text; writes the CSV and Markdown files asked for."""
    cells, repeats = group_cells(read_runs(args.tracking_uri, args.experiment))
    names = methods(cells)
    baseline = args.baseline or names[0]
    if baseline not in names:
        raise CompareError(f"--baseline: no method {baseline} (there are: {', '.join(names)})")
    figures = method_figures(cells, args.target)
    paired = paired_differences(cells, baseline)
    parts = tables(figures, paired, args.target)
    for path, text in ((args.csv, to_csv(figures, paired, args.target)), (args.markdown, to_markdown(parts))):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
    head = f"{len(cells)} cells of {len(names)} methods from {', '.join(args.experiment)}"
    head += f" ({repeats} repeated cells ignored: same method and seed)" if repeats else ""
    return head + "\n\n" + to_text(parts)


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parse.add_argument(
        "--experiment",
        nargs="+",
        action="extend",
        required=True,
        metavar="NAME",
        help="sweep names (MLflow experiments) to read",
    )
    parse.add_argument(
        "--tracking-uri", default=DEFAULT_URI, help=f"MLflow tracking URI (default {DEFAULT_URI})"
    )
    parse.add_argument(
        "--target", default="0.8", help="rounds-to-target counts rounds until this accuracy (default 0.8)"
    )
    parse.add_argument("--baseline", help="the method the others are paired against (default: the first)")
    parse.add_argument("--csv", metavar="PATH", help="write the figures as CSV")
    parse.add_argument("--markdown", metavar="PATH", help="write the tables as Markdown")
    return parse


def target(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:  # also refuses nan
        raise CompareError(f"--target must be an accuracy in (0, 1] (got {text})")
    return value


def fail(err: BaseException | str) -> NoReturn:
    print(f"error: {' '.join(str(err).split())}", file=sys.stderr, flush=True)
    sys.exit(USAGE_ERROR)


def cli(argv: list[str] | None = None) -> None:
    parse = parser()
    parse.error = fail  # type: ignore[method-assign] - argparse would print usage on a second line
    args = parse.parse_args(argv)
    try:
        args.target = target(args.target)
        print(compare(args), flush=True)
    except CompareError as err:
        fail(err)


if __name__ == "__main__":
    cli()
