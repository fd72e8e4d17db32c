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
    timeout: float = 600,
    api_url: str | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Run to completion; returns the output, failing with it if the exit code is not 0."""
    proc = start_sweep(cwd, prefect_home, *overrides, api_url=api_url, env=env)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


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
        deadline = time.monotonic() + 300
        pattern = f"outputs/{sweep}/cells/*/checkpoints/round-*/MANIFEST.json"
        while (
            len(list(cwd.glob(pattern))) < kill_after and time.monotonic() < deadline and proc.poll() is None
        ):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = start_sweep(cwd, prefect_home, *overrides, python_path=python_path)
    out, _ = proc.communicate(timeout=600)
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
