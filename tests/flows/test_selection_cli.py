"""The update-comparing selectors through the real command: every option runs, sketches reach the
selector's checkpointed state, and clustered sampling by similarity killed mid-run resumes bitwise."""

import csv
from pathlib import Path

import pytest
from safetensors.torch import load_file
from sweep_cli import kill_once_committed, run_sweep

pytestmark = pytest.mark.slow
OPTIONS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "conf" / "selection").glob("*.yaml"))


def test_every_selector_runs_through_the_command(tmp_path, prefect_home) -> None:
    # Execute: the quickstart preset, FedAvg, one cell per selection option, 3 rounds of 3 clients
    out = run_sweep(tmp_path, prefect_home, "+experiment=quickstart", "strategy=fedavg", "num_clients=10",
                    "rounds=3", "clients_per_round=3", "tracking.enabled=false", "runner.progress=false",
                    f"+grid.selection=[{','.join(OPTIONS)}]")
    # Assert: every cell finished its 3 rounds
    with open(tmp_path / "outputs" / "quickstart" / "summary.csv") as summary:
        rows = {row["cell"]: row for row in csv.DictReader(summary)}
    assert sorted(rows) == sorted(f"fedavg-c10-r3-s0-selection{name}" for name in OPTIONS), out[-3000:]
    assert all(row["status"] == "FINISHED" and row["rounds"] == "3" for row in rows.values()), rows
    # the selectors that compare updates kept a sketch of each client that trained
    for cell in (tmp_path / "outputs" / "quickstart" / "cells").iterdir():
        selection = cell / "checkpoints" / "round-000003" / "selection.safetensors"
        if selection.exists():
            state = load_file(selection)
            seen = state["seen"] > 0
            assert int(seen.sum()) >= 3 and state["sketch"].shape == (10, 128), cell.name
            assert bool((state["sketch"][seen].norm(dim=1) > 0).all()) and not state["sketch"][~seen].any()


ARGS = ("+experiment=quickstart", "sweep_name=resume-clustered", "strategy=fedavg", "selection=clustered_similarity",
        "num_clients=10", "clients_per_round=3", "rounds=5", "local_epochs=2", "tracking.enabled=false",
        "runner.progress=false")


def final_bytes(cwd: Path) -> dict[str, bytes]:
    """The last checkpoint's model and selector-state files of the one cell."""
    (cell,) = (cwd / "outputs" / "resume-clustered" / "cells").iterdir()
    last = cell / "checkpoints" / "round-000005"
    return {name: (last / name).read_bytes() for name in ("model.safetensors", "selection.safetensors")}


def test_clustered_similarity_killed_mid_run_resumes_bitwise(tmp_path, prefect_home) -> None:
    # Prepare: the uninterrupted reference
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    clean.mkdir()
    killed.mkdir()
    run_sweep(clean, prefect_home, *ARGS)
    # Execute: kill -9 once round 2 is committed, then the same command again
    committed = kill_once_committed(killed, prefect_home, *ARGS, count=2,
                                    pattern="outputs/resume-clustered/cells/*/checkpoints/round-*/MANIFEST.json")
    run_sweep(killed, prefect_home, *ARGS)
    # Assert: the kill landed mid-run; the model and the selector's sketches are the same bytes
    assert any("round-000002" in p for p in committed) and not any("round-000005" in p for p in committed)
    assert final_bytes(killed) == final_bytes(clean)
