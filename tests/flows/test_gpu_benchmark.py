"""benchmarks/gpu.py at CPU sizes: both parts run and the table comes last (its sweep uses the test
session's Prefect server, as the suite's other sweeps do)."""

import json
import subprocess
import sys
from pathlib import Path

from sweep_cli import REPO, sweep_env


def test_gpu_benchmark_smoke_on_the_cpu(tmp_path: Path, prefect_home: Path) -> None:
    # Execute: two and three clients of 16 samples; one tiny batched bench sweep of 2 rounds
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "gpu.py"),
            "--device",
            "cpu",
            "--clients",
            "2,3",
            "--models",
            "cnn_small",
            "--samples-per-client",
            "16",
            "--repeats",
            "1",
            "--sweep-rounds",
            "2",
            "--sweep-size",
            "6,3,16",
            "--sweeps",
            "batched",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        env={**sweep_env(prefect_home), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Assert
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    tail = done.stdout.rstrip().splitlines()
    assert tail[-1].startswith("| bare GPU loop |") and any(
        line.startswith("| cnn_small | 3 |") for line in tail
    )
    rows = json.loads(out.read_text())["rows"]
    part1 = [r for r in rows if r["part"] == 1]
    assert [r["clients"] for r in part1] == [2, 3] and all(r["agreement"] < 1e-5 for r in part1)
    assert {r["side"] for r in rows if r["part"] == 2} == {"fedsweep batched", "bare GPU loop"}
