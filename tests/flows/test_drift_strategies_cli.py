"""SCAFFOLD, FedNova and FedDyn through the real sweep command, side by side (one cell each,
`runner.parallel_cells=3`): a kill -9 once every cell has committed round 2 of 6, and the re-run
ends bitwise equal to an uninterrupted run (model, server state, every client's state)."""

import re
import signal
import time
from pathlib import Path

import pytest
import torch
from sweep_cli import start_sweep

from fedsweep.checkpoint.storage import open_storage
from fedsweep.checkpoint.store import CheckpointStore

pytestmark = pytest.mark.slow
STRATEGIES = ("scaffold", "fednova", "feddyn")
ROUNDS = 6


def _latest(cell_dir: Path):
    return CheckpointStore(storage=open_storage(str(cell_dir / "checkpoints"))).load_latest()


# Half the clients are stragglers that run part of their 15 local steps (in epoch-sized chunks), each
# chunk sleeping 0.1 s, so that a round lasts about a second and the kill lands mid-run. FedNova exists
# for such partial work; SCAFFOLD and FedDyn aggregate it too (aggregation.stragglers=partial).
ARGS = (
    "+experiment=quickstart",
    f"grid.strategy=[{','.join(STRATEGIES)}]",
    "grid.num_clients=[10]",
    f"rounds={ROUNDS}",
    "clients_per_round=5",
    "tracking.enabled=false",
    "runner.progress=false",
    "runner.parallel_cells=3",
    "faults=stragglers",
    "faults.fraction=0.5",
    "faults.delay_s=0.1",
    "local_epochs=null",
    "local_steps=15",
)


def committed(cwd: Path) -> dict[str, int]:
    """Cell folder -> rounds committed."""
    cells = cwd / "outputs" / "quickstart" / "cells"
    return (
        {c.name: len(list(c.glob("checkpoints/round-*/MANIFEST.json"))) for c in cells.iterdir()}
        if cells.exists()
        else {}
    )


def run(cwd: Path, prefect_home: Path, kill_after: int | None = None) -> tuple[str, dict[str, int]]:
    """(output, rounds committed per cell when killed) of the sweep, killed once and re-run if asked."""
    cwd.mkdir()
    proc = start_sweep(cwd, prefect_home, *ARGS)
    at_kill: dict[str, int] = {}
    if kill_after is not None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            at_kill = committed(cwd)
            if len(at_kill) == len(STRATEGIES) and min(at_kill.values()) >= kill_after:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        at_kill = committed(cwd)
        proc = start_sweep(cwd, prefect_home, *ARGS)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    return out, at_kill


def test_kill_9_after_round_2_then_rerun_is_bitwise_identical(tmp_path, prefect_home) -> None:
    # Execute
    out, _ = run(tmp_path / "clean", prefect_home)
    resumed, at_kill = run(tmp_path / "killed", prefect_home, kill_after=2)
    # Assert: every cell ran through the command; the kill landed mid-run; it resumed
    for strategy in STRATEGIES:
        assert re.search(rf"{strategy}-c10-r{ROUNDS}-s0\s+FINISHED", out), out[-3000:]
    assert sorted(n.rsplit("-", 1)[0] for n in at_kill) == sorted(f"{s}-c10-r{ROUNDS}-s0" for s in STRATEGIES)
    assert any(n < ROUNDS for n in at_kill.values()), at_kill
    assert re.search(r"resuming cell \S+ after round \d+ of \d+", resumed), resumed[-3000:]
    # Assert: every tensor of each cell's final checkpoint is the same as uninterrupted
    for name in at_kill:
        a, b = (
            _latest(tmp_path / where / "outputs" / "quickstart" / "cells" / name)
            for where in ("clean", "killed")
        )
        assert a.round == b.round == ROUNDS
        assert a.meta.get("client_states") == b.meta.get("client_states"), name
        assert a.tensors.keys() == b.tensors.keys()
        for part in a.tensors:
            assert a.tensors[part].keys() == b.tensors[part].keys(), (name, part)
            for key, tensor in a.tensors[part].items():
                assert torch.equal(tensor, b.tensors[part][key]), f"{name} {part}.{key}"
        if not name.startswith("fednova"):  # stateful: the server state is not empty
            assert a.tensors["server_state"], name
