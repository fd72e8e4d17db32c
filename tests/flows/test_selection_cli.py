"""Every selector through the real command: every option runs, sketches and reported losses reach
the selectors' checkpointed state, and the selectors that learn, killed mid-run, resume bitwise."""

import csv
from pathlib import Path

import pytest
from safetensors.torch import load_file
from sweep_cli import run_killed_once, run_sweep

pytestmark = pytest.mark.slow
OPTIONS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "conf" / "selection").glob("*.yaml"))


def test_every_selector_runs_through_the_command(tmp_path, prefect_home) -> None:
    # Execute: the quickstart preset, FedAvg, one cell per selection option, 2 rounds of 3 clients, on
    # the fleet system model with a deadline every client meets (FedCS packs under it, Oort is paced)
    out = run_sweep(
        tmp_path,
        prefect_home,
        "+experiment=quickstart",
        "strategy=fedavg",
        "num_clients=10",
        "rounds=2",
        "clients_per_round=3",
        "tracking.enabled=false",
        "runner.progress=false",
        "systems=fleet",
        "systems.deadline_s=10000",
        f"+grid.selection=[{','.join(OPTIONS)}]",
    )
    # Assert: every cell finished its 2 rounds
    with open(tmp_path / "outputs" / "quickstart" / "summary.csv") as summary:
        rows = {row["cell"]: row for row in csv.DictReader(summary)}
    assert sorted(name.removeprefix("fedavg-c10-r2-s0-") for name in rows) == OPTIONS, out[-3000:]
    assert all(row["status"] == "FINISHED" and row["rounds"] == "2" for row in rows.values()), rows
    # the selectors that compare updates kept a sketch of each client that trained
    for cell in (tmp_path / "outputs" / "quickstart" / "cells").iterdir():
        selection = cell / "checkpoints" / "round-000002" / "selection.safetensors"
        state = load_file(selection) if selection.exists() else {}
        if "sketch" in state:
            seen = state["seen"] > 0
            assert int(seen.sum()) >= 3 and state["sketch"].shape == (10, 128), cell.name
            assert bool((state["sketch"][seen].norm(dim=1) > 0).all()) and not state["sketch"][~seen].any()
    # Oort and Active FL learnt from the clients' reported losses
    folders = (tmp_path / "outputs" / "quickstart" / "cells").iterdir()
    cells = {p.name.removeprefix("fedavg-c10-r2-s0-").rsplit("-", 1)[0]: p for p in folders}
    oort = load_file(cells["oort"] / "checkpoints" / "round-000002" / "selection.safetensors")
    afl = load_file(cells["active_fl"] / "checkpoints" / "round-000002" / "selection.safetensors")
    assert int(oort["count"].sum()) == 6 and float(oort["epsilon"]) == pytest.approx(0.9 * 0.98**2)
    assert bool((oort["utility"][oort["count"] > 0] > 0).all())  # |B| · RMS loss from the clients' reports
    assert int((~afl["value"].isnan()).sum()) >= 3 and bool((afl["value"].nan_to_num(1.0) > 0).all())


# Selectors whose state moves every round: sketches, utilities and exploration, last losses, last selection.
STATEFUL = ("clustered_similarity", "oort", "rpow_d", "round_robin")
ARGS = (
    "+experiment=quickstart",
    "sweep_name=resume-selectors",
    "strategy=fedavg",
    "num_clients=10",
    "clients_per_round=3",
    "rounds=5",
    "local_epochs=2",
    "tracking.enabled=false",
    "runner.progress=false",
    f"+grid.selection=[{','.join(STATEFUL)}]",
)


def final_bytes(cell: Path) -> dict[str, bytes]:
    """The last checkpoint's model and selector-state files of a cell."""
    last = cell / "checkpoints" / "round-000005"
    return {name: (last / name).read_bytes() for name in ("model.safetensors", "selection.safetensors")}


def test_selector_state_killed_mid_run_resumes_bitwise(tmp_path, prefect_home) -> None:
    # Execute: an uninterrupted reference; the same sweep killed with kill -9 once 5 rounds (of 20)
    # are committed, then run again
    clean = run_killed_once(
        tmp_path / "clean", prefect_home, *ARGS, kill_after=None, sweep="resume-selectors"
    )
    killed = run_killed_once(tmp_path / "killed", prefect_home, *ARGS, kill_after=5, sweep="resume-selectors")
    # Assert: every cell's model and selector state are the same bytes
    assert [c.name for c in clean] == [c.name for c in killed] and len(clean) == len(STATEFUL)
    for reference, resumed in zip(clean, killed):
        assert final_bytes(resumed) == final_bytes(reference), resumed.name
