"""Selectors through the real round loop: power-of-choice's probe task (cached: a recomputed round
reuses it and selects the same); cpow-d's probes and MD sampling in the loop."""

import logging

POW = (
    "runner.progress=false",
    "rounds=2",
    "num_clients=6",
    "clients_per_round=2",
    "local_epochs=1",
    "selection=pow_d",
    "selection.d=4",
)


def test_pow_d_probes_its_candidates_and_a_recomputed_round_reuses_the_probe(
    run_cell_here, tmp_path, caplog
) -> None:
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
    assert first == [] and reused == [
        "round 2: the losses of 4 probed client(s) were reused from an earlier run"
    ]
    assert again["final_weights_sha256"] == row["final_weights_sha256"]


def test_cpow_d_probes_and_uniform_md_trains_once_per_distinct_client(run_cell_here) -> None:
    # Execute
    _, cpow = run_cell_here(
        "runner.progress=false",
        "rounds=1",
        "num_clients=6",
        "clients_per_round=2",
        "selection=cpow_d",
        "selection.b=4",
        where="c",
    )
    _, md = run_cell_here(
        "runner.progress=false",
        "rounds=2",
        "num_clients=4",
        "clients_per_round=4",
        "selection=uniform_md",
        where="m",
    )
    # Assert
    assert cpow[0]["clients_probed"] == 4 and cpow[0]["clients_selected"] == 2
    assert all(h["clients_probed"] == 0 and 1 <= h["clients_selected"] <= 4 for h in md)
