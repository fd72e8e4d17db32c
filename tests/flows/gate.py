"""An availability model for tests that holds rounds back until the test lets them start, so that a
kill lands where the test wants it (every cell between two rounds, say) whatever the machine's load.

Every client is online, as with `Always`, so the results are those of `systems.availability: Always`
bit for bit; but round r >= 2 of any cell waits (in the sweep's process, as the round is planned)
until the file `gate` in the sweep's working folder holds a number >= r. No file: rounds 2 on wait.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from fedsweep.systems.availability import Always

GATE = Path("gate")


def open_gate(cwd: Path, up_to: int) -> None:
    """Let the sweep run in `cwd` start rounds up to `up_to`."""
    (cwd / "gate.tmp").write_text(str(up_to))
    (cwd / "gate.tmp").replace(cwd / GATE)


def _open_up_to() -> int:
    try:
        return int(GATE.read_text())
    except (OSError, ValueError):
        return 1


@dataclass(frozen=True)
class Gated(Always):
    """Every client, every round, once the test has opened the round's gate."""

    def online(self, *, seed: int, round: int, num_clients: int) -> torch.Tensor:
        while _open_up_to() < round:
            time.sleep(0.02)
        return super().online(seed=seed, round=round, num_clients=num_clients)
