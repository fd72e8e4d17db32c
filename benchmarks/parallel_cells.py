"""A 4-cell sweep with `runner.parallel_cells` 1, 2 (and 4) side by side, and what Prefect's server
database (sqlite, or PostgreSQL) does under it.

Each run is `python flows/sweep.py +experiment=bench rounds=3 +grid.seed=[0,1,2,3]
runner.parallel_cells=P` as a whole process in a fresh temporary folder, against a Prefect server
started here with fedsweep's own LocalServer (server/private.py: the same app, settings and services
as the sweep's private server) on a fresh database: a new PREFECT_HOME (sqlite) or a new database
on a throwaway PostgreSQL server (`--database postgres`; tests/flows/postgres.py). The server's
start-up is not timed (it would overlap the sweep's), so that it can be read after the sweep:

- wall: the sweep process, start to exit; the ratio is P = 1's wall over P's (above 1: faster);
- 503: the server's retryable errors (sqlite's "database is locked" answered as HTTP 503), counted
  in its log with PREFECT_SERVER_LOG_RETRYABLE_ERRORS=true;
- lag: how long after a task run ended its final state was in the database (`updated - end_time`
  of each task run, through Prefect's API), median and max: how far the server's record falls behind;
- server CPU: the server process's CPU seconds during the sweep;
- the `final_weights_sha256` of every cell (MLflow), which must be equal across runs.

    python benchmarks/parallel_cells.py                                   # bench, rounds=3, P = 1, 2
    python benchmarks/parallel_cells.py --parallel 1,2,4 --database sqlite,postgres
    python benchmarks/parallel_cells.py --experiment quickstart --grid= --rounds 20 --parallel 1,2,4
    python benchmarks/parallel_cells.py --runner dask       # runner=dask (a LocalCluster per sweep)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "flows")]
DATABASE_URL = "PREFECT_SERVER_DATABASE_CONNECTION_URL"


def prefect_server(where: Path, database_url: str | None) -> Any:
    """A fedsweep LocalServer on a fresh database (sqlite in `where`, or `database_url`), ready."""
    from server.private import LocalServer

    os.environ.update(PREFECT_HOME=str(where / "prefect-home"), PREFECT_SERVER_LOG_RETRYABLE_ERRORS="true")
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.pop(DATABASE_URL, None)
    if database_url:
        os.environ[DATABASE_URL] = database_url
    server = LocalServer(log_path=where / "prefect-server.log")
    server.wait_ready()
    return server


def recording_lag(url: str) -> list[float]:
    """Seconds from each task run's end to its final state's write (Prefect's API)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import TaskRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    lags, offset = [], 0
    with temporary_settings(updates={PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        while True:
            page = client.read_task_runs(sort=TaskRunSort.ID_DESC, limit=200, offset=offset)
            lags += [(r.updated - r.end_time).total_seconds() for r in page if r.end_time and r.updated]
            if len(page) < 200:
                return lags
            offset += 200


def sweep_name(cwd: Path) -> str:
    """The sweep's name (its MLflow experiment): its folder under outputs/."""
    return next(p.name for p in (cwd / "outputs").iterdir() if p.is_dir() and p.name != "multirun")


def cell_hashes(cwd: Path, experiment: str) -> dict[str, str]:
    """Each cell's final_weights_sha256, by run name."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{cwd}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return {
        r.info.run_name: r.data.tags["final_weights_sha256"]
        for r in runs
        if "final_weights_sha256" in r.data.tags
    }


def run_one(args: argparse.Namespace, parallel: int, postgres: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fedsweep-cells-bench-") as tmp:
        where = Path(tmp)
        url = postgres.create_database(f"run{time.monotonic_ns()}") if postgres else None
        server = prefect_server(where, url)
        try:
            cpu = psutil.Process(server.process.pid)
            cpu_before, load = sum(cpu.cpu_times()[:2]), os.getloadavg()[0]
            env = {k: v for k, v in os.environ.items() if k != DATABASE_URL}
            path = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
            env.update(CI="true", PREFECT_API_URL=server.url, PYTHONPATH=path)
            command = [
                sys.executable,
                str(REPO / "flows" / "sweep.py"),
                f"+experiment={args.experiment}",
                f"rounds={args.rounds}",
                f"runner={args.runner}",
                f"runner.parallel_cells={parallel}",
                "runner.progress=false",
                *([args.grid] if args.grid else []),
                *args.set,
            ]
            tick = time.perf_counter()
            done = subprocess.run(command, cwd=where, env=env, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - tick
            if done.returncode != 0:
                raise RuntimeError(f"sweep failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
            server.wait_idle(60)
            server_cpu = sum(cpu.cpu_times()[:2]) - cpu_before
            lags = recording_lag(server.url)
        finally:
            server.stop()
        errors = (
            (where / "prefect-server.log")
            .read_text(errors="replace")
            .count("Encountered retryable exception")
        )
        hashes = cell_hashes(where, sweep_name(where))
    return {
        "parallel": parallel,
        "wall_s": wall,
        "load": load,
        "errors_503": errors,
        "server_cpu_s": server_cpu,
        "task_runs": len(lags),
        "lag_median_s": statistics.median(lags) if lags else None,
        "lag_max_s": max(lags) if lags else None,
        "hashes": hashes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="bench")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--grid", default="+grid.seed=[0,1,2,3]", help="an override making the cells ('' for none)"
    )
    parser.add_argument("--parallel", default="1,2", help="runner.parallel_cells values, e.g. 1,2,4")
    parser.add_argument("--database", default="sqlite", help="sqlite, postgres or both: sqlite,postgres")
    parser.add_argument("--runner", default="local", choices=["local", "dask"])
    parser.add_argument(
        "--repeat", type=int, default=1, help="k > 1: the order of P alternates, medians reported"
    )
    parser.add_argument("--set", action="append", default=[], help="another override (repeatable)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    values = [int(p) for p in args.parallel.split(",")]
    runs: list[dict[str, Any]] = []
    for database in args.database.split(","):
        postgres = start_postgres() if database == "postgres" else None
        try:
            for i in range(args.repeat):
                for parallel in values if i % 2 == 0 else values[::-1]:
                    run = {"database": database, **run_one(args, parallel, postgres)}
                    runs.append(run)
                    lag = (
                        "-"
                        if run["lag_median_s"] is None
                        else f"{run['lag_median_s']:.2f} / {run['lag_max_s']:.2f}"
                    )
                    print(
                        f"{database:8s} parallel_cells={parallel}  wall {run['wall_s']:6.1f} s  "
                        f"503s {run['errors_503']:3d}"
                        f"  lag median/max {lag} s  server CPU {run['server_cpu_s']:5.1f} s  "
                        f"task runs {run['task_runs']}  cells {len(run['hashes'])}  (load {run['load']:.1f})",
                        flush=True,
                    )
        finally:
            if postgres:
                postgres.stop()
    summary = summarise(runs, values)
    for line in summary["lines"]:
        print(line)
    print("RESULT " + json.dumps({k: v for k, v in summary.items() if k != "lines"}))
    if args.out:
        args.out.write_text(json.dumps({"runs": runs, **summary}, indent=1))


def summarise(runs: list[dict[str, Any]], values: list[int]) -> dict[str, Any]:
    """Median wall per (database, P), each P's speed-up over the first P, and whether hashes agree."""
    walls = {(r["database"], r["parallel"]): [] for r in runs}
    for r in runs:
        walls[(r["database"], r["parallel"])].append(r["wall_s"])
    median = {f"{d}/{p}": statistics.median(w) for (d, p), w in walls.items()}
    speedup = {f"{d}/{p}": median[f"{d}/{values[0]}"] / median[f"{d}/{p}"] for d, p in walls}
    same = len({json.dumps(r["hashes"], sort_keys=True) for r in runs}) == 1
    lines = [
        f"{key}: wall {median[key]:.1f} s, {speedup[key]:.2f}x as fast as parallel_cells={values[0]}"
        for key in median
    ] + [f"same final weights in every run: {same} ({len(runs[0]['hashes'])} cells)"]
    return {
        "median_wall_s": median,
        "speedup": speedup,
        "same_hashes": same,
        "cells": len(runs[0]["hashes"]),
        "lines": lines,
    }


def start_postgres() -> Any:
    from postgres import Postgres, binaries  # tests/flows/postgres.py

    where = binaries()
    if where is None:
        raise SystemExit("PostgreSQL's binaries are absent (apt-get install -y postgresql)")
    return Postgres(where)


if __name__ == "__main__":
    main()
