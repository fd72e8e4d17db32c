"""Resuming through the real round loop (Prefect test harness): fsspec locations, mid-round
recovery from persisted client epochs, and corrupt checkpoints."""

import uuid

import fsspec
import pytest

from fedsweep.checkpoint.storage import CheckpointError, open_storage
from fedsweep.checkpoint.store import CheckpointStore

BASE = ("runner.progress=false", "rounds=3", "num_clients=4", "clients_per_round=2", "local_epochs=2")


@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_state_can_live_at_an_fsspec_url(run_cell_here, tmp_path, scheme) -> None:
    # Prepare
    location = (
        f"memory://fedsweep-{uuid.uuid4().hex}" if scheme == "memory" else (tmp_path / "shared").as_uri()
    )
    # memory:// lives in one process, so its clients train in this one: compare like with like
    # (the number of intra-op threads changes the float rounding).
    args = (*BASE, "runner/engine=thread")
    reference, _ = run_cell_here(*args, where="local")
    # Execute
    row, history = run_cell_here(*args, location=location)
    again, _ = run_cell_here(*args, location=location)
    # Assert
    assert row["final_weights_sha256"] == reference["final_weights_sha256"] == again["final_weights_sha256"]
    assert [h["round"] for h in history] == [1, 2, 3]
    fs, root = fsspec.core.url_to_fs(location)
    assert any(path.endswith("MANIFEST.json") for path in fs.find(root))


def test_a_lost_round_is_recomputed_bitwise_from_the_previous_checkpoint(run_cell_here, tmp_path) -> None:
    # Prepare: a finished cell, then its newest checkpoint made unreadable (a crash mid-write)
    row, _ = run_cell_here(*BASE, where="x")
    (cell_dir,) = (tmp_path / "x").iterdir()
    store_dir = cell_dir / "checkpoints" / "round-000003"
    (store_dir / "model.safetensors").write_bytes(b"\x00" * 16)
    # Execute
    again, history = run_cell_here(*BASE, where="x")
    # Assert: fell back to round 2, recomputed round 3 to the same bytes
    assert again["final_weights_sha256"] == row["final_weights_sha256"]
    assert [h["round"] for h in history] == [1, 2, 3]


def test_no_valid_checkpoint_is_a_clear_error(run_cell_here, tmp_path) -> None:
    run_cell_here(*BASE, where="y")
    (cell_dir,) = (tmp_path / "y").iterdir()
    for manifest in (cell_dir / "checkpoints").glob("round-*/model.safetensors"):
        manifest.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="resume=false"):
        run_cell_here(*BASE, where="y")
    assert CheckpointStore(storage=open_storage(str(cell_dir / "checkpoints"))).committed_rounds()


def test_a_failed_commit_is_reported_and_its_round_resumes_from_persisted_client_epochs(
    run_cell_here, cell_config, tmp_path
) -> None:
    # Prepare: round 2's checkpoint cannot be written (a file sits where its folder must go)
    from fedsweep.grid import cell_key

    args = (*BASE, "rounds=2", "checkpoint.write_retries=1")
    checkpoints = tmp_path / "z" / cell_key(cell_config(*args)) / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "round-000002").write_text("in the way")
    # Execute: the cell fails truthfully at the end; then the obstacle goes and the same cell re-runs
    with pytest.raises(OSError):
        run_cell_here(*args, where="z")
    (checkpoints / "round-000002").unlink()
    row, history = run_cell_here(*args, where="z")
    reference, _ = run_cell_here(*args, where="clean")
    # Assert: round 2 was not recomputed, and the result is the uninterrupted one
    assert history[1]["tasks_reused"] == 2 * 2
    assert history[0]["round"] == 1 and len(history) == 2
    assert row["final_weights_sha256"] == reference["final_weights_sha256"]
