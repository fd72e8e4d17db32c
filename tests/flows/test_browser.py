"""The two UIs a user opens after a sweep, in a real browser (headless Chromium driven by
Playwright): the Prefect UI shows the sweep, its cells and an artifact; the MLflow UI (`python
cli/ui.py`) opens, in a fresh browser, from its home page's list of experiments onto the sweep's runs
table, its cells and their final accuracy shown, and has the comparison plots. `.ci/run` installs
Debian's chromium; without it the test skips and says why. With FEDSWEEP_SCREENSHOTS=DIR the
screenshots are kept there (the README's come so)."""

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

# exclusive: the UIs' pages load within the browser's timeouts when no sweep runs beside them
pytestmark = [pytest.mark.slow, pytest.mark.exclusive]
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
            sys.executable,
            str(Path(__file__).resolve().parents[2] / "cli" / "ui.py"),
            "--backend-store-uri",
            f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}",
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
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
def browser(uis):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser):
    """A page of a fresh browser: nothing in its storage, as a user's first visit."""
    return browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()


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


def test_mlflow_ui_opens_the_experiment_on_its_runs_and_shows_a_comparison_plot(uis, page) -> None:
    # Prepare
    runs = recorded(uis["cwd"], "quickstart")
    parent = next(run for run, _, _ in runs.values() if "mlflow.parentRunId" not in run.data.tags)
    exp = parent.info.experiment_id
    final = f"{runs[CELLS[0]][0].data.metrics['final_accuracy']:.4f}"
    # Execute: as a user does, from the home page's list of experiments
    _show(page, f"{uis['mlflow']}/", "Experiments", shot="mlflow-home.png")
    page.get_by_role("link", name="quickstart", exact=True).first.click(timeout=60_000)
    # Assert: the experiment's runs, its cells unfolded under the sweep's run, their final accuracy
    body = _show(page, None, "quickstart #1", *CELLS, "final_accuracy", final[:5], shot="mlflow-runs.png")
    assert f"/experiments/{exp}" in page.url and "Traces\n0" not in body, (page.url, body[:2000])
    # Execute / Assert: the parent run's artifacts hold a plot, shown as an image
    page.goto(f"{uis['mlflow']}/#/experiments/{exp}/runs/{parent.info.run_id}/artifacts")
    page.get_by_text("plots", exact=True).first.click(timeout=60_000)
    page.get_by_text("accuracy_vs_round.png", exact=True).first.click(timeout=60_000)
    image = page.locator("img[src*='.png'], img[src^='blob:'], img[src^='data:']").first
    image.wait_for(timeout=60_000)
    assert image.evaluate("img => img.naturalWidth") > 100
    if os.environ.get("FEDSWEEP_SCREENSHOTS"):
        page.screenshot(path=str(Path(os.environ["FEDSWEEP_SCREENSHOTS"]) / "mlflow-plot.png"))


def test_plain_mlflow_ui_would_open_the_genai_view(uis, browser) -> None:
    """The control: in a fresh browser, MLflow's own page (without cli/ui.py's defaults) opens the
    experiment in its GenAI view, whatever the experiment's tags say: the defaults are what moves it."""
    # Prepare: another fresh browser, served index.html as plain `mlflow ui` serves it
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()

    def plain(route) -> None:
        response = route.fetch()
        route.fulfill(response=response, body=_without_script(response))

    page.route(f"{uis['mlflow']}/", plain)
    # Execute
    page.goto(f"{uis['mlflow']}/")
    page.get_by_role("link", name="quickstart", exact=True).first.click(timeout=60_000)
    page.get_by_text("Overview", exact=True).first.wait_for(timeout=60_000)
    body = page.inner_text("body")
    # Assert
    assert "Traces" in body and "final_accuracy" not in body, body[:2000]


def _without_script(response) -> str:
    """MLflow's index.html as plain `mlflow ui` sends it: cli/ui.py's script taken out."""
    text = response.text()
    start = text.find("<script>(function(){try{var s=window.localStorage;")
    return text if start < 0 else text[:start] + text[text.index("</script>", start) + len("</script>") :]
