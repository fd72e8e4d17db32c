"""A simulated clock through the real round loop (Prefect test harness, no MLflow): over-selection,
a simulated deadline, the per-round clock and traffic, and the clock across a resume."""

import pytest

from fedsweep.cell.cell import build_parts

# Every device alike (100 samples/s, 1000 B/s both ways): a client's duration is its samples / 100
# plus two model transfers, so the clients with fewer samples finish first.
FLEET = (
    "systems=fleet",
    "systems.speed._target_=fedsweep.systems.distributions.Constant",
    "~systems.speed.median",
    "~systems.speed.sigma",
    "+systems.speed.value=100",
)
for _link in ("down_bps", "up_bps"):
    FLEET += (
        f"systems.{_link}._target_=fedsweep.systems.distributions.Constant",
        f"~systems.{_link}.median",
        f"~systems.{_link}.sigma",
        f"+systems.{_link}.value=1000",
    )
BASE = ("runner.progress=false", "rounds=2", "num_clients=4", "clients_per_round=2", *FLEET)


def _durations(cell_config, *args: str) -> tuple[dict[int, float], int]:
    _, data, methods, fleet = build_parts(cell_config(*BASE, *args))
    seconds = [n / 100 + 2 * methods.model_bytes / 1000 for n in data.num_samples.tolist()]
    assert fleet.expected_seconds.tolist() == pytest.approx(seconds)
    return dict(enumerate(seconds)), methods.model_bytes


def test_over_selection_trains_the_first_k_to_finish(run_cell_here, cell_config) -> None:
    # Prepare: all 4 clients are selected (2 × (1 + 1.0)); the 2 fastest are trained
    seconds, model_bytes = _durations(cell_config)
    fastest = sorted(seconds, key=lambda c: (seconds[c], c))[:2]
    # Execute
    _, history = run_cell_here(*BASE, "systems.over_select=1.0")
    # Assert
    for h in history:
        assert (h["clients_selected"], h["clients_ok"], h["clients_late"], h["clients_failed"]) == (
            4,
            2,
            2,
            0,
        )
        assert h["sim_round_s"] == pytest.approx(max(seconds[c] for c in fastest))
        assert (h["bytes_down"], h["bytes_up"]) == (4 * model_bytes, 2 * model_bytes)
    assert history[1]["sim_clock_s"] == pytest.approx(2 * history[0]["sim_round_s"])


def test_clients_over_the_deadline_are_not_trained_and_fail_as_deadline(run_cell_here, cell_config) -> None:
    # Prepare: a deadline between the fastest and the slowest client; everyone is selected
    seconds, model_bytes = _durations(cell_config, "clients_per_round=4")
    ordered = sorted(seconds.values())
    deadline = (ordered[1] + ordered[2]) / 2
    # Execute
    _, history = run_cell_here(*BASE, "clients_per_round=4", f"systems.deadline_s={deadline}")
    # Assert: the two slower clients are cut, the round lasts until the deadline
    for h in history:
        assert (h["clients_ok"], h["failed_deadline"], h["clients_late"]) == (2, 2, 0)
        assert h["sim_round_s"] == pytest.approx(deadline)
        assert (h["bytes_down"], h["bytes_up"]) == (4 * model_bytes, 2 * model_bytes)


def test_the_simulated_clock_survives_a_resume_bitwise(run_cell_here, tmp_path) -> None:
    # Prepare: a finished 3-round cell, then its newest checkpoint lost (a crash mid-write)
    args = (*BASE, "rounds=3", "systems.over_select=0.5")
    row, history = run_cell_here(*args, where="x")
    (cell_dir,) = (tmp_path / "x").iterdir()
    (cell_dir / "checkpoints" / "round-000003" / "model.safetensors").write_bytes(b"\x00" * 16)
    # Execute
    again, resumed = run_cell_here(*args, where="x")
    # Assert: round 3 recomputed from round 2's history: the same clock and the same weights
    assert again["final_weights_sha256"] == row["final_weights_sha256"]
    assert [h["sim_clock_s"] for h in resumed] == [h["sim_clock_s"] for h in history]
    assert resumed[2]["sim_clock_s"] == pytest.approx(sum(h["sim_round_s"] for h in history))


def test_stragglers_from_the_system_model_do_what_fits_by_the_deadline(run_cell_here, cell_config) -> None:
    # Prepare: 2 local epochs; the deadline leaves every device 1.5 × the largest client's samples of
    # compute: clients above 3/4 of that size fit 1 epoch (FedProx's partial work) instead of being
    # cut, the others their 2
    args = ("clients_per_round=4", "local_epochs=2", "faults=stragglers", "+faults.from_systems=true")
    _, data, methods, _ = build_parts(cell_config(*BASE, *args))
    sizes, comm = data.num_samples.tolist(), 2 * methods.model_bytes / 1000
    deadline = 1.5 * max(sizes) / 100 + comm
    epochs = [2 if n <= 0.75 * max(sizes) else 1 for n in sizes]
    assert 1 in epochs and 2 in epochs, sizes
    # Execute
    _, history = run_cell_here(*BASE, *args, f"systems.deadline_s={deadline}")
    # Assert: nobody cut, everyone aggregated, the round as long as its slowest (partial) client
    for h in history:
        assert (h["failed_deadline"], h["clients_ok"]) == (0, 4)
        assert h["sim_round_s"] == pytest.approx(max(e * n / 100 for e, n in zip(epochs, sizes)) + comm)
