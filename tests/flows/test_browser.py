"""The two UIs a user opens after a sweep, in a real browser (headless Chromium driven by
Playwright): the Prefect UI shows the sweep, its cells and an artifact; the MLflow UI shows the
sweep's runs and a comparison plot. `.ci/run` installs Debian's chromium; without it the test skips
and says why. With FEDSWEEP_SCREENSHOTS=DIR the screenshots are kept there (the README's come so)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sweep_cli import QUICKSTART_CELLS, recorded, sweep_env

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CELLS = QUICKSTART_CELLS


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{url}: the server exited\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {timeout} s\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def uis(quickstart_sweep, prefect_home, tmp_path_factory):
    """The session's finished quickstart (tests/conftest.py), then the Prefect UI (a server with its UI
    on the sweep's Prefect database) and the MLflow UI (on its mlruns/): {"prefect": url, "mlflow":
    url, "cwd": path}."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does)")
    pytest.importorskip("playwright", reason="playwright is not installed (pip install -e '.[dev]')")
    cwd, _ = quickstart_sweep
    servers = tmp_path_factory.mktemp("uis")  # their working folder and logs: not the sweep's folder
    prefect_port, mlflow_port = _port(), _port()
    env = {
        **sweep_env(prefect_home),
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{prefect_port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    bin_dir = Path(sys.executable).parent
    commands = {
        "prefect": [
            str(bin_dir / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(prefect_port),
            "--no-services",  # the API and the UI only: the sweep is over
        ],
        "mlflow": [
            str(bin_dir / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}",
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
            "--workers",
            "1",
        ],
    }
    procs = {}
    for name, command in commands.items():
        log = servers / f"{name}-ui.log"
        procs[name] = (
            subprocess.Popen(
                command,
                cwd=servers,
                env=env,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            ),
            log,
        )
    try:
        _wait_up(f"http://127.0.0.1:{prefect_port}/api/health", *procs["prefect"])
        _wait_up(f"http://127.0.0.1:{mlflow_port}/health", *procs["mlflow"])
        yield {
            "prefect": f"http://127.0.0.1:{prefect_port}",
            "mlflow": f"http://127.0.0.1:{mlflow_port}",
            "cwd": cwd,
        }
    finally:
        for proc, _ in procs.values():
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def page(uis):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
        browser.close()


def _show(page, url: str | None, *texts: str, shot: str, timeout_ms: int = 60_000) -> str:
    """Open `url` (None: stay), wait until every text is on the page, keep a screenshot; the page's text."""
    if url:
        page.goto(url)
    for text in texts:
        page.get_by_text(text, exact=False).first.wait_for(timeout=timeout_ms)
    where = os.environ.get("FEDSWEEP_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(where) / shot))
    return page.inner_text("body")


def test_prefect_ui_shows_the_sweep_its_cells_and_their_artifacts(uis, page) -> None:
    # Execute / Assert: the runs page lists the sweep's flow run and a flow run per cell
    _show(page, f"{uis['prefect']}/runs", *CELLS, shot="prefect-runs.png")
    # Execute / Assert: the artifacts page lists the sweep's and the cells' artifacts
    body = _show(page, f"{uis['prefect']}/artifacts", "summary", shot="prefect-artifacts.png")
    assert all(cell in body for cell in CELLS), body[:3000]


def test_mlflow_ui_shows_the_runs_and_a_comparison_plot(uis, page) -> None:
    # Prepare
    runs = recorded(uis["cwd"], "quickstart")
    parent = next(run for run, _, _ in runs.values() if "mlflow.parentRunId" not in run.data.tags)
    exp = parent.info.experiment_id
    # Execute / Assert: the experiment's runs: the sweep's parent run, its cells once unfolded
    _show(page, f"{uis['mlflow']}/#/experiments/{exp}/runs", "quickstart #1", shot="mlflow-parent.png")
    page.locator("[role='row'] button[data-component-id*='runnamecellrenderer']").first.click()
    _show(page, None, *CELLS, shot="mlflow-runs.png")
    # Execute / Assert: the parent run's artifacts hold a plot, shown as an image
    page.goto(f"{uis['mlflow']}/#/experiments/{exp}/runs/{parent.info.run_id}/artifacts")
    page.get_by_text("plots", exact=True).first.click(timeout=60_000)
    page.get_by_text("accuracy_vs_round.png", exact=True).first.click(timeout=60_000)
    image = page.locator("img[src*='.png'], img[src^='blob:'], img[src^='data:']").first
    image.wait_for(timeout=60_000)
    assert image.evaluate("img => img.naturalWidth") > 100
    if os.environ.get("FEDSWEEP_SCREENSHOTS"):
        page.screenshot(path=str(Path(os.environ["FEDSWEEP_SCREENSHOTS"]) / "mlflow-plot.png"))
