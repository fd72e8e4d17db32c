"""Impossible selector settings are refused before any work: one line naming the key (in-process
through the command's own check), and FedCS without a system model exits 2 from the real command."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import check_command
from fedsweep.config import ConfigError

SWEEP = Path(__file__).resolve().parents[2] / "flows" / "sweep.py"

REFUSED: list[tuple[list[str], str]] = [
    (
        ["selection=oort", "selection.exploration_factor=2"],
        "selection.exploration_factor must be in [0, 1] (got 2)",
    ),
    (["selection=oort", "selection.pacer_step=0"], "selection.pacer_step must be an integer >= 1 (got 0)"),
    (["selection=oort", "selection.round_threshold=120"], "selection.round_threshold must be a percentile"),
    (["selection=active_fl", "selection.alpha3=1.5"], "selection.alpha3 must be in [0, 1] (got 1.5)"),
    (["selection=active_fl", "selection.alpha1=1"], "selection.alpha1 must be in [0, 1)"),
    (["selection=fedcs"], "selection: FedCS needs a system model with a round deadline"),
    (["selection=clustered_similarity", "selection.sketch_dim=0"], "selection.sketch_dim must be > 0, got 0"),
    (["selection=clustered_similarity", "selection.similarity=l1"], "selection.similarity"),
    (["selection=divfl", "selection.sketch_dim=-3"], "selection.sketch_dim must be > 0, got -3"),
]


@pytest.mark.parametrize(("argv", "expected"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_refused_in_one_line_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], expected: str
) -> None:
    # Prepare
    monkeypatch.chdir(tmp_path)
    # Execute
    with pytest.raises(ConfigError) as err:
        check_command(argv)
    # Assert
    assert "\n" not in str(err.value) and expected in str(err.value), str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_fedcs_without_a_system_model_exits_2_with_one_line(tmp_path: Path) -> None:
    # Execute
    env = {**os.environ, "CI": "true"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run(
        [sys.executable, str(SWEEP), "+experiment=quickstart", "selection=fedcs"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    # Assert
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: selection: FedCS needs a system model"), lines
    assert list(tmp_path.iterdir()) == []
