"""Selectors through the real round loop: power-of-choice's probe task (cached: a recomputed round
reuses it and selects the same), every selector option through the command, and a selector's state
across a kill -9."""

import logging
from pathlib import Path

import pytest
from safetensors.torch import load_file

POW = ("runner.progress=false", "rounds=2", "num_clients=6", "clients_per_round=2", "local_epochs=1",
       "selection=pow_d", "selection.d=4")
OPTIONS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "conf" / "selection").glob("*.yaml"))


def test_pow_d_probes_its_candidates_and_a_recomputed_round_reuses_the_probe(run_cell_here, tmp_path,
                                                                             caplog) -> None:
    # Prepare: a finished pow-d cell whose round-2 checkpoint is then lost (a crash mid-write)
    caplog.set_level(logging.INFO, logger="fedsweep")
    row, history = run_cell_here(*POW, where="p")
    first = [r.getMessage() for r in caplog.records if "probed" in r.getMessage()]
    (cell_dir,) = (tmp_path / "p").iterdir()
    (cell_dir / "checkpoints" / "round-000002" / "model.safetensors").write_bytes(b"\x00" * 16)
    # Execute: the same cell again recomputes round 2
    again, _ = run_cell_here(*POW, where="p")
    # Assert: 4 candidates probed a round, 2 trained; round 2's probe came from the cache; the same
    # losses select the same clients, so the same bytes
    assert [(h["clients_probed"], h["clients_selected"]) for h in history] == [(4, 2), (4, 2)]
    reused = [r.getMessage() for r in caplog.records if "probed" in r.getMessage()]
    assert first == [] and reused == ["round 2: the losses of 4 probed client(s) were reused from an earlier run"]
    assert again["final_weights_sha256"] == row["final_weights_sha256"]


def test_cpow_d_probes_and_uniform_md_trains_once_per_distinct_client(run_cell_here) -> None:
    # Execute
    _, cpow = run_cell_here("runner.progress=false", "rounds=1", "num_clients=6", "clients_per_round=2",
                            "selection=cpow_d", "selection.b=4", where="c")
    _, md = run_cell_here("runner.progress=false", "rounds=2", "num_clients=4", "clients_per_round=4",
                          "selection=uniform_md", where="m")
    # Assert
    assert cpow[0]["clients_probed"] == 4 and cpow[0]["clients_selected"] == 2
    assert all(h["clients_probed"] == 0 and 1 <= h["clients_selected"] <= 4 for h in md)


@pytest.mark.slow
def test_every_selection_option_runs_two_rounds_through_the_command(tmp_path, prefect_home) -> None:
    import csv  # noqa: PLC0415

    from sweep_cli import run_sweep  # noqa: PLC0415

    # Execute: the quickstart with its strategy axis fixed and a selection axis of every option
    out = run_sweep(tmp_path, prefect_home, "+experiment=quickstart", "rounds=2", "num_clients=10", "strategy=fedavg",
                    "clients_per_round=3", "tracking.enabled=false", f"+grid.selection=[{','.join(OPTIONS)}]")
    # Assert: one finished cell per option, two committed rounds each
    with open(tmp_path / "outputs" / "quickstart" / "summary.csv") as summary:
        rows = list(csv.DictReader(summary))
    assert len(rows) == len(OPTIONS) >= 6, out[-3000:]
    assert all(row["status"] == "FINISHED" and row["rounds"] == "2" for row in rows), rows
    for cell in (tmp_path / "outputs" / "quickstart" / "cells").iterdir():
        assert (cell / "checkpoints" / "round-000002" / "MANIFEST.json").exists(), cell.name


@pytest.mark.slow
def test_rpow_d_state_survives_kill_9_bitwise(tmp_path, prefect_home) -> None:
    from sweep_cli import run_killed_once  # noqa: PLC0415

    args = ("runner.progress=false", "tracking.enabled=false", "rounds=5", "num_clients=8", "clients_per_round=2",
            "selection=rpow_d", "selection.d=4")
    # Execute
    clean = run_killed_once(tmp_path / "clean", prefect_home, *args, kill_after=None)
    killed = run_killed_once(tmp_path / "killed", prefect_home, *args, kill_after=2)
    # Assert: the same stored losses (some seen, finite), the same model bytes
    last = [c / "checkpoints" / "round-000005" for c in (clean, killed)]
    states = [load_file(str(d / "selection.safetensors")) for d in last]
    assert states[0]["loss"].isfinite().sum() >= 2
    assert (last[0] / "selection.safetensors").read_bytes() == (last[1] / "selection.safetensors").read_bytes()
    assert (last[0] / "model.safetensors").read_bytes() == (last[1] / "model.safetensors").read_bytes()
