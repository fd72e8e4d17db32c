"""Batched clients end to end through the sweep command on the CPU (`runner.batch_clients=4`): the
quickstart and bench presets killed with SIGKILL mid-run and run again end bitwise where an
uninterrupted run ends."""

from pathlib import Path

import pytest
from sweep_cli import recorded, run_killed_once, run_sweep

pytestmark = pytest.mark.slow
QUICKSTART = (
    "+experiment=quickstart",
    "strategy=fedprox",
    "num_clients=10",
    "rounds=3",
    "local_epochs=2",
    "runner.batch_clients=4",
    "runner.progress=false",
)
BENCH = (
    "+experiment=bench",
    "rounds=3",
    "num_clients=12",
    "clients_per_round=8",
    "dataset.samples_per_client=64",
    "dataset.test_samples=200",
    "runner.batch_clients=4",
    "runner.progress=false",
)


def finished(cwd: Path, experiment: str) -> dict[str, tuple[str, str]]:
    """Cells' (status, final_weights_sha256) as MLflow recorded them."""
    return {
        name: (run.info.status, run.data.tags.get("final_weights_sha256", ""))
        for name, (run, _, _) in recorded(cwd, experiment).items()
        if name != experiment
    }


@pytest.mark.parametrize(
    ("args", "sweep"), [(QUICKSTART, "quickstart"), (BENCH, "bench")], ids=["quickstart", "bench"]
)
def test_a_batched_sweep_killed_mid_run_resumes_bitwise(tmp_path_factory, prefect_home, args, sweep) -> None:
    # Prepare: the uninterrupted run
    reference = tmp_path_factory.mktemp("whole")
    run_sweep(reference, prefect_home, *args)
    # Execute: killed once its first round is committed, then the same command again
    victim = tmp_path_factory.mktemp("killed")
    cells = run_killed_once(victim, prefect_home, *args, kill_after=1, sweep=sweep)
    # Assert: the same final weights, from batch tasks
    want, got = finished(reference, sweep), finished(victim, sweep)
    assert got == want and all(status == "FINISHED" and sha for status, sha in got.values())
    assert len(cells) == 1
