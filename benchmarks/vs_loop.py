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
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

import yaml
from server_cpu import server_of, settled_cpu_s, stop
from sweep_env import sweep_env

REPO = Path(__file__).resolve().parent.parent


def workload(rounds: int, preset: str = "bench") -> dict[str, Any]:
    """A TeacherMNIST preset's values (seed from the root config), with `rounds` replaced."""
    bench = yaml.safe_load((REPO / "conf" / "experiment" / f"{preset}.yaml").read_text())
    root = yaml.safe_load((REPO / "conf" / "config.yaml").read_text())
    dataset = yaml.safe_load((REPO / "conf" / "dataset" / "teacher_mnist.yaml").read_text())
    dataset.update(bench.get("dataset", {}))
    return {
        "rounds": rounds,
        "clients": bench["num_clients"],
        "clients_per_round": bench["clients_per_round"],
        "local_epochs": bench["local_epochs"],
        "batch_size": bench["batch_size"],
        "lr": bench["lr"],
        "seed": bench.get("seed", root["seed"]),
        "samples_per_client": dataset["samples_per_client"],
        "test_samples": dataset["test_samples"],
    }


class SideFailed(Exception):
    """One side of a comparison failed or ran past its time; the message says which and ends with its log."""


def _timed(
    cmd: list[str], cwd: Path, log: Path, timeout_s: float | None = None, env: dict[str, str] | None = None
) -> tuple[float, int]:
    """(wall seconds, return code) of a subprocess whose output goes to `log`, `env` added to the
    sweep's environment; past `timeout_s` its whole process group is killed and SideFailed raised."""
    env = {**sweep_env(), **(env or {})}  # this checkout first; no PREFECT_API_URL: fedsweep's own server
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the side's servers and workers too
            proc.wait()
            _fail(f"{Path(cmd[1]).name} (over {timeout_s:g} s: killed)", log)
    return time.perf_counter() - started, code


def _fail(what: str, log: Path) -> NoReturn:
    tail = log.read_text(errors="replace")[-3000:]
    raise SideFailed(f"{what} failed (log {log}):\n{tail}")


def run_bare(
    w: dict[str, Any], work: Path, flags: list[str] | None = None, timeout_s: float | None = None
) -> dict[str, Any]:
    """The bare loop as a whole process; `flags` add to the workload's (e.g. `--mu 0,1`: one run per mu)."""
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in w.items()] + (
        flags or []
    )  # bare_loop's names
    log = work / f"bare-{len(list(work.glob('bare*.log')))}.log"
    load = os.getloadavg()[0]
    wall, code = _timed(
        [sys.executable, str(REPO / "benchmarks" / "bare_loop.py"), *flags], work, log, timeout_s
    )
    lines = [line for line in log.read_text().splitlines() if line.startswith("RESULT ")]
    if code or not lines:
        _fail("the bare loop", log)
    methods = json.loads(lines[-1].removeprefix("RESULT "))["methods"]
    return {
        "side": "bare",
        "wall_s": wall,
        "loop_s": sum(m["loop_s"] for m in methods),
        "final_accuracy": methods[0]["final_accuracy"],
        "accuracies": [m["final_accuracy"] for m in methods],
        "rounds_run": sum(m["rounds"] for m in methods),
        "train_s": sum(m["train_s"] for m in methods),
        "eval_s": sum(m["eval_s"] for m in methods),
        "load_before": load,
    }


def round_parts(db: Path) -> dict[str, float]:
    """Seconds summed over every round of every cell in an MLflow sqlite store: round, train, eval."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute(
            "SELECT key, SUM(value) FROM metrics WHERE key IN "
            "('round_seconds', 'train_seconds', 'eval_seconds') GROUP BY key"
        ).fetchall()
    return {key.replace("seconds", "s"): float(total) for key, total in rows}


def run_fedsweep(
    w: dict[str, Any],
    work: Path,
    extra: list[str],
    *,
    experiment: str | None = "bench",
    sweep: str = "bench",
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """The CLI as a whole process in a fresh folder: `+experiment=<experiment>` (None: none)
    `rounds=` extra. Its Prefect server is the shared one of a runtime folder of the benchmark's
    own (`work`/runtime): the first run starts it, later ones find it, as a user's sweeps do, and
    the CPU it spends during the run (until it has digested what the run sent) is the run's."""
    cwd = Path(tempfile.mkdtemp(prefix="fedsweep-", dir=work))
    log = work / f"{cwd.name}.log"
    preset = [f"+experiment={experiment}"] if experiment else []
    cmd = [sys.executable, str(REPO / "flows" / "sweep.py"), *preset, f"rounds={w['rounds']}", *extra]
    load = os.getloadavg()[0]
    runtime = work / "runtime"
    runtime.mkdir(exist_ok=True)
    server = server_of(runtime)
    before = settled_cpu_s(server, timeout_s=30)
    wall, code = _timed(cmd, cwd, log, timeout_s, env={"FEDSWEEP_RUNTIME_DIR": str(runtime)})
    now = server_of(runtime)
    server_cpu = settled_cpu_s(now) - (
        before if server is not None and now is not None and now.pid == server.pid else 0.0
    )
    summary = cwd / "outputs" / sweep / "summary.csv"
    if code or not summary.is_file():
        _fail("fedsweep", log)
    rows = list(csv.DictReader(summary.open()))
    # Tracking and checkpointing really happened (not a resumed or half-configured run).
    checkpoints = list((cwd / "outputs" / sweep / "cells").glob("*/checkpoints/round-*"))
    if (
        any(r["status"] != "FINISHED" for r in rows)
        or not (cwd / "mlruns" / "mlflow.db").is_file()
        or not checkpoints
    ):
        _fail("fedsweep (a cell not FINISHED, no MLflow db or no checkpoint)", log)
    return {
        "side": "fedsweep",
        "wall_s": wall,
        "loop_s": sum(float(r["wall_s"]) for r in rows),
        "final_accuracy": float(rows[0]["final_accuracy"]),
        "accuracies": [float(r["final_accuracy"]) for r in rows],
        "cells": [r["cell"] for r in rows],
        "rounds_run": sum(int(r["rounds_run"]) for r in rows),
        **round_parts(cwd / "mlruns" / "mlflow.db"),
        "server_cpu_s": server_cpu,
        "load_before": load,
    }


def stop_server(work: Path) -> None:
    """Stop the fedsweep side's shared server (rather than leave it for its idle timeout)."""
    stop(server_of(work / "runtime"))


def summarise(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Medians per side and their ratio (fedsweep / bare)."""
    med = {
        side: {
            key: statistics.median(r[key] for r in runs if r["side"] == side)
            for key in ("wall_s", "loop_s", "final_accuracy")
        }
        for side in ("bare", "fedsweep")
    }
    return {
        "bare_wall_s": med["bare"]["wall_s"],
        "fedsweep_wall_s": med["fedsweep"]["wall_s"],
        "ratio": med["fedsweep"]["wall_s"] / med["bare"]["wall_s"],
        "bare_loop_s": med["bare"]["loop_s"],
        "fedsweep_cell_s": med["fedsweep"]["loop_s"],
        "loop_ratio": med["fedsweep"]["loop_s"] / med["bare"]["loop_s"],
        "bare_accuracy": med["bare"]["final_accuracy"],
        "fedsweep_accuracy": med["fedsweep"]["final_accuracy"],
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
            server = f"  server CPU {run['server_cpu_s']:.1f} s" if "server_cpu_s" in run else ""
            print(
                f"[{i + 1}/{args.repeat}] {side:<8} {run['wall_s']:7.1f} s "
                f"(in-process {run['loop_s']:6.1f} s)"
                f"  accuracy {run['final_accuracy']:.4f}{server}  load {run['load_before']:.2f}",
                flush=True,
            )
    stop_server(work)
    s = summarise(runs)
    print(
        f"\n{w['rounds']} rounds, {w['clients']} clients x {w['samples_per_client']} samples, "
        f"{w['clients_per_round']} per round, median of {args.repeat}:"
    )
    print(f"  bare loop  {s['bare_wall_s']:7.1f} s   final accuracy {s['bare_accuracy']:.4f}")
    print(f"  fedsweep   {s['fedsweep_wall_s']:7.1f} s   final accuracy {s['fedsweep_accuracy']:.4f}")
    print(
        f"  ratio      {s['ratio']:7.2f}x  "
        f"(whole processes; in-process loop/cell only: {s['loop_ratio']:.2f}x)"
    )
    if args.out:
        figures = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "workload": w,
            "overrides": args.overrides,
            "summary": s,
            "runs": runs,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=1))
        print(f"figures: {args.out}")
    if args.keep:
        print(f"working directories and logs: {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except SideFailed as failed:
        sys.exit(f"vs_loop: {failed}")
