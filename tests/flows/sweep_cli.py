"""Running the real sweep command in a subprocess, and reading what it recorded."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SWEEP = REPO / "flows" / "sweep.py"


def slowdown() -> float:
    """How many times slower than on a quiet machine a process runs now: the load average (the highest
    of the last 1 and 5 minutes) per CPU, at least 1. Bounds on wall-clock time that a test proves
    (an exit within seconds, a round cut at its deadline) are scaled by it: on a shared machine with
    ten processes per core, a second of CPU takes ten."""
    return max(1.0, max(os.getloadavg()[:2]) / (os.cpu_count() or 1))


def sweep_env(prefect_home: Path, api_url: str | None = None) -> dict[str, str]:
    """The environment of a CI run, with Prefect's database kept out of the user's home; with
    `api_url`, the sweep uses that Prefect server instead of its own. The sweeps of a test session
    share one Prefect server (server/shared.py), found in a runtime folder beside the
    session's database and gone a minute after the last sweep."""
    ours = ("PREFECT_API", "FEDSWEEP_PREFECT_SERVER", "FEDSWEEP_SERVER_IDLE_S", "FEDSWEEP_RUNTIME_DIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.update(
        CI="true",
        PREFECT_HOME=str(prefect_home),
        PYTHONUNBUFFERED="1",
        FEDSWEEP_RUNTIME_DIR=str(prefect_home / "run"),
        FEDSWEEP_SERVER_IDLE_S="60",
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def start_sweep(
    cwd: Path,
    prefect_home: Path,
    *overrides: str,
    log: Any = subprocess.PIPE,
    python_path: str | None = None,
    api_url: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """The sweep command in a subprocess; `python_path` is put before the PYTHONPATH it inherits,
    `env` added to its environment."""
    env = {**sweep_env(prefect_home, api_url), **(env or {})}
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (python_path, env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, str(SWEEP), *overrides],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_sweep(
    cwd: Path,
    prefect_home: Path,
    *overrides: str,
    timeout: float = 900,
    api_url: str | None = None,
    env: dict[str, str] | None = None,
    python_path: str | None = None,
) -> str:
    """Run to completion; returns the output, failing with it if the exit code is not 0."""
    proc = start_sweep(cwd, prefect_home, *overrides, api_url=api_url, env=env, python_path=python_path)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


# The quickstart's two cells, 2 rounds of 10 clients with 2 local epochs, tracked, the MLflow UI's
# address in its links: the finished sweep that tests only read (`quickstart_sweep`, tests/conftest.py).
QUICKSTART = (  # without its stragglers, a task per client epoch: every round trains every client
    "+experiment=quickstart",
    "rounds=2",
    "num_clients=10",
    "local_epochs=2",
    "faults=none",
    "runner.granularity=epoch",
    "tracking.ui_url=http://127.0.0.1:5000",
)
QUICKSTART_CELLS = ("fedavg-c10-r2-s0", "fedprox-c10-r2-s0")

# Every kind of state a kill could lose, one cell each, side by side (tests/flows/test_resume_chaos.py):
# the server's optimiser moments, per-client state, partial work (stragglers), the selectors that
# learn, and the simulated clock (over-selection leaves 2 of the 5 selected clients out of each round,
# their state kept). Its rounds 2 on start when the test opens their gate (tests/flows/gate.py: every
# client online, as `Always`). `counting` and `gate` are in tests/flows: its sweeps need that folder
# on PYTHONPATH.
STATE_ROUNDS = 4
STATE_GRID = (
    "+experiment=quickstart",
    "sweep_name=chaos",
    "~grid.strategy",
    "~grid.num_clients",
    "num_clients=6",
    "clients_per_round=3",
    f"rounds={STATE_ROUNDS}",
    "local_epochs=2",
    "runner.parallel_cells=6",
    "runner.progress=false",
    "systems=fleet",
    "systems.over_select=0.4",
    "systems.availability._target_=gate.Gated",
    "faults=stragglers",
    "faults.delay_s=0.1",
    "aggregation.stragglers=partial",  # every method keeps the stragglers' partial work
    "runner.granularity=epoch",  # a task per client epoch: what a kill can cut
    "+grid.method={"
    "avg:{strategy:fedavg},"
    "adam:{strategy:fedadam,selection:oort},"
    "scaffold:{strategy:scaffold,selection:rpow_d},"
    "dyn:{strategy:feddyn,selection:clustered_similarity},"
    "nova:{strategy:fednova,selection:round_robin},"
    "counting:{strategy._target_:counting.Counting,selection._target_:counting.CountingSelector,"
    "+selection.num_clients:6}"
    "}",
)


def run_killed_once(
    cwd: Path,
    prefect_home: Path,
    *overrides: str,
    kill_after: int | None,
    sweep: str = "default",
    python_path: str | None = None,
) -> list[Path]:
    """Run the sweep in `cwd` to completion; with `kill_after`, kill -9 it once that many round
    checkpoints are committed (over all its cells) and run the same command again. Returns its cells'
    folders, sorted."""
    cwd.mkdir(exist_ok=True)
    proc = start_sweep(cwd, prefect_home, *overrides, python_path=python_path)
    if kill_after is not None:
        deadline = time.monotonic() + 900
        pattern = f"outputs/{sweep}/cells/*/checkpoints/round-*/MANIFEST.json"
        while (
            len(list(cwd.glob(pattern))) < kill_after and time.monotonic() < deadline and proc.poll() is None
        ):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = start_sweep(cwd, prefect_home, *overrides, python_path=python_path)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    return sorted((cwd / "outputs" / sweep / "cells").iterdir())


def recorded(cwd: Path, experiment: str) -> dict[str, Any]:
    """Runs of an MLflow experiment in cwd/mlruns: {run name: (run, {metric: [(step, value)]}, client)};
    the sweep's parent run (named `<sweep> #N @ <start>`) under the experiment's name."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    out: dict[str, Any] = {}
    for run in client.search_runs([exp.experiment_id]):
        metrics = {
            key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
            for key in run.data.metrics
        }
        name = run.info.run_name if "mlflow.parentRunId" in run.data.tags else experiment
        assert name not in out, f"duplicate run {name}"
        out[name] = (run, metrics, client)
    return out
