"""What a sweep says: a cell failing for a known reason ends with its one line (no traceback), and
leaves nothing in prefect-results that the next run's guard would call untrusted."""

import pytest
from sweep_cli import start_sweep

from server.untrusted import guard_results

pytestmark = pytest.mark.slow
ARGS = (
    "+experiment=quickstart",
    "sweep_name=talk",
    "strategy=fedavg",
    "num_clients=10",
    "rounds=2",
    "runner.progress=false",
    "tracking.enabled=false",  # what is said, not what MLflow records
)


def run(cwd, prefect_home, *args: str) -> tuple[int, str]:
    proc = start_sweep(cwd, prefect_home, *args)
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out


def test_known_failures_end_with_one_line_and_leave_no_pickle(tmp_path, prefect_home) -> None:
    # Prepare: a finished cell whose every kept checkpoint is then damaged
    assert run(tmp_path, prefect_home, *ARGS)[0] == 0
    for path in tmp_path.glob("outputs/talk/cells/*/checkpoints/round-*/model.safetensors"):
        path.write_bytes(b"damaged")
    # Execute: that cell again, and a cell whose aggregation policy fails in round 1
    corrupt = run(tmp_path, prefect_home, *ARGS)
    policy = run(
        tmp_path,
        prefect_home,
        *ARGS,
        "aggregation.min_fit=10",
        "aggregation.on_insufficient=fail",
        "faults=transient",
        "faults.p=0.9",
        "runner.retries=0",
    )
    # Assert
    for (code, out), reason in (
        (corrupt, "CheckpointError: no valid checkpoint"),
        (policy, "CellFailed: round 1"),
    ):
        assert code == 1, out[-3000:]
        assert "Traceback" not in out and "Error executing job" not in out, out[-3000:]
        lines = [line for line in out.splitlines() if "failed: " in line and line.startswith("cell ")]
        assert len(lines) == 1 and reason in lines[0], out[-3000:]
    left = guard_results(tmp_path / "outputs" / "talk" / "prefect-results")  # what the next run finds
    assert left and {reason for _, reason in left} == {"the exception record of a failed task"}, left
