"""Per-round time and memory at 100, 10,000 and 1,000,000 clients, 10 a round: whole sweeps.

    python benchmarks/million_clients.py                        # 100, 10,000, 1,000,000 clients
    python benchmarks/million_clients.py --clients 100 10000 --rounds 4 --selectors uniform

Each point is one real sweep command in a fresh folder (a new process: Prefect, MLflow, checkpoints
on), on a workload whose data does not grow with the clients: the `blobs` dataset (a fixed pool of
`--samples` Gaussian-cluster samples, 8 features) split by `partition=iid` into index sets, logistic
regression, `local_steps` = 5 mini-batches of 2 per client (the same work per client whatever its
share of the pool) in one task per client (`runner.granularity=client`: with the default, one task
per epoch-sized chunk, a client of 2 samples at a million clients would run its 5 steps as 5 tasks,
five times the tasks of the smaller populations), the `fleet` system model (speeds, bandwidths, a
simulated clock) and one selector per row (uniform, and Oort: stateful, a few scalars per client).
From MLflow it reads, over rounds 2.. (round 1 starts the worker processes), the median of
`round_seconds` and its parts `plan_seconds` (availability and selection), `train_seconds`,
`eval_seconds`, and the checkpoint (`checkpoint_wait_seconds`: the time the loop waited for the
previous round's commit), the largest `rss_mb` of the sweep process, and the command's wall time
and peak RSS (getrusage of the children).

What should hold: per-round time flat in the number of clients; memory O(data + clients × a few
bytes): 8 bytes of sample index per sample, and per client 8 bytes of offset, a few float64s of
system model and, for Oort, of selector state.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PARTS = ("round_seconds", "plan_seconds", "train_seconds", "eval_seconds", "checkpoint_wait_seconds")


def command(*, clients: int, selector: str, rounds: int, samples: int, name: str) -> list[str]:
    """The sweep command of one point."""
    return [
        sys.executable,
        str(REPO / "flows" / "sweep.py"),
        f"sweep_name={name}",
        f"rounds={rounds}",
        f"num_clients={clients}",
        "clients_per_round=10",
        "dataset=blobs",
        f"dataset.train_samples={samples}",
        "partition=iid",
        "model=logreg",
        "local_epochs=null",
        "local_steps=5",
        "batch_size=2",
        f"selection={selector}",
        "systems=fleet",
        "runner.granularity=client",
        "runner.progress=false",
    ]


def child(argv: list[str]) -> int:
    """Run `argv` and print its wall seconds and the peak RSS (MB) of its processes as JSON."""
    tick = time.monotonic()
    code = subprocess.run(argv, stdin=subprocess.DEVNULL).returncode
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"code": code, "wall_s": time.monotonic() - tick, "peak_rss_mb": peak}))
    return 0


def metrics(db: Path, name: str) -> dict[str, list[float]]:
    """The cell's per-round metrics, by key, in round order (read with sqlite: no MLflow import)."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT m.key, m.step, m.value FROM metrics m JOIN runs r ON m.run_uuid = r.run_uuid "
            "JOIN experiments e ON r.experiment_id = e.experiment_id JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE e.name = ? AND t.key = 'fedsweep.cell_key' ORDER BY m.step",
            (name,),
        ).fetchall()
    out: dict[str, list[float]] = {}
    for key, _, value in rows:
        out.setdefault(key, []).append(value)
    return out


def point(*, clients: int, selector: str, rounds: int, samples: int, tmp: Path) -> dict[str, float | str]:
    """One whole sweep; its per-round medians, RSS and wall time."""
    name = f"million-{selector}-{clients}"
    cwd = tmp / name
    cwd.mkdir()
    argv = [
        sys.executable,
        __file__,
        "--child",
        *command(clients=clients, selector=selector, rounds=rounds, samples=samples, name=name),
    ]
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    result = (
        json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {"code": proc.returncode}
    )
    if result["code"] != 0:
        sys.exit(
            f"sweep failed for {selector} at {clients} clients:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    series = metrics(cwd / "mlruns" / "mlflow.db", name)
    later = slice(1, None) if rounds > 1 else slice(None)
    row: dict[str, float | str] = {"selector": selector, "clients": clients}
    for key in PARTS:
        row[key] = statistics.median(series.get(key, [0.0])[later])
    row["round_1_s"] = series["round_seconds"][0]
    row["rss_mb"] = max(series["rss_mb"])
    row["peak_rss_mb"] = result["peak_rss_mb"]
    row["wall_s"] = result["wall_s"]
    row["accuracy"] = series["accuracy"][-1]
    return row


def table(rows: list[dict[str, float | str]]) -> str:
    """A markdown table: one row per point, ms per round and MB."""
    head = (
        "| selector | clients | round ms | plan ms | train ms | eval ms | ckpt wait ms | round 1 s "
        "| rss MB | peak RSS MB | wall s | accuracy |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        ms = " | ".join(f"{float(r[k]) * 1e3:.0f}" for k in PARTS)
        lines.append(
            f"| {r['selector']} | {int(r['clients']):,} | {ms} | {float(r['round_1_s']):.1f} | "
            f"{float(r['rss_mb']):.0f} | {float(r['peak_rss_mb']):.0f} | {float(r['wall_s']):.0f} | "
            f"{float(r['accuracy']):.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 10_000, 1_000_000])
    parser.add_argument("--selectors", nargs="+", default=["uniform", "oort"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--samples",
        type=int,
        default=2_000_000,
        help="samples in the pool (at least 2 per client at the largest size)",
    )
    args = parser.parse_args(argv)
    print(
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
        f"{args.rounds} rounds, 10 clients a round, "
        f"{args.samples:,} samples",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for selector in args.selectors:
            for clients in args.clients:
                rows.append(
                    point(
                        clients=clients,
                        selector=selector,
                        rounds=args.rounds,
                        samples=args.samples,
                        tmp=Path(tmp),
                    )
                )
                print(json.dumps(rows[-1]), flush=True)
    print(table(rows))
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
