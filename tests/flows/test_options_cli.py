"""Every strategy option and every selection option runs two rounds through the real command, in one
sweep: a grid cell per strategy, each paired with a selector (the selectors in turn, then uniform), on
the fleet system model with a deadline every client meets (FedCS packs under it, Oort is paced).
Sketches and reported losses reach the selectors' checkpointed state. Killed mid-run, the stateful
strategies and selectors resume bitwise: test_resume_chaos.py."""

import csv
from pathlib import Path

import pytest
from safetensors.torch import load_file
from sweep_cli import run_sweep

pytestmark = pytest.mark.slow
CONF = Path(__file__).resolve().parents[2] / "conf"
STRATEGIES = sorted(p.stem for p in (CONF / "strategy").glob("*.yaml"))
SELECTORS = sorted(p.stem for p in (CONF / "selection").glob("*.yaml"))
PAIRS = dict(zip(STRATEGIES, SELECTORS + ["uniform"] * (len(STRATEGIES) - len(SELECTORS))))


def test_every_strategy_and_selector_runs_two_rounds_through_the_command(tmp_path, prefect_home) -> None:
    # Prepare: one labelled grid cell per strategy, with its selector
    assert len(STRATEGIES) >= len(SELECTORS) and set(PAIRS.values()) == set(SELECTORS)
    grid = ",".join(f"{s}:{{strategy:{s},selection:{PAIRS[s]}}}" for s in STRATEGIES)
    # Execute
    out = run_sweep(
        tmp_path,
        prefect_home,
        "+experiment=quickstart",
        "~grid.strategy",
        "~grid.num_clients",
        "faults=none",  # every selected client trains (FedAvg would drop the quickstart's stragglers)
        "num_clients=10",
        "rounds=2",
        "clients_per_round=3",
        "tracking.enabled=false",
        "runner.progress=false",
        "runner.parallel_cells=3",
        "systems=fleet",
        "systems.deadline_s=10000",
        f"+grid.method={{{grid}}}",
    )
    # Assert: every cell finished its 2 rounds
    with open(tmp_path / "outputs" / "quickstart" / "summary.csv") as summary:
        rows = {row["cell"]: row for row in csv.DictReader(summary)}
    assert sorted(rows) == sorted(f"{s}-c10-r2-s0-{s}" for s in STRATEGIES), out[-3000:]
    assert all(row["status"] == "FINISHED" and row["rounds"] == "2" for row in rows.values()), rows
    folders = list((tmp_path / "outputs" / "quickstart" / "cells").iterdir())
    for cell in folders:
        assert (cell / "checkpoints" / "round-000002" / "MANIFEST.json").exists(), cell.name
    # the selectors that compare updates kept a sketch of each client that trained
    states = {}
    for cell in folders:
        selector = PAIRS[cell.name.split("-")[0]]
        selection = cell / "checkpoints" / "round-000002" / "selection.safetensors"
        states[selector] = state = load_file(selection) if selection.exists() else {}
        if "sketch" in state:
            seen = state["seen"] > 0
            assert int(seen.sum()) >= 3 and state["sketch"].shape == (10, 128), cell.name
            assert bool((state["sketch"][seen].norm(dim=1) > 0).all()) and not state["sketch"][~seen].any()
    # Oort and Active FL learnt from the clients' reported losses
    oort, afl = states["oort"], states["active_fl"]
    assert int(oort["count"].sum()) == 6 and float(oort["epsilon"]) == pytest.approx(0.9 * 0.98**2)
    assert bool((oort["utility"][oort["count"] > 0] > 0).all())  # |B| · RMS loss from the clients' reports
    assert int((~afl["value"].isnan()).sum()) >= 3 and bool((afl["value"].nan_to_num(1.0) > 0).all())
