"""`runner.batch_clients=N` for a model that cannot batch: one `error:` line, exit 2, nothing written."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_model_with_batchnorm_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    # Execute
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "flows" / "sweep.py"),
            "+experiment=bench",
            "model=resnet18",
            "dataset.samples_per_client=8",
            "dataset.test_samples=16",
            "runner.batch_clients=4",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
    )
    # Assert
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: runner.batch_clients=4: ")
    assert "BatchNorm2d" in lines[0] and "runner.batch_clients=off" in lines[0]
    assert list(tmp_path.iterdir()) == []
