"""Checkpointing's cost on the training path, and how fast a killed sweep gets back to work.

    python benchmarks/checkpoint_overhead.py                 # bench workload, 8 rounds
    python benchmarks/checkpoint_overhead.py --rounds 20 --kill-after 10

1. Overhead: runs `+experiment=bench` and reads, per round, `checkpoint_wait_seconds` (the time the
   loop waited for the previous round's background commit: checkpointing's whole cost on the
   training path) against `round_seconds`. It also times one synchronous commit of the same model
   (CheckpointStore.save, manifest and fsyncs included) to show what a blocking write would cost.
2. Restart: starts the same sweep in a fresh folder, SIGKILLs it once `--kill-after` rounds are
   committed, re-runs the command and reports the seconds from process start to the resume
   decision (the log line `resuming cell NAME after round N of R (X s after start)`), and the
   re-run's wall time.
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SWEEP = [sys.executable, str(REPO / "flows" / "sweep.py"), "+experiment=bench"]


def run(cwd: Path, *overrides: str) -> tuple[float, str]:
    tick = time.monotonic()
    proc = subprocess.run(
        [*SWEEP, *overrides], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        sys.exit(f"sweep failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return time.monotonic() - tick, proc.stdout + proc.stderr


def per_round(cwd: Path, metric: str) -> list[float]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("bench")
    (cell,) = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    return [
        m.value for m in sorted(client.get_metric_history(cell.info.run_id, metric), key=lambda m: m.step)
    ]


def sync_commit_seconds(cwd: Path) -> float:
    """Median time of a blocking CheckpointStore.save of the bench model (with its manifest)."""
    sys.path.insert(0, str(REPO))
    from fedsweep.checkpoint.storage import LocalStorage
    from fedsweep.checkpoint.store import CheckpointStore
    from fedsweep.models.cnn import CNN
    from fedsweep.weights import state_of

    params = state_of(CNN(input_shape=(1, 28, 28), num_classes=10, channels=(16, 32), hidden=128, padding=0))
    store = CheckpointStore(storage=LocalStorage(cwd / "sync-ckpt"), keep=3)
    times = []
    for rnd in range(1, 12):
        tick = time.perf_counter()
        store.save(
            round=rnd, tensors={"model": params, "server_state": {}}, meta={"round": rnd, "history": []}
        )
        times.append(time.perf_counter() - tick)
    return statistics.median(times)


def restart(cwd: Path, rounds: int, kill_after: int) -> tuple[float, float]:
    """(seconds from start to the resume decision, wall time of the re-run) after a SIGKILL."""
    log = (cwd / "killed.log").open("w")
    proc = subprocess.Popen(
        [*SWEEP, f"rounds={rounds}"], cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    checkpoints = cwd / "outputs" / "bench" / "cells"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if any(checkpoints.glob(f"*/checkpoints/round-{kill_after:06d}/MANIFEST.json")):
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wall, out = run(cwd, f"rounds={rounds}")
    found = re.search(r"resuming cell \S+ after round (\d+) of \d+ \(([\d.]+) s after start\)", out)
    if not found:
        sys.exit(f"no resume line in the re-run's output:\n{out[-2000:]}")
    return float(found.group(2)), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--kill-after", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        first, second = Path(tmp, "overhead"), Path(tmp, "restart")
        first.mkdir()
        second.mkdir()
        wall, _ = run(first, f"rounds={args.rounds}")
        waits, rounds = per_round(first, "checkpoint_wait_seconds"), per_round(first, "round_seconds")
        sync = sync_commit_seconds(first)
        resume_s, rerun_wall = restart(second, args.rounds, args.kill_after)
    mean_round = statistics.mean(rounds[1:] or rounds)  # round 1 includes warm-up
    print(f"rounds: {args.rounds}, sweep wall time: {wall:.1f} s, mean round: {mean_round:.3f} s")
    print(
        f"checkpoint wait on the training path: {sum(waits):.3f} s of {sum(rounds):.2f} s "
        f"= {100 * sum(waits) / sum(rounds):.2f} % of round time (target <= 3 %)"
    )
    print(
        f"a blocking commit of the same model would take {sync * 1000:.1f} ms "
        f"= {100 * sync / mean_round:.2f} % of a mean round"
    )
    print(
        f"restart after kill -9 at round {args.kill_after}: resume decision {resume_s:.1f} s after "
        f"process start; re-run wall time {rerun_wall:.1f} s for {args.rounds - args.kill_after} rounds"
    )


if __name__ == "__main__":
    main()
