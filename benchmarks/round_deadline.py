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

The bound: with a deadline, every round (training, aggregation and evaluation: `round_seconds`)
ends within the deadline + 5 s, whatever the cut did to the worker processes; the script says
whether it held, and the most clients a round kept and lost.

    python benchmarks/round_deadline.py                     # 5 rounds, 10 clients, p=0.3, 2 s, 6 s
    python benchmarks/round_deadline.py --rounds 1 --clients 4 --out /tmp/deadline.json
    python benchmarks/round_deadline.py --only deadline     # the deadline side alone
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
                "local_epochs=1",  # one epoch, a task per client epoch: 30 % of tasks hang
                "runner.granularity=epoch",
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
            "max_eval_s": max(series("eval_seconds")),
            "final_accuracy": series("accuracy")[-1],
            "failed_timeout": sum(series("failed_timeout")),
            "failed_deadline": sum(series("failed_deadline")),
            "clients_ok": series("clients_ok"),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--p", type=float, default=0.3, help="fraction of client-epoch attempts that hang")
    parser.add_argument("--task-timeout", type=float, default=2.0)
    parser.add_argument("--deadline", type=float, default=6.0, help="aggregation.round_timeout_s of side (b)")
    parser.add_argument("--only", choices=("deadline",), help="run the deadline side only")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sides = {
        "no deadline": [],
        f"deadline {args.deadline:g} s": [f"aggregation.round_timeout_s={args.deadline}"],
    }
    if args.only:
        sides.pop("no deadline")
    runs = {}
    for side, extra in sides.items():
        runs[side] = run = run_side(args, extra)
        print(
            f"{side:14s} round mean {run['mean_round_s']:6.2f} s  max {run['max_round_s']:6.2f} s  "
            f"(training max {run['max_train_s']:6.2f} s, evaluation max {run['max_eval_s']:5.2f} s)  "
            f"accuracy {run['final_accuracy']:.4f}  clients lost: timeout {run['failed_timeout']:.0f}, "
            f"deadline {run['failed_deadline']:.0f}; kept per round {min(run['clients_ok']):.0f} to "
            f"{max(run['clients_ok']):.0f}  (wall {run['wall_s']:.1f} s, load {run['load']:.1f})",
            flush=True,
        )
    with_deadline = runs[f"deadline {args.deadline:g} s"]
    bound = args.deadline + 5.0
    held = with_deadline["max_round_s"] <= bound
    print(
        f"every round within the deadline + 5 s ({bound:g} s): {'yes' if held else 'NO'} "
        f"(rounds {', '.join(f'{r:.1f}' for r in with_deadline['round_s'])} s)"
    )
    if args.only:
        return
    without = runs["no deadline"]
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
