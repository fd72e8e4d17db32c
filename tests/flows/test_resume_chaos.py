"""kill -9 at three distinct phases of one sweep (between rounds, during training, during a commit),
re-running the same command each time: the result is bitwise that of an uninterrupted run,
every kind of state included, MLflow holds one run per cell with one value per round, the killed
runs' flow runs are marked crashed, and nothing is left over.

One grid covers every kind of state a kill could lose, its cells side by side so that each kill
lands mid-run for all of them: the server optimiser's moments (FedAdam), per-client state
(SCAFFOLD, FedDyn, and the contract-checking Counting strategy of tests/flows/counting.py), partial
work (FedNova), the selectors that learn (Oort, rpow-d, clustered sampling by similarity, round
robin, the Counting selector) and the simulated clock (systems=fleet; its over-selection leaves
clients out of rounds, their state kept). The cells start one after another (each costs seconds of
CPU), so rounds are held back until the test lets them start (tests/flows/gate.py, an availability
model that changes nothing else): the first kill finds every cell after round 1, the next ones land
in round 2 or 3. The uninterrupted run is shared (`state_reference`, tests/flows/conftest.py) with
test_systems_sweep.py.
"""

import os
import random
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import torch
from gate import open_gate
from sweep_cli import STATE_GRID, STATE_ROUNDS, recorded, run_sweep, start_sweep

from fedsweep.checkpoint.storage import open_storage
from fedsweep.checkpoint.store import CheckpointStore
from fedsweep.rounds.report import QUIET_WHILE_CONSTANT, QUIET_WHILE_ZERO

pytestmark = pytest.mark.slow
SEED = int(os.environ.get("FEDSWEEP_CHAOS_SEED", "0"))
PLUG_INS = str(Path(__file__).parent)  # counting.py, gate.py
CELLS = ("avg", "adam", "scaffold", "dyn", "nova", "counting")  # the grid's labels (sweep_cli.STATE_GRID)
# Per-round metrics that are a pure function of the cell's inputs (not timings or memory).
SAME = (
    "accuracy",
    "loss",
    "clients_ok",
    "clients_failed",
    "clients_late",
    "sim_round_s",
    "sim_clock_s",
    "bytes_down",
    "bytes_up",
)


def _series(run, metrics: dict, name: str) -> list[float]:
    """A metric's value every round, however MLflow holds it: charted; a constant that never moved,
    as a tag; a counter that never left 0, nowhere."""
    values = dict(metrics.get(name, []))
    if not values and name in run.data.tags:
        return [float(run.data.tags[name])] * STATE_ROUNDS
    return [values.get(r, 0.0) for r in range(1, STATE_ROUNDS + 1)]


def _cells(cwd: Path) -> Path:
    return cwd / "outputs" / "chaos" / "cells"


def _committed(cwd: Path) -> dict[str, int]:
    """Cell folder -> its newest committed round (0: none)."""
    found: dict[str, int] = {c.name: 0 for c in _cells(cwd).glob("*")}
    for manifest in _cells(cwd).glob("*/checkpoints/round-*/MANIFEST.json"):
        cell = manifest.parents[2].name
        found[cell] = max(found[cell], int(manifest.parent.name.removeprefix("round-")))
    return found


def _committing(cwd: Path) -> set[Path]:
    """Round folders being written: files there, no manifest yet."""
    return {
        d
        for d in _cells(cwd).glob("*/checkpoints/round-*")
        if not (d / "MANIFEST.json").exists() and any(d.iterdir())
    }


def _processes_in(cwd: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cwd"]):
        if proc.info["cwd"] == str(cwd):
            found.append(proc)
    return found


def _survivors(cwd: Path, bound_s: float = 60.0) -> list[str]:
    """Processes still running in cwd once `bound_s` has passed (a slow death under load is
    waited for), each named by pid, state and command line."""
    deadline = time.monotonic() + bound_s
    while (left := _processes_in(cwd)) and time.monotonic() < deadline:
        psutil.wait_procs(left, timeout=0.2)
    named = []
    for proc in _processes_in(cwd):
        try:
            named.append(f"pid {proc.pid} ({proc.status()}): {' '.join(proc.cmdline())[:200]}")
        except psutil.Error:
            continue  # it died just now: a slow death, not a survivor
    return named


def _left_running(prefect_home: Path, cwd: Path) -> list[str]:
    """The flow runs of the sweep run in cwd that Prefect still shows as Running or Pending (the
    sweep's, named `<sweep>-<start>`, under the sweep's name)."""
    with sqlite3.connect(prefect_home / "prefect.db") as db:
        rows = db.execute(
            "SELECT name, tags FROM flow_run WHERE state_type IN ('RUNNING', 'PENDING')"
        ).fetchall()
    mine = [name for name, tags in rows if f'"fedsweep-dir:{cwd.resolve()}/outputs/' in tags]
    return sorted(re.sub(r"-\d{8}-\d{6}$", "", name) for name in mine)


def _wait(proc: subprocess.Popen, until, what: str, timeout_s: float = 900) -> None:
    """Poll `until()` every few milliseconds while the sweep runs; a generous bound."""
    deadline = time.monotonic() + timeout_s
    while not until():
        assert proc.poll() is None, f"the sweep ended ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout_s} s"
        time.sleep(0.005)


def _between_rounds(cwd: Path, proc: subprocess.Popen, rng: random.Random) -> str:
    """Every cell has committed round 1 and waits at round 2's gate."""
    _wait(proc, lambda: sorted(_committed(cwd).values()) == [1] * len(CELLS), "round 1 committed everywhere")
    return "between rounds (every cell after round 1)"


def _during_training(cwd: Path, proc: subprocess.Popen, rng: random.Random) -> str:
    """Once round 2's first client epochs are persisted, a seeded moment later."""
    training = "outputs/chaos/prefect-results/*/round-000002/c*"
    _wait(proc, lambda: any(cwd.glob(training)), "round 2's training")
    delay = rng.uniform(0.0, 1.0)
    time.sleep(delay)
    return f"during training ({delay:.2f} s into round 2)"


def _during_a_commit(cwd: Path, proc: subprocess.Popen, rng: random.Random) -> str:
    """While a round folder has files and no manifest yet (a leftover of the last kill does not
    count): the seeded k-th such commit seen; failing to see one before every cell waits at round 4's
    gate, just after the last commit."""
    torn, seen, skip = _committing(cwd), set(), rng.randrange(3)

    def caught() -> bool:
        seen.update(_committing(cwd) - torn)
        return len(seen) > skip or sorted(_committed(cwd).values()) == [3] * len(CELLS)

    _wait(proc, caught, "a commit in progress")
    return f"during a commit ({len(seen)} seen)" if len(seen) > skip else "after the last commit (none seen)"


# (what a kill waits for, the rounds the gate lets start meanwhile: gate.py)
PHASES = ((_between_rounds, 1), (_during_training, 2), (_during_a_commit, 3))


def _label(cell: str) -> str:
    """A cell folder's grid label (`<name>-<key>`, the name ending in the label)."""
    return cell.rsplit("-", 2)[-2]


def _final(cell: Path) -> tuple[dict, dict, dict[str, bytes]]:
    """The newest checkpoint's tensors, its client-state index, and the bytes of those client states."""
    latest = CheckpointStore(storage=open_storage(str(cell / "checkpoints"))).load_latest()
    assert latest is not None and latest.round == STATE_ROUNDS, cell.name
    index = latest.meta.get("client_states") or {}
    keys = [ref["key"] for ref in index.values() if ref]  # a client without state has none
    states = {key: (cell / "clients" / f"{key}.safetensors").read_bytes() for key in keys}
    return latest.tensors, index, states


def test_sigkill_at_three_phases_then_rerun_is_bitwise_identical(
    state_reference, tmp_path_factory, prefect_home
) -> None:
    # Prepare: the uninterrupted run (shared), and a folder for the killed ones
    reference = state_reference
    victim = tmp_path_factory.mktemp("killed")
    rng = random.Random(SEED)
    # Execute: kill -9 at each phase, each run resuming the previous one
    kills, resumed = [], []
    for trial, (phase, gate) in enumerate(PHASES):
        open_gate(victim, gate)
        with open(victim / f"trial-{trial}.log", "w") as log:
            proc = start_sweep(victim, prefect_home, *STATE_GRID, log=log, python_path=PLUG_INS)
            kills.append(phase(victim, proc, rng))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        survivors = _survivors(victim)
        assert survivors == [], f"still running a minute after the kill {kills[-1]}: {survivors}"
        resumed.append(_committed(victim))
        running = _left_running(prefect_home, victim)
        assert "chaos" in running, (kills, running)  # the killed run's flow runs: still Running
    open_gate(victim, STATE_ROUNDS)
    out = run_sweep(victim, prefect_home, *STATE_GRID, python_path=PLUG_INS)
    # Assert: every cell was killed mid-run at least once and resumed from a committed round
    said = out + "".join((victim / f"trial-{t}.log").read_text() for t in range(len(PHASES)))
    for cell in CELLS:
        found = [int(r) for r in re.findall(rf"resuming cell \S+-{cell} after round (\d+) of", said)]
        assert any(0 < r < STATE_ROUNDS for r in found), (cell, kills, resumed)
    # Assert: every tensor of every kind of state, and the client states' bytes, as uninterrupted
    cells = sorted(p.name for p in _cells(reference).iterdir())
    assert sorted(p.name for p in _cells(victim).iterdir()) == cells and len(cells) == len(CELLS)
    for name in cells:
        (want, want_index, want_states), (got, got_index, got_states) = (
            _final(_cells(where) / name) for where in (reference, victim)
        )
        assert got.keys() == want.keys() and got_index == want_index, (name, kills)
        for group in want:
            assert got[group].keys() == want[group].keys(), (name, group)
            for key, tensor in want[group].items():
                assert torch.equal(tensor, got[group][key]), f"{name} {group}.{key} after kills {kills}"
        assert got_states == want_states, (name, kills)
    stateful = {name for name in cells if _label(name) in ("adam", "scaffold", "dyn", "counting")}
    assert all(_final(_cells(victim) / name)[0]["server_state"] for name in stateful), stateful
    # Assert: MLflow, one finished run per cell, one value per round, the same values and hashes
    runs, want_runs = recorded(victim, "chaos"), recorded(reference, "chaos")
    assert sorted(runs) == sorted(want_runs) and len(runs) == len(CELLS) + 1
    for name, (run, metrics, _) in runs.items():
        assert run.info.status == "FINISHED", (name, kills)
        if name == "chaos":
            continue
        steps = list(range(1, STATE_ROUNDS + 1))
        # one value per round: every round for the metrics always charted, for a quiet one (a counter
        # at 0, a constant) the rounds from where it joined the charts
        charted = [k for k in SAME if k not in QUIET_WHILE_ZERO + QUIET_WHILE_CONSTANT]
        assert all([step for step, _ in metrics[k]] == steps for k in charted), (name, kills)
        assert all(
            [step for step, _ in history] == steps[steps.index(history[0][0]) :]
            for history in metrics.values()
        ), (name, kills, {k: [s for s, _ in h] for k, h in metrics.items()})
        want = want_runs[name]
        assert {k: _series(run, metrics, k) for k in SAME} == {k: _series(*want[:2], k) for k in SAME}, (
            name,
            kills,
        )
        assert run.data.tags["final_weights_sha256"] == want_runs[name][0].data.tags["final_weights_sha256"]
    # Assert: the re-run marked the killed runs' flow runs crashed; nothing left Running
    assert _left_running(prefect_home, victim) == [], kills
