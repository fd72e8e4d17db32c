"""The Prefect server shared by a user's sweeps (server/shared.py, server/process.py):
found by a second user, a stale state file replaced, another Prefect version left alone, and the
server gone once no sweep has held its lease for the idle timeout."""

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import server.private as server
import server.shared as shared_server
from fedsweep.config import ConfigError


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """A runtime folder and a Prefect database of the test's own, a 2 s idle timeout."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv(shared_server.MODE_VARIABLE, raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(shared_server.RUNTIME_VARIABLE, str(tmp_path / "run"))
    monkeypatch.setenv(shared_server.IDLE_VARIABLE, "2")
    return tmp_path / "run"


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_stale_file_is_replaced_the_server_is_shared_and_it_exits_when_idle(isolated) -> None:
    # Prepare: a state file left by a server that died (kill -9: it could not delete it)
    files = shared_server.ServerFiles.of(shared_server.runtime_dir())
    stale = {
        "pid": dead_pid(),
        "port": 1,
        "url": "http://127.0.0.1:1/api",
        "prefect": shared_server.prefect_version(),
    }
    files.state.write_text(json.dumps(stale))
    # Execute: the first user starts a server, a second one finds it
    first = server._shared()
    first.wait_ready()
    second = server._shared()
    second.wait_ready()
    state = json.loads(files.state.read_text())
    # Assert: one server, named by the replaced state file, answering
    assert isinstance(first, server.SharedServer) and isinstance(second, server.SharedServer)
    assert first.pid == second.pid == state["pid"] != stale["pid"] and first.url == second.url == state["url"]
    assert shared_server.answers(state["url"], shared_server.prefect_version())
    # Execute: a live server of another Prefect version on this database
    files.state.write_text(json.dumps({**state, "prefect": "0.0.1"}))
    other_version = shared_server.find_or_start(files)
    files.state.write_text(json.dumps(state))
    # Assert: not used, not replaced: this sweep would take a private server
    assert other_version is None and psutil.pid_exists(state["pid"])
    # Execute: leases held past the idle timeout, then released (a sweep's exit, or its kill -9)
    time.sleep(4)
    alive_while_held = psutil.pid_exists(state["pid"])
    first.stop(idle_wait_s=0)
    second.stop(idle_wait_s=0)
    process = psutil.Process(state["pid"])
    # Assert: it waited for its users, then went, taking its state file with it
    process.wait(timeout=60)
    assert alive_while_held and not files.state.exists()
    assert "no sweep for 2 s: stopping" in files.log.read_text()


def test_a_private_server_is_forced_by_the_variable(isolated, monkeypatch) -> None:
    # Prepare
    monkeypatch.setenv(shared_server.MODE_VARIABLE, "private")
    # Execute
    found = server._shared()
    # Assert: no shared server, no state file (the caller starts a private LocalServer)
    assert found is None and not list(isolated.glob("*.json"))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (shared_server.MODE_VARIABLE, "public"),
        (shared_server.IDLE_VARIABLE, "0"),
        (shared_server.IDLE_VARIABLE, "soon"),
    ],
)
def test_a_wrong_setting_is_one_error_naming_the_variable(monkeypatch, name, value) -> None:
    # Prepare
    monkeypatch.setenv(name, value)
    # Execute
    with pytest.raises(ConfigError) as err:
        shared_server.check_settings()
    # Assert
    assert err.value.key == name and str(err.value).startswith(f"{name}={value}: expected")


def test_a_runtime_folder_others_can_write_is_not_used(tmp_path, monkeypatch) -> None:
    # Prepare
    folder = tmp_path / "open"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    monkeypatch.setenv(shared_server.RUNTIME_VARIABLE, str(folder))
    # Execute / Assert
    assert shared_server.runtime_dir() is None
