"""The loss-driven selectors through the real command: Oort and Active FL run three rounds (one
sweep, a grid cell each) with their state checkpointed every round, and Oort killed after round 2 of
4 and re-run ends bitwise equal to an uninterrupted run, its state included. (FedCS needs the system
model, conf/systems/; without one the command refuses it: tests/selection/test_selection_validation.py.)"""

import csv
import signal
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from sweep_cli import recorded, run_sweep, start_sweep

pytestmark = pytest.mark.slow


def test_oort_and_active_fl_run_three_rounds_through_the_command(tmp_path, prefect_home) -> None:
    # Execute
    out = run_sweep(tmp_path, prefect_home, "+experiment=quickstart", "rounds=3", "tracking.enabled=false",
                    "grid.strategy=[fedavg]", "grid.num_clients=[50]", "+grid.selection=[oort,active_fl]")
    # Assert: both cells finished their rounds, and the selectors' state is in the last checkpoint
    with open(tmp_path / "outputs" / "quickstart" / "summary.csv") as summary:
        rows = {row["cell"]: row for row in csv.DictReader(summary)}
    assert sorted(rows) == ["fedavg-c50-r3-s0-selectionactive_fl", "fedavg-c50-r3-s0-selectionoort"], out[-3000:]
    assert all(row["status"] == "FINISHED" and row["rounds"] == "3" for row in rows.values()), rows
    folders = (tmp_path / "outputs" / "quickstart" / "cells").iterdir()
    cells = {p.name.split("-selection")[1].rsplit("-", 1)[0]: p for p in folders}
    oort = load_file(cells["oort"] / "checkpoints" / "round-000003" / "selection.safetensors")
    afl = load_file(cells["active_fl"] / "checkpoints" / "round-000003" / "selection.safetensors")
    assert int(oort["count"].sum()) == 30 and int((oort["count"] > 0).sum()) >= 10  # 10 a round, all trained
    assert float(oort["epsilon"]) == pytest.approx(0.9 * 0.98**3)
    assert bool((oort["utility"][oort["count"] > 0] > 0).all())  # |B| · RMS loss from the clients' reports
    assert int((~afl["value"].isnan()).sum()) >= 10 and bool((afl["value"].nan_to_num(1.0) > 0).all())


ARGS = ("+experiment=quickstart", "sweep_name=resume-oort", "selection=oort", "strategy=fedavg", "num_clients=50",
        "rounds=4", "runner.progress=false", "grid={}")


def final(cwd: Path) -> tuple[str, bytes]:
    """(the final_weights_sha256 tag, the final checkpoint's selector-state bytes) of the one cell."""
    runs = recorded(cwd, "resume-oort")
    (cell,) = (cwd / "outputs" / "resume-oort" / "cells").iterdir()
    state = (cell / "checkpoints" / "round-000004" / "selection.safetensors").read_bytes()
    return runs["fedavg-c50-r4-s0"][0].data.tags["final_weights_sha256"], state


def test_oort_killed_after_round_2_resumes_bitwise(tmp_path, prefect_home) -> None:
    # Prepare: the uninterrupted reference
    clean = tmp_path / "clean"
    clean.mkdir()
    run_sweep(clean, prefect_home, *ARGS)
    killed = tmp_path / "killed"
    killed.mkdir()
    # Execute: kill -9 once round 2 is committed, then the same command again
    proc = start_sweep(killed, prefect_home, *ARGS)
    pattern = "outputs/resume-oort/cells/*/checkpoints/round-*/MANIFEST.json"
    deadline = time.monotonic() + 300
    while len(list(killed.glob(pattern))) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = sorted(p.parent.name for p in killed.glob(pattern))
    run_sweep(killed, prefect_home, *ARGS)
    # Assert: the kill landed mid-run, and the resumed run ends with the same weights and selector state
    assert "round-000002" in committed and "round-000004" not in committed, committed
    assert final(killed) == final(clean)
