"""Round time with hanging clients, without and with a round deadline, side by side.

The workload is the quickstart's (FedAvg, Synthetic(1,1), logistic regression) with a fraction `p`
of client-epoch attempts hanging (`faults=hang`, far longer than any timeout), a task timeout of
`--task-timeout` seconds and the default retries. Side (a) has no deadline: a hung attempt costs its
task timeout, then a retry (an independent draw), so a round lasts as long as its unluckiest client.
Side (b) sets `aggregation.round_timeout_s`: the round aggregates what arrived by then.

Each side is one sweep process in a fresh temporary folder (nothing resumed); the figures are the
per-round `round_seconds` MLflow recorded (start-up left out; its training part `train_seconds` is
what the deadline bounds), the final accuracy, and the clients
each round lost to timeouts and to the deadline. The ratio is (a) / (b): above 1, the deadline
makes rounds shorter.

    python benchmarks/round_deadline.py                     # 5 rounds, 10 clients, p=0.3, 2 s, 5 s
    python benchmarks/round_deadline.py --rounds 1 --clients 4 --out /tmp/deadline.json
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


def run_side(args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    """One sweep in a fresh folder: per-round seconds, accuracy and failures from MLflow."""
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory(prefix="fedsweep-deadline-bench-") as tmp:
        load = os.getloadavg()[0]
        tick = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                str(REPO / "flows" / "sweep.py"),
                "+experiment=quickstart",
                "sweep_name=deadline_bench",
                "strategy=fedavg",
                f"num_clients={args.clients}",
                f"clients_per_round={args.clients}",
                f"rounds={args.rounds}",
                "faults=hang",
                "faults.seconds=600",
                f"faults.p={args.p}",
                f"runner.task_timeout_s={args.task_timeout}",
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
        exp = client.get_experiment_by_name("deadline_bench")
        cell = next(
            r for r in client.search_runs([exp.experiment_id]) if "final_weights_sha256" in r.data.tags
        )

        def series(key: str) -> list[float]:
            return [
                m.value
                for m in sorted(client.get_metric_history(cell.info.run_id, key), key=lambda m: m.step)
            ]

        rounds_s, train_s = series("round_seconds"), series("train_seconds")
        return {
            "wall_s": wall,
            "load": load,
            "round_s": rounds_s,
            "mean_round_s": statistics.mean(rounds_s),
            "max_round_s": max(rounds_s),
            "max_train_s": max(train_s),
            "final_accuracy": series("accuracy")[-1],
            "failed_timeout": sum(series("failed_timeout")),
            "failed_deadline": sum(series("failed_deadline")),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--p", type=float, default=0.3, help="fraction of client-epoch attempts that hang")
    parser.add_argument("--task-timeout", type=float, default=2.0)
    parser.add_argument("--deadline", type=float, default=5.0, help="aggregation.round_timeout_s of side (b)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sides = {
        "no deadline": [],
        f"deadline {args.deadline:g} s": [f"aggregation.round_timeout_s={args.deadline}"],
    }
    runs = {}
    for side, extra in sides.items():
        runs[side] = run = run_side(args, extra)
        print(
            f"{side:14s} round mean {run['mean_round_s']:6.2f} s  max {run['max_round_s']:6.2f} s  "
            f"(training max {run['max_train_s']:6.2f} s)  "
            f"accuracy {run['final_accuracy']:.4f}  clients lost: timeout {run['failed_timeout']:.0f}, "
            f"deadline {run['failed_deadline']:.0f}  (wall {run['wall_s']:.1f} s, load {run['load']:.1f})",
            flush=True,
        )
    without, with_deadline = runs.values()
    result = {
        "rounds": args.rounds,
        "clients": args.clients,
        "p": args.p,
        "task_timeout_s": args.task_timeout,
        "round_timeout_s": args.deadline,
        "runs": runs,
        "mean_ratio": without["mean_round_s"] / with_deadline["mean_round_s"],
        "max_ratio": without["max_round_s"] / with_deadline["max_round_s"],
    }
    print(
        f"no deadline / deadline: mean round {result['mean_ratio']:.2f}x, "
        f"max round {result['max_ratio']:.2f}x"
    )
    print("RESULT " + json.dumps({k: v for k, v in result.items() if k != "runs"}))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
