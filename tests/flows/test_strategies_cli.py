"""Every strategy option runs two rounds through the real command (one sweep, a grid cell per
option), and a stateful server optimiser (FedAdam) killed after round 2 of 4 and re-run ends bitwise
equal to an uninterrupted run."""

import csv
import signal
import time
from pathlib import Path

import pytest
from sweep_cli import recorded, run_sweep, start_sweep

pytestmark = pytest.mark.slow
OPTIONS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "conf" / "strategy").glob("*.yaml"))


def test_every_strategy_runs_two_rounds_through_the_command(tmp_path, prefect_home) -> None:
    # Execute: the quickstart grid's strategy axis replaced by every option
    out = run_sweep(
        tmp_path,
        prefect_home,
        "+experiment=quickstart",
        "rounds=2",
        "num_clients=10",
        "tracking.enabled=false",
        f"grid.strategy=[{','.join(OPTIONS)}]",
    )
    # Assert: one finished cell per option, each with two committed rounds
    with open(tmp_path / "outputs" / "quickstart" / "summary.csv") as summary:
        rows = {row["cell"]: row for row in csv.DictReader(summary)}
    assert sorted(rows) == sorted(f"{name}-c10-r2-s0" for name in OPTIONS), out[-3000:]
    assert all(row["status"] == "FINISHED" and row["rounds"] == "2" for row in rows.values()), rows
    for cell in (tmp_path / "outputs" / "quickstart" / "cells").iterdir():
        assert (cell / "checkpoints" / "round-000002" / "MANIFEST.json").exists(), cell.name


ARGS = (
    "+experiment=quickstart",
    "sweep_name=resume-fedadam",
    "strategy=fedadam",
    "num_clients=10",
    "rounds=4",
    "local_epochs=2",
    "runner.progress=false",
)


def final(cwd: Path) -> tuple[str, bytes]:
    """(the final_weights_sha256 tag, the final checkpoint's server-state bytes) of the one cell."""
    runs = recorded(cwd, "resume-fedadam")
    (cell,) = (cwd / "outputs" / "resume-fedadam" / "cells").iterdir()
    state = (cell / "checkpoints" / "round-000004" / "server_state.safetensors").read_bytes()
    return runs["fedadam-c10-r4-s0"][0].data.tags["final_weights_sha256"], state


def test_fedadam_killed_after_round_2_resumes_bitwise(tmp_path, prefect_home) -> None:
    # Prepare: the uninterrupted reference
    clean = tmp_path / "clean"
    clean.mkdir()
    run_sweep(clean, prefect_home, *ARGS)
    killed = tmp_path / "killed"
    killed.mkdir()
    # Execute: kill -9 once round 2 is committed, then the same command again
    proc = start_sweep(killed, prefect_home, *ARGS)
    pattern = "outputs/resume-fedadam/cells/*/checkpoints/round-*/MANIFEST.json"
    deadline = time.monotonic() + 300
    while len(list(killed.glob(pattern))) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = sorted(p.parent.name for p in killed.glob(pattern))
    run_sweep(killed, prefect_home, *ARGS)
    # Assert: the kill landed mid-run, and the resumed run ends with the same weights and moments
    assert "round-000002" in committed and "round-000004" not in committed, committed
    assert final(killed) == final(clean)
