"""Per-round time and memory against the total number of clients (same clients per round).

    python benchmarks/scale_clients.py                      # 100 vs 10,000 clients, 10 per round
    python benchmarks/scale_clients.py --clients 100 1000 10000 --rounds 10

Each point runs the real sweep command (Synthetic(1,1) capped at 50 samples per device, logistic
regression, 10 clients per round) in a fresh folder and reads from MLflow the mean `round_seconds`
(rounds 2.. : round 1 warms up) with its parts `train_seconds` (the round's client epochs) and
`eval_seconds` (the whole test split, which grows with the devices), and the largest `rss_mb`. A
runner whose cost grows with the number of clients it is *not* training (per-client models, loaders
or state) shows up as round time or RSS growing with the total; here only the data (50 samples × 60
features per client) should grow.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def point(num_clients: int, rounds: int, tmp: Path) -> dict[str, float]:
    cwd = tmp / f"c{num_clients}"
    cwd.mkdir()
    args = [
        sys.executable,
        str(REPO / "flows" / "sweep.py"),
        f"sweep_name=scale{num_clients}",
        f"rounds={rounds}",
        f"num_clients={num_clients}",
        "clients_per_round=10",
        "dataset=synthetic",
        "dataset.max_samples_per_device=50",
        "model=logreg",
        "runner.progress=false",
    ]
    tick = time.monotonic()
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - tick
    if proc.returncode != 0:
        sys.exit(f"sweep failed for {num_clients} clients:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(f"scale{num_clients}")
    (run,) = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("fedsweep.cell_key")]

    def series(key: str) -> list[float]:
        return [
            m.value for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
        ]

    mean = {
        key: statistics.mean(series(key)[1:]) for key in ("round_seconds", "train_seconds", "eval_seconds")
    }
    return {
        "clients": num_clients,
        "round_s": mean["round_seconds"],
        "train_s": mean["train_seconds"],
        "eval_s": mean["eval_seconds"],
        "rss_mb": max(series("rss_mb")),
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [point(n, args.rounds, Path(tmp)) for n in args.clients]
    base = rows[0]
    print(
        f"{'clients':>8} {'round s':>9} {'x first':>8} {'train s':>9} {'x first':>8} {'eval s':>8} "
        f"{'max RSS MB':>11} {'wall s':>8}"
    )
    for row in rows:
        print(
            f"{row['clients']:>8} {row['round_s']:>9.3f} {row['round_s'] / base['round_s']:>8.2f} "
            f"{row['train_s']:>9.3f} {row['train_s'] / base['train_s']:>8.2f} {row['eval_s']:>8.3f} "
            f"{row['rss_mb']:>11.0f} {row['wall_s']:>8.1f}"
        )


if __name__ == "__main__":
    main()
