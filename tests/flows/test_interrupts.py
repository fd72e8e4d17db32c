"""Ctrl-C and SIGTERM sent to a real sweep: one line, exit 130 / 143 within seconds, no traceback,
committed rounds kept, and a re-run that resumes bitwise (fedsweep/interrupt.py)."""

import csv
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from sweep_cli import recorded, run_sweep, slowdown, start_sweep

pytestmark = pytest.mark.slow
ARGS = (
    "+experiment=quickstart",
    "sweep_name=stop",
    "strategy=fedavg",
    "num_clients=10",
    "clients_per_round=3",
    "rounds=12",
)
CELL = "fedavg-c10-r12-s0"
# Every round of this cell hangs (interruptibly) in some client: a round outlasts any stop bound.
HANGING = (
    "+experiment=quickstart",
    "sweep_name=hang",
    "strategy=fedavg",
    "num_clients=10",
    "rounds=3",
    "local_epochs=1",  # one task per client epoch, half of them quick: round 1 persists results at once
    "runner.granularity=epoch",
    "faults=hang",
    "faults.p=0.5",
    "faults.seconds=60",
)
# Measured 2-3 s (docs/operations.md); generous, and scaled by how loaded the machine is (sweep_cli.slowdown).
EXIT_BOUND_S = 30


@pytest.fixture(scope="module")
def reference(tmp_path_factory, prefect_home) -> dict[str, str]:
    """The final weights' hashes of an uninterrupted run."""
    cwd = tmp_path_factory.mktemp("uninterrupted")
    run_sweep(cwd, prefect_home, *ARGS)
    return _hashes(cwd, "stop")


def _hashes(cwd: Path, sweep: str) -> dict[str, str]:
    return {name: r[0].data.tags.get("final_weights_sha256") for name, r in recorded(cwd, sweep).items()}


def wait_for(proc: subprocess.Popen, cwd: Path, pattern: str, timeout: float = 900) -> None:
    """Until a file matching `pattern` exists under cwd (the sweep must still be running; the bound
    is generous)."""
    deadline = time.monotonic() + timeout
    while not list(cwd.glob(pattern)):
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(
                f"the sweep ended ({proc.returncode}) before {pattern} appeared:\n{out[-3000:]}"
            )
        assert time.monotonic() < deadline, f"no {pattern} after {timeout} s"
        time.sleep(0.05)


def stop(
    proc: subprocess.Popen, *signals: signal.Signals, gap_s: float = 1.0, everyone: bool = False
) -> tuple[int, float, str, float]:
    """Send the signals (gap_s apart) to the sweep, or with `everyone` to each of its processes at
    once (the private server and the workers too: a batch scheduler's stop); (exit status, seconds
    from the last signal to exit, output, the machine's slowdown meanwhile)."""
    for i, sig in enumerate(signals):
        if i:
            time.sleep(gap_s)
        children = psutil.Process(proc.pid).children(recursive=True) if everyone else []
        assert not everyone or len(children) >= 2, children  # the server and the workers
        for pid in [proc.pid, *(child.pid for child in children)]:
            os.kill(pid, sig)
    sent, slow = time.monotonic(), slowdown()
    out, _ = proc.communicate(timeout=900)
    return proc.returncode, time.monotonic() - sent, out, max(slow, slowdown())


def assert_clean(out: str) -> None:
    assert "Traceback" not in out and "Error executing job" not in out, out[-4000:]
    assert "ConnectError" not in out and "EventsWorker" not in out, out[-4000:]


def flow_runs(prefect_home: Path, cwd: Path) -> dict[str, str]:
    """{flow run name: state name} of the sweep run in cwd, from Prefect's own database."""
    with sqlite3.connect(prefect_home / "prefect.db") as db:
        rows = db.execute("SELECT name, state_name, tags FROM flow_run").fetchall()
    return {name: state for name, state, tags in rows if f'"fedsweep-dir:{cwd.resolve()}/outputs/' in tags}


def assert_stopped(
    stopped: tuple[int, float, str, float], *, status: int, cwd: Path, prefect_home: Path, after_round: int
) -> int:
    """The checks of one stop; returns the rounds committed."""
    code, seconds, out, slow = stopped
    assert code == status, out[-4000:]
    assert seconds < EXIT_BOUND_S * slow, f"exit took {seconds:.1f} s (slowdown {slow:.1f})"
    assert_clean(out)
    assert sum("stopping after the running round" in line for line in out.splitlines()) == 1
    # the stop's line is a line of its own, not glued to the progress bar (split on newlines only:
    # the bar redraws itself with carriage returns)
    assert any(line.startswith(f"{CELL}: stopped after round ") for line in out.split("\n")), out[-3000:]
    run, metrics, _ = recorded(cwd, "stop")[CELL]
    committed = [step for step, _ in metrics["accuracy"]]
    assert run.info.status == "KILLED" and committed == list(range(1, len(committed) + 1))
    assert after_round <= len(committed) < 12
    # the clean stop, not the hard one: the summary has the cell's STOPPED row, and the flow runs
    # (the sweep's and the cell's) end Cancelled with the stop's reason
    rows = list(csv.DictReader(open(cwd / "outputs" / "stop" / "summary.csv")))
    assert rows[-1]["cell"] == CELL and rows[-1]["status"] == "STOPPED", rows
    assert set(flow_runs(prefect_home, cwd).values()) == {"Cancelled"}
    return len(committed)


def test_ctrl_c_then_sigterm_stop_after_the_round_and_the_reruns_resume_bitwise(
    tmp_path, prefect_home, reference
) -> None:
    # Execute: Ctrl-C once round 2 is committed
    proc = start_sweep(tmp_path, prefect_home, *ARGS)
    wait_for(proc, tmp_path, "outputs/stop/cells/*/checkpoints/round-000002/MANIFEST.json")
    stopped = stop(proc, signal.SIGINT)
    first = assert_stopped(stopped, status=130, cwd=tmp_path, prefect_home=prefect_home, after_round=2)
    # Execute: the re-run resumes; once round 5 is committed, SIGTERM to every process of the sweep
    # (what SLURM sends at scancel or the time limit)
    proc = start_sweep(tmp_path, prefect_home, *ARGS)
    wait_for(proc, tmp_path, "outputs/stop/cells/*/checkpoints/round-000005/MANIFEST.json")
    stopped = stop(proc, signal.SIGTERM, everyone=True)
    assert f"resuming cell {CELL} after round {first} of 12" in stopped[2]
    second = assert_stopped(stopped, status=143, cwd=tmp_path, prefect_home=prefect_home, after_round=5)
    # Assert: the last re-run resumes from there and ends bitwise equal to an uninterrupted run
    again = run_sweep(tmp_path, prefect_home, *ARGS)
    assert f"resuming cell {CELL} after round {second} of 12" in again
    assert "WARNING" not in again and "untrusted" not in again, again[-3000:]
    assert _hashes(tmp_path, "stop") == reference


def test_a_second_ctrl_c_stops_a_hanging_round_at_once(tmp_path, prefect_home) -> None:
    # Prepare: a round that hangs (some client sleeps 60 s)
    proc = start_sweep(tmp_path, prefect_home, *HANGING)
    wait_for(proc, tmp_path, "outputs/hang/prefect-results/*/round-000001/*")
    # Execute
    code, seconds, out, slow = stop(proc, signal.SIGINT, signal.SIGINT)
    # Assert
    assert code == 130, out[-4000:]
    assert seconds < EXIT_BOUND_S / 2 * slow, (
        f"exit took {seconds:.1f} s after the second Ctrl-C ({slow:.1f})"
    )
    assert_clean(out)
    assert set(flow_runs(prefect_home, tmp_path).values()) == {"Cancelled"}
    assert {r[0].info.status for r in recorded(tmp_path, "hang").values()} == {"KILLED"}


def test_the_stop_bound_ends_a_hanging_round_after_sigterm(tmp_path, prefect_home) -> None:
    # Prepare
    proc = start_sweep(tmp_path, prefect_home, *HANGING, "runner.stop_timeout_s=2")
    wait_for(proc, tmp_path, "outputs/hang/prefect-results/*/round-000001/*")
    # Execute
    code, seconds, out, slow = stop(proc, signal.SIGTERM)
    # Assert
    assert code == 143, out[-4000:]
    assert 2 <= seconds < 2 + EXIT_BOUND_S / 2 * slow, f"exit took {seconds:.1f} s (slowdown {slow:.1f})"
    assert "did not end within 2 s" in out
    assert_clean(out)


def _handles_sigterm(pid: int) -> bool:
    """Whether the process catches SIGTERM: fedsweep's handlers are installed (fedsweep/interrupt.py),
    which flows/sweep.py does first, before its slow imports (Python itself catches SIGINT only)."""
    with open(f"/proc/{pid}/status") as status:
        caught = next(line for line in status if line.startswith("SigCgt:")).split()[1]
    return bool(int(caught, 16) >> (signal.SIGTERM - 1) & 1)


def test_ctrl_c_during_start_up_exits_at_once(tmp_path, prefect_home) -> None:
    # Prepare: the sweep has started and installed its handlers, and is importing what it needs
    proc = start_sweep(tmp_path, prefect_home, *ARGS)
    deadline = time.monotonic() + 300
    while not _handles_sigterm(proc.pid):
        assert proc.poll() is None and time.monotonic() < deadline, "no signal handlers installed"
        time.sleep(0.01)
    # Execute
    code, seconds, out, slow = stop(proc, signal.SIGINT)
    # Assert
    assert code == 130, out[-4000:]
    assert seconds < 5 * slow and "KeyboardInterrupt" not in out, f"exit took {seconds:.1f} s ({slow:.1f})"
    assert_clean(out)
