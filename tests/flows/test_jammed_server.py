"""A sweep whose Prefect server refuses every request for a while (503 without Retry-After, as a busy
server of the user's own answers; Prefect's client then backs off 2, 4, 8, ... s) keeps training and
printing: the terminal says records are delayed and why, a cell whose flow run cannot start trains
under the sweep's, rounds are committed during the jam, no silence over 10 s once it began, and the
cells end with the hashes of the same sweep run beside it on the healthy server."""

import os
import threading
import time

import pytest
from jammed import JammedApi
from sweep_cli import recorded, start_sweep

pytestmark = pytest.mark.slow
ARGS = ("+experiment=quickstart", "sweep_name=jam", "rounds=3", "num_clients=10", "+grid.seed=[0,1]")
JAM_S = 12.0


def hashes(cwd) -> dict[str, str]:
    cells = {name: run for name, (run, _, _) in recorded(cwd, "jam").items() if name != "jam"}
    return {name: run.data.tags["final_weights_sha256"] for name, run in cells.items()}


def test_a_jammed_server_delays_records_not_training(tmp_path, prefect_home, prefect_harness) -> None:
    from prefect.settings import PREFECT_API_URL

    # Prepare: a proxy in front of the session's server; the same sweep beside it on the server itself
    proxy = JammedApi(PREFECT_API_URL.value())
    healthy, jammed = tmp_path / "healthy", tmp_path / "jammed"
    healthy.mkdir()
    jammed.mkdir()
    log = (tmp_path / "healthy.log").open("w")
    reference = start_sweep(healthy, prefect_home, *ARGS, api_url=PREFECT_API_URL.value(), log=log)
    # Execute: jam the server once the first round is committed
    proc = start_sweep(jammed, prefect_home, *ARGS, api_url=proxy.url)
    lines: list[tuple[float, str]] = []

    def read() -> None:
        fd, pending = proc.stdout.fileno(), b""
        while data := os.read(fd, 65536):
            pending += data.replace(b"\r", b"\n")
            *done, pending = pending.split(b"\n")
            lines.extend((time.monotonic(), line.decode(errors="replace")) for line in done if line.strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    commits = "outputs/jam/cells/*/checkpoints/round-*/MANIFEST.json"
    until = time.monotonic() + 300
    while not list(jammed.glob(commits)):
        assert proc.poll() is None and time.monotonic() < until, "".join(line for _, line in lines)[-3000:]
        time.sleep(0.02)
    proxy.jam(JAM_S)
    jam_began, before = time.monotonic(), len(list(jammed.glob(commits)))
    while proxy.jammed():
        time.sleep(0.1)
    during = len(list(jammed.glob(commits))) - before
    code = proc.wait(timeout=300)
    ended = time.monotonic()
    reader.join(10)
    proxy.stop()
    out = "\n".join(line for _, line in lines)
    # Assert: it finished, said why records were late, and trained on meanwhile
    assert code == 0, out[-4000:]
    assert proxy.refused > 0 and "records delayed: Prefect server busy (HTTP 503" in out, out[-4000:]
    assert during > 0, f"no round was committed during the {JAM_S:g} s jam"
    times = [jam_began] + [t for t, _ in lines if t > jam_began] + [ended]
    silence = max(b - a for a, b in zip(times, times[1:], strict=False))
    assert silence <= 10.0, f"silent for {silence:.1f} s during or after the jam:\n{out[-4000:]}"
    assert "Traceback" not in out, out[-4000:]
    # Assert: the same weights as on the healthy server
    assert reference.wait(timeout=300) == 0, (tmp_path / "healthy.log").read_text()[-3000:]
    assert hashes(jammed) == hashes(healthy) and len(hashes(healthy)) == 4
