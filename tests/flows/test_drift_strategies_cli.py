"""SCAFFOLD, FedNova and FedDyn through the real sweep command: two rounds each, and a kill -9 after
round 2 of 5 whose re-run ends bitwise equal to an uninterrupted run (model, server state, every
client's state)."""

import re
import signal
import time
from pathlib import Path

import pytest
import torch
from sweep_cli import run_sweep, start_sweep

from fedsweep.checkpoint.storage import open_storage
from fedsweep.checkpoint.store import CheckpointStore

pytestmark = pytest.mark.slow
STRATEGIES = ("scaffold", "fednova", "feddyn")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_two_rounds_through_the_cli(tmp_path, prefect_home, strategy) -> None:
    # Execute
    out = run_sweep(tmp_path, prefect_home, "+experiment=quickstart", f"strategy={strategy}", "rounds=2",
                    "num_clients=10", "tracking.enabled=false", "runner.progress=false")
    # Assert
    assert f"{strategy}-c10-r2-s0  FINISHED" in out


def _latest(cell_dir: Path):  # noqa: ANN202
    return CheckpointStore(storage=open_storage(str(cell_dir / "checkpoints"))).load_latest()


# Every client epoch sleeps 0.1 s (stragglers that are only slow), so that a round lasts about a
# second and the kill lands between rounds 2 and 5. FedNova runs local_steps with stragglers' partial
# work (x of 15 steps, in epoch-sized chunks), which it exists for.
SLOW = ("faults=stragglers", "faults.fraction=1.0", "faults.partial=false", "faults.delay_s=0.1")
CASES = {
    "scaffold": (*SLOW,),
    "feddyn": (*SLOW,),
    "fednova": ("faults=stragglers", "faults.fraction=0.5", "faults.delay_s=0.1", "local_epochs=null",
                "local_steps=15"),
}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_kill_9_after_round_2_then_rerun_is_bitwise_identical(tmp_path, prefect_home, strategy) -> None:
    args = ("+experiment=quickstart", f"strategy={strategy}", "rounds=5", "num_clients=10", "clients_per_round=5",
            "tracking.enabled=false", "runner.progress=false", *CASES[strategy])

    def run(where: str, kill_after: int | None = None) -> tuple[Path, str]:
        cwd = tmp_path / where
        cwd.mkdir()
        proc = start_sweep(cwd, prefect_home, *args)
        if kill_after is not None:
            deadline = time.monotonic() + 300
            manifests = lambda: list(cwd.glob("outputs/quickstart/cells/*/checkpoints/round-*/MANIFEST.json"))  # noqa: E731
            while len(manifests()) < kill_after and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            assert proc.poll() is None, "the run ended before the kill"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = start_sweep(cwd, prefect_home, *args)
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
        (cell_dir,) = (cwd / "outputs" / "quickstart" / "cells").iterdir()
        return cell_dir, out

    # Execute
    clean, _ = run("clean")
    killed, out = run("killed", kill_after=2)
    # Assert: it resumed, and every tensor of the final checkpoint is the same
    assert re.search(r"resuming cell \S+ after round \d+ of \d+", out), out[-3000:]
    a, b = _latest(clean), _latest(killed)
    assert a.round == b.round == 5
    assert a.meta.get("client_states") == b.meta.get("client_states")
    assert a.tensors.keys() == b.tensors.keys()
    for part in a.tensors:
        assert a.tensors[part].keys() == b.tensors[part].keys(), part
        for name, tensor in a.tensors[part].items():
            assert torch.equal(tensor, b.tensors[part][name]), f"{part}.{name}"
    if strategy != "fednova":  # stateful: the server state is not empty
        assert a.tensors["server_state"]
