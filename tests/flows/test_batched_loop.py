"""Batched clients through the real round loop (Prefect test harness, no MLflow): the same retries and
failures as one by one (faults are drawn from the same coordinates), stragglers' partial work,
local_steps, granularity=client, a hung client under a round deadline."""

import pytest

from fedsweep.failures import FAILURE_KINDS

BASE = ("runner.progress=false", "rounds=3", "num_clients=6", "clients_per_round=6", "runner.retry_delay_s=0")
COUNTS = (
    "clients_selected",
    "clients_ok",
    "clients_failed",
    "retries",
    *(f"failed_{k}" for k in FAILURE_KINDS),
)


def same_story(one: list[dict], batched: list[dict]) -> None:
    """Round by round: the same counts of clients, failures and retries, accuracy within rounding."""
    assert [{k: h[k] for k in COUNTS} for h in batched] == [{k: h[k] for k in COUNTS} for h in one]
    for a, b in zip(one, batched, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3)
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3, nan_ok=True)


@pytest.mark.parametrize(
    "setting",
    [
        (
            "+experiment=failures",
            "num_clients=4",
            "clients_per_round=4",
            "rounds=4",
        ),  # transient + a node down
        ("faults=stragglers", "faults.fraction=0.5", "local_epochs=3", "strategy=fedprox"),  # partial work
        ("local_epochs=null", "local_steps=7", "strategy=scaffold", "partition=dirichlet"),  # unequal chunks
        ("faults=permanent", "faults.clients=[1]", "strategy=feddyn", "runner.granularity=client"),
    ],
    ids=["failures", "stragglers", "local_steps", "permanent"],
)
def test_a_batched_cell_tells_the_same_story_as_one_by_one(run_cell_here, setting) -> None:
    # Execute
    _, one = run_cell_here(*BASE, *setting, where="one")
    _, batched = run_cell_here(*BASE, *setting, "runner.batch_clients=4", where="batched")
    # Assert (a batched run's bitwise replay is tests/flows/test_batched_sweep.py's)
    same_story(one, batched)
    assert not any("gpu_mem_mb" in h for h in batched)  # a CUDA metric only


def test_a_hung_member_is_cut_by_the_round_deadline_and_the_others_aggregated(run_cell_here) -> None:
    _, history = run_cell_here(
        *BASE,
        "rounds=2",
        "faults=hang",
        "faults.p=1.0",
        "faults.seconds=60",
        "faults.clients=[2]",
        "aggregation.round_timeout_s=20",
        "runner.batch_clients=3",
    )
    assert [h["failed_deadline"] for h in history] == [1, 1]
    assert [h["clients_ok"] for h in history] == [5, 5]
