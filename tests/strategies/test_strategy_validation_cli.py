"""Impossible strategy hyper-parameters: one line naming the key and the bound, nothing written.
Every case is checked in-process through the entry point's `check_command` (as
tests/test_validation_plan.py does); two also through the real command (exit status 2, one
`error:` line). Cross-group bounds (Krum, Multi-Krum, Bulyan against clients_per_round) come from the
classes' `check_config`; the rest from their constructors."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cli.main import check_command
from fedsweep.config import ConfigError

SWEEP = Path(__file__).resolve().parents[2] / "flows" / "sweep.py"

CASES: dict[str, tuple[list[str], list[str]]] = {
    "krum-f": (
        ["strategy=krum", "strategy.f=2", "clients_per_round=5"],
        ["strategy.f=2", "clients_per_round=5", "clients_per_round >= 2f + 3", "f <= 1"],
    ),
    "krum-f-in-grid": (
        ["+experiment=quickstart", "strategy=krum", "strategy.f=4"],
        ["strategy.f=4", "clients_per_round=10", "f <= 3"],
    ),
    "multikrum-m": (
        ["strategy=multikrum", "strategy.f=1", "strategy.m=5", "clients_per_round=5"],
        ["strategy.m=5 must be <= clients_per_round - f = 4"],
    ),
    "bulyan-f": (
        ["strategy=bulyan", "strategy.f=1", "clients_per_round=5"],
        ["strategy.f=1", "clients_per_round >= 4f + 3", "f <= 0"],
    ),
    "trimmed-beta": (["strategy=trimmedmean", "strategy.beta=0.5"], ["strategy.beta must be < 0.5"]),
    "fedadam-eta": (["strategy=fedadam", "strategy.eta=-0.1"], ["strategy.eta must be > 0 (got -0.1)"]),
    "fedyogi-beta2": (
        ["strategy=fedyogi", "strategy.beta2=1.0"],
        ["strategy.beta2 must be in [0, 1) (got 1.0)"],
    ),
    "fedadagrad-tau": (["strategy=fedadagrad", "strategy.tau=0"], ["strategy.tau must be > 0 (got 0)"]),
    "fedavgm-lr": (["strategy=fedavgm", "strategy.server_lr=0"], ["strategy.server_lr must be > 0 (got 0)"]),
    "fedavgm-momentum": (
        ["strategy=fedavgm", "strategy.momentum=1.0"],
        ["strategy.momentum must be in [0, 1)"],
    ),
    "qfedavg-q": (["strategy=qfedavg", "strategy.q=-1"], ["strategy.q must be >= 0 (got -1)"]),
}


THROUGH_THE_COMMAND = ("krum-f-in-grid", "fedadam-eta")  # a cross-group bound, a constructor's


@pytest.mark.parametrize("case", sorted(CASES))
def test_impossible_strategy_settings_are_refused_in_one_line(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    monkeypatch.chdir(tmp_path)
    argv, expected = CASES[case]
    # Execute
    with pytest.raises(ConfigError) as err:
        check_command(argv)
    # Assert
    assert "\n" not in str(err.value)
    for text in expected:
        assert text in str(err.value)
    assert list(tmp_path.iterdir()) == []


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CI": "true"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, str(SWEEP), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """The command-line cases run once, two at a time, each in its own empty folder."""
    folders = {case: tmp_path_factory.mktemp(case) for case in THROUGH_THE_COMMAND}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {case: pool.submit(run_cli, CASES[case][0], folders[case]) for case in THROUGH_THE_COMMAND}
        return {case: (futures[case].result(), folders[case]) for case in THROUGH_THE_COMMAND}


@pytest.mark.parametrize("case", THROUGH_THE_COMMAND)
def test_the_command_exits_2_with_one_error_line_and_writes_nothing(runs: dict, case: str) -> None:
    # Execute
    proc, cwd = runs[case]
    # Assert
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for text in CASES[case][1]:
        assert text in lines[0]
    assert list(cwd.iterdir()) == []
