"""The bench workload on a 2-worker Dask cluster on loopback vs the local process pool, side by side.

(a) `python flows/sweep.py +experiment=bench rounds=R runner/engine=process` (2 worker processes);
(b) the same with `runner/engine=dask runner.engine.address=...`: a `dask scheduler` and two
    single-thread `dask worker` processes started here on 127.0.0.1 before the sweep (their start-up
    is not timed: a cluster is there before a sweep uses it).

Both are timed as whole sweep processes (what a user waits for) and by the sum of the per-round
`round_seconds` MLflow recorded (the steady state, start-up left out); the ratio is (b) / (a), so
above 1 means Dask is slower. Each side runs in a fresh temporary folder (nothing resumed) and both
must end with the same `final_weights_sha256`. With `--repeat k` the runs alternate a b b a ...

    python benchmarks/dask_vs_process.py                    # rounds=10, once each
    python benchmarks/dask_vs_process.py --rounds 3 --repeat 1 --out /tmp/dask.json
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

from sweep_env import sweep_env

REPO = Path(__file__).resolve().parent.parent


def start_cluster(where: Path, workers: int) -> tuple[str, list[subprocess.Popen]]:
    """A scheduler and `workers` single-thread workers on loopback; (address, processes)."""
    file = where / "scheduler.json"
    base = [sys.executable, "-m"]
    log = open(where / "cluster.log", "w")  # noqa: SIM115 - lives as long as the cluster
    procs = [
        subprocess.Popen(
            [
                *base,
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                str(file),
            ],
            cwd=where,
            env=sweep_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    ]
    while not file.exists():
        time.sleep(0.2)
    address = json.loads(file.read_text())["address"]
    procs += [
        subprocess.Popen(
            [
                *base,
                "distributed.cli.dask_worker",
                address,
                "--host",
                "127.0.0.1",
                "--nthreads",
                "1",
                "--no-nanny",
                "--name",
                f"w{i}",
            ],
            cwd=where,
            env=sweep_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for i in range(workers)
    ]
    from distributed import Client

    with Client(address, timeout="60s") as client:
        client.wait_for_workers(workers, timeout=120)
    return address, procs


def run_side(rounds: int, extra: list[str]) -> dict[str, Any]:
    """One sweep in a fresh folder: wall seconds, summed round seconds, the final hash."""
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory(prefix="fedsweep-dask-bench-") as tmp:
        load = os.getloadavg()[0]
        tick = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                str(REPO / "flows" / "sweep.py"),
                "+experiment=bench",
                f"rounds={rounds}",
                "runner.progress=false",
                *extra,
            ],
            cwd=tmp,
            env=sweep_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - tick
        if done.returncode != 0:
            raise RuntimeError(f"sweep failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        client = MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlruns/mlflow.db")
        exp = client.get_experiment_by_name("bench")
        cell = next(
            r for r in client.search_runs([exp.experiment_id]) if "final_weights_sha256" in r.data.tags
        )
        rounds_s = sum(m.value for m in client.get_metric_history(cell.info.run_id, "round_seconds"))
        return {
            "wall_s": wall,
            "rounds_s": rounds_s,
            "load": load,
            "sha256": cell.data.tags["final_weights_sha256"],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fedsweep-dask-cluster-") as where:
        address, procs = start_cluster(Path(where), args.workers)
        sides = {
            "process": [f"runner.max_parallel_clients={args.workers}"],
            "dask": ["runner/engine=dask", f"runner.engine.address={address}"],
        }
        order = [("process", "dask") if i % 2 == 0 else ("dask", "process") for i in range(args.repeat)]
        runs: dict[str, list[dict[str, Any]]] = {"process": [], "dask": []}
        try:
            for pair in order:
                for side in pair:
                    runs[side].append(run_side(args.rounds, sides[side]))
                    print(
                        f"{side:8s} wall {runs[side][-1]['wall_s']:7.1f} s  "
                        f"rounds {runs[side][-1]['rounds_s']:7.1f} s"
                        f"  (load {runs[side][-1]['load']:.1f})",
                        flush=True,
                    )
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
    median = {s: {k: statistics.median(r[k] for r in runs[s]) for k in ("wall_s", "rounds_s")} for s in runs}
    hashes = {r["sha256"] for side in runs.values() for r in side}
    result = {
        "rounds": args.rounds,
        "workers": args.workers,
        "runs": runs,
        "median": median,
        "wall_ratio": median["dask"]["wall_s"] / median["process"]["wall_s"],
        "rounds_ratio": median["dask"]["rounds_s"] / median["process"]["rounds_s"],
        "same_hash": len(hashes) == 1,
    }
    print(
        f"dask / process: wall {result['wall_ratio']:.2f}x, rounds {result['rounds_ratio']:.2f}x, "
        f"same final weights: {result['same_hash']}"
    )
    print("RESULT " + json.dumps({k: v for k, v in result.items() if k != "runs"}))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
