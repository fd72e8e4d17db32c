"""fedsweep vs a bare torch loop on the identical workload, side by side in one invocation.

(a) `benchmarks/bare_loop.py`: sequential FedAvg in plain torch, nothing else.
(b) `python flows/sweep.py +experiment=bench`: the real CLI, in a fresh temporary working directory
    (so nothing is resumed), with MLflow tracking and checkpointing on, as a user runs it.

Both are timed as whole processes (wall time of the subprocess, interpreter start-up, imports and
data generation included), because that is what a user waits for. The workload comes from
`conf/experiment/bench.yaml`; the bare loop gets the same values as flags, so the two cannot drift.

    python benchmarks/vs_loop.py                     # 50 rounds, once each
    python benchmarks/vs_loop.py --rounds 10 --repeat 3 --out /tmp/vs_loop.json
    python benchmarks/vs_loop.py -- runner.max_parallel_clients=2   # extra overrides for (b)

With `--repeat k` the runs go a b b a a b ... so that a slow drift of the machine (another job
starting) hits both sides alike; the ratio is median(b) / median(a). Timings on a 2-core machine are
easily distorted by other work: the load average before each run is recorded in the JSON.
"""

import argparse
import csv
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
BENCH_YAML = REPO / "conf" / "experiment" / "bench.yaml"


def workload(rounds: int) -> dict[str, Any]:
    """The bench preset's values (seed from the root config), with `rounds` replaced."""
    bench = yaml.safe_load(BENCH_YAML.read_text())
    root = yaml.safe_load((REPO / "conf" / "config.yaml").read_text())
    dataset = yaml.safe_load((REPO / "conf" / "dataset" / "teacher_mnist.yaml").read_text())
    dataset.update(bench.get("dataset", {}))
    return {
        "rounds": rounds, "clients": bench["num_clients"], "clients_per_round": bench["clients_per_round"],
        "local_epochs": bench["local_epochs"], "batch_size": bench["batch_size"], "lr": bench["lr"],
        "seed": bench.get("seed", root["seed"]), "samples_per_client": dataset["samples_per_client"],
        "test_samples": dataset["test_samples"],
    }


def _timed(cmd: list[str], cwd: Path, log: Path) -> tuple[float, int]:
    """(wall seconds, return code) of a subprocess whose output goes to `log`."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # the default: a private server
    started = time.perf_counter()
    with log.open("wb") as out:
        code = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False).returncode
    return time.perf_counter() - started, code


def _fail(what: str, log: Path) -> None:
    tail = log.read_text(errors="replace")[-3000:]
    sys.exit(f"vs_loop: {what} failed (log {log}):\n{tail}")


def run_bare(w: dict[str, Any], work: Path) -> dict[str, Any]:
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in w.items()]  # same names as bare_loop's
    log = work / "bare.log"
    load = os.getloadavg()[0]
    wall, code = _timed([sys.executable, str(REPO / "benchmarks" / "bare_loop.py"), *flags], work, log)
    lines = [line for line in log.read_text().splitlines() if line.startswith("RESULT ")]
    if code or not lines:
        _fail("the bare loop", log)
    inner = json.loads(lines[-1].removeprefix("RESULT "))
    return {"side": "bare", "wall_s": wall, "loop_s": inner["loop_s"], "final_accuracy": inner["final_accuracy"],
            "load_before": load}


def run_fedsweep(w: dict[str, Any], work: Path, extra: list[str]) -> dict[str, Any]:
    cwd = Path(tempfile.mkdtemp(prefix="fedsweep-", dir=work))
    log = work / f"{cwd.name}.log"
    cmd = [sys.executable, str(REPO / "flows" / "sweep.py"), "+experiment=bench", f"rounds={w['rounds']}", *extra]
    load = os.getloadavg()[0]
    wall, code = _timed(cmd, cwd, log)
    summary = cwd / "outputs" / "bench" / "summary.csv"
    if code or not summary.is_file():
        _fail("fedsweep", log)
    row = next(csv.DictReader(summary.open()))
    # Tracking and checkpointing really happened (not a resumed or half-configured run).
    checkpoints = list((cwd / "outputs" / "bench" / "cells").glob("*/checkpoints/round-*"))
    if row["status"] != "FINISHED" or not (cwd / "mlruns" / "mlflow.db").is_file() or not checkpoints:
        _fail("fedsweep (no MLflow db or no checkpoint)", log)
    return {"side": "fedsweep", "wall_s": wall, "loop_s": float(row["wall_s"]),
            "final_accuracy": float(row["final_accuracy"]), "load_before": load}


def summarise(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Medians per side and their ratio (fedsweep / bare)."""
    med = {side: {key: statistics.median(r[key] for r in runs if r["side"] == side)
                  for key in ("wall_s", "loop_s", "final_accuracy")} for side in ("bare", "fedsweep")}
    return {
        "bare_wall_s": med["bare"]["wall_s"], "fedsweep_wall_s": med["fedsweep"]["wall_s"],
        "ratio": med["fedsweep"]["wall_s"] / med["bare"]["wall_s"],
        "bare_loop_s": med["bare"]["loop_s"], "fedsweep_cell_s": med["fedsweep"]["loop_s"],
        "loop_ratio": med["fedsweep"]["loop_s"] / med["bare"]["loop_s"],
        "bare_accuracy": med["bare"]["final_accuracy"], "fedsweep_accuracy": med["fedsweep"]["final_accuracy"],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="fedsweep vs a bare torch FedAvg loop, same workload.")
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--repeat", type=int, default=1, help="runs per side, interleaved a b b a ...")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the working directories and logs")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for the fedsweep side (after --)")
    args = p.parse_args(argv)
    w = workload(args.rounds)
    work = Path(tempfile.mkdtemp(prefix="vs_loop-"))
    runs: list[dict[str, Any]] = []
    order = [("bare", "fedsweep") if i % 2 == 0 else ("fedsweep", "bare") for i in range(args.repeat)]
    for i, pair in enumerate(order):
        for side in pair:
            run = run_bare(w, work) if side == "bare" else run_fedsweep(w, work, args.overrides)
            runs.append({**run, "repeat": i})
            print(f"[{i + 1}/{args.repeat}] {side:<8} {run['wall_s']:7.1f} s (in-process {run['loop_s']:6.1f} s)"
                  f"  accuracy {run['final_accuracy']:.4f}  load {run['load_before']:.2f}", flush=True)
    s = summarise(runs)
    print(f"\n{w['rounds']} rounds, {w['clients']} clients x {w['samples_per_client']} samples, "
          f"{w['clients_per_round']} per round, median of {args.repeat}:")
    print(f"  bare loop  {s['bare_wall_s']:7.1f} s   final accuracy {s['bare_accuracy']:.4f}")
    print(f"  fedsweep   {s['fedsweep_wall_s']:7.1f} s   final accuracy {s['fedsweep_accuracy']:.4f}")
    print(f"  ratio      {s['ratio']:7.2f}x  (whole processes; in-process loop/cell only: {s['loop_ratio']:.2f}x)")
    if args.out:
        figures = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
                   "workload": w, "overrides": args.overrides, "summary": s, "runs": runs}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=1))
        print(f"figures: {args.out}")
    if args.keep:
        print(f"working directories and logs: {work}")
    else:
        import shutil  # noqa: PLC0415

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
