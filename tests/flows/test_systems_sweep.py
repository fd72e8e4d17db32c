"""A simulated clock through the real sweep command: the per-round clock and traffic in MLflow, and
time to accuracy in the summary. Read from the uninterrupted run of sweep_cli.STATE_GRID
(systems=fleet, over-selection 0.4), shared with test_resume_chaos.py, which kills and resumes the
same sweep and checks that the clock resumes bitwise."""

import csv
import itertools

import pytest
from sweep_cli import STATE_ROUNDS, recorded

pytestmark = pytest.mark.slow
SIM = ("sim_round_s", "sim_clock_s", "clients_late")


def test_a_sweep_on_the_simulated_clock_records_it(state_reference) -> None:
    # Prepare: the uninterrupted run; its plain FedAvg cell (uniform selection, 3 clients a round)
    runs = recorded(state_reference, "chaos")
    # Execute
    run, metrics, _ = runs["fedavg-c6-r4-s0-avg"]
    with open(state_reference / "outputs" / "chaos" / "summary.csv") as f:
        rows = {row["cell"]: row for row in csv.DictReader(f)}
    # Assert: ceil(3 · 1.4) = 5 selected, 3 trained, 2 late; the clock adds up the rounds
    rounds = list(range(1, STATE_ROUNDS + 1))
    assert all([step for step, _ in metrics[name]] == rounds for name in SIM), sorted(metrics)
    assert [v for _, v in metrics["clients_late"]] == [2.0] * STATE_ROUNDS
    assert [v for _, v in metrics["clients_ok"]] == [3.0] * STATE_ROUNDS
    rounds_s = [v for _, v in metrics["sim_round_s"]]
    assert [v for _, v in metrics["sim_clock_s"]] == pytest.approx(list(itertools.accumulate(rounds_s)))

    # the traffic: a chart once it moves, else a tag of the run (its one value)
    def per_round(name: str) -> list[float]:
        if name in metrics:
            return [v for _, v in metrics[name]]
        return [float(run.data.tags[name])] * STATE_ROUNDS

    assert per_round("bytes_down") == pytest.approx([5 * b / 3 for b in per_round("bytes_up")], rel=1e-5)
    # Assert: the best cell reaches the target (0.9 × its own final accuracy) at a simulated time
    best = max(rows.values(), key=lambda row: float(row["final_accuracy"]))
    reached = int(best["rounds_to_target"])
    clock = dict(runs[best["cell"]][1]["sim_clock_s"])
    assert float(best["sim_s_to_target"]) == pytest.approx(clock[reached], abs=1e-4)
