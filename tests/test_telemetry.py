"""No telemetry on a first run: Prefect prints a notice on its first import in a terminal (and reports
usage) unless DO_NOT_TRACK is set, and MLflow reports usage unless MLFLOW_DISABLE_TELEMETRY (or
DO_NOT_TRACK=true) is set; the sweep command sets both unless the user did."""

import os
import pty
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTICE = "anonymous usage data"


def first_import_in_a_terminal(code: str, home: Path) -> str:
    """What `python -c code` prints on a terminal (a pty), Prefect's home new, outside CI."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CI", "DO_NOT_TRACK", "PYTEST_CURRENT_TEST") and not k.startswith(("GITHUB", "MLFLOW_"))
    }
    env.update(PREFECT_HOME=str(home), PYTHONPATH=str(REPO))
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=follower, stdout=follower, stderr=follower, env=env, cwd=REPO
    )
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the pty closed: the process ended
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=120)
    os.close(leader)
    return out.decode(errors="replace")


def test_the_sweep_command_silences_prefects_telemetry_notice(tmp_path: Path) -> None:
    # Execute: Prefect imported as the sweep command imports it, and (the control) bare
    ours = first_import_in_a_terminal("import cli.main, prefect; print('imported')", tmp_path / "a")
    bare = first_import_in_a_terminal("import prefect; print('imported')", tmp_path / "b")
    # Assert
    assert "imported" in ours and NOTICE not in ours, ours
    assert NOTICE in bare, bare  # what would be printed: the check above can fail


def test_the_sweep_command_turns_mlflows_usage_reports_off(tmp_path: Path) -> None:
    # Execute: MLflow imported after the sweep command's settings, and (the control) bare
    check = "import mlflow.telemetry.utils as t; print('disabled', t.is_telemetry_disabled())"
    ours = first_import_in_a_terminal(f"import cli.main; {check}", tmp_path / "a")
    bare = first_import_in_a_terminal(check, tmp_path / "b")
    # Assert
    assert "disabled True" in ours, ours
    assert "disabled False" in bare, bare  # what MLflow does outside CI: the check above can fail
