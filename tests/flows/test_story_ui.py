"""What the Prefect UI and MLflow show of a sweep: one tiny quickstart (2 cells × 2 rounds, the
session's `quickstart_sweep`) run against a real Prefect server, read back through Prefect's API and
MlflowClient as the UIs read it. What a re-run shows: test_finished_sweep.py."""

import json
import re
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sweep_cli import QUICKSTART_CELLS, recorded

from fedsweep.plots import CellCurve, sweep_figures
from flows.artifacts import failures_text, mlflow_where
from flows.view import artifact_key, short_config, sweep_artifact_key
from tasks.track import param_key

CELLS = QUICKSTART_CELLS
PNG = b"\x89PNG\r\n\x1a\n"


def flow_runs(cwd: Path) -> list[Any]:
    """The flow runs of the sweep folder under cwd (by the tag every fedsweep flow run carries)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.client.schemas.sorting import FlowRunSort

    tag = f"fedsweep-dir:{(cwd / 'outputs' / 'quickstart').resolve()}"
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])),
            sort=FlowRunSort.START_TIME_ASC,
            limit=50,
        )


def logs_and_tasks(run_ids: list[Any]) -> tuple[list[Any], list[Any]]:
    """(logs, task runs) of these flow runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import TaskRunSort

    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids)), limit=200, offset=0
        )
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)),
            limit=200,
            sort=TaskRunSort.NAME_ASC,
        )
    return logs, tasks


def latest_artifacts(keys: list[str]) -> dict[str, Any]:
    """{key: its latest artifact}, as the UI's Artifacts page shows them. Through the REST route
    itself: Prefect 3.8's client (and `Artifact.get`) sends unset filters as null, which its server
    refuses with 422."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import Artifact

    with get_client(sync_client=True) as client:
        body = {"artifacts": {"key": {"any_": keys}}, "sort": "UPDATED_DESC", "limit": 200}
        found = Artifact.model_validate_list(client.request("POST", "/artifacts/filter", json=body).json())
    latest: dict[str, Any] = {}
    for artifact in found:
        latest.setdefault(artifact.key, artifact)
    return latest


@pytest.fixture(scope="module")
def swept(quickstart_sweep, prefect_harness) -> tuple[Path, dict[str, Any]]:
    """The session's finished quickstart (tests/conftest.py), read through the session's Prefect
    server (the one it ran against) and MLflow: (its folder, its MLflow runs)."""
    cwd, _ = quickstart_sweep
    return cwd, recorded(cwd, "quickstart")


@pytest.mark.slow
def test_flow_runs_are_named_and_tagged_by_sweep_and_cell(swept) -> None:
    # Execute
    runs = {run.name: run for run in flow_runs(swept[0])}
    # Assert
    sweep = [name for name in runs if name.startswith("quickstart-")]
    assert len(sweep) == 1 and re.fullmatch(r"quickstart-\d{8}-\d{6}", sweep[0]), sorted(runs)
    assert set(runs) == {*CELLS, sweep[0]}
    assert "experiment:quickstart" in runs[sweep[0]].tags
    for name in CELLS:
        tags = set(runs[name].tags)
        assert {
            f"strategy:{name.split('-')[0]}",
            "selection:uniform",
            "dataset:synthetic",
            "partition:natural",
            "experiment:quickstart",
            "clients:10",
        } <= tags, tags
        assert runs[name].parent_task_run_id is not None  # a subflow of the sweep
        assert runs[name].state.is_completed()


@pytest.mark.slow
def test_parameters_are_the_cells_name_key_and_short_config(swept) -> None:
    # Execute
    runs = {run.name: run for run in flow_runs(swept[0])}
    # Assert: a cell shows its name, key and short config, not its expanded config or params
    for name in CELLS:
        cell = runs[name].parameters["cell"]
        assert set(cell) == {"name", "key", "config"} and cell["name"] == name
        assert cell["config"]["strategy"] == name.split("-")[0] and cell["config"]["num_clients"] == 10
        assert cell["config"]["rounds"] == 2 and "dataset.alpha" not in cell["config"]
    sweep = next(run for run in runs.values() if run.name.startswith("quickstart-"))
    assert [c["name"] for c in sweep.parameters["sweep"]["cells"]] == list(CELLS)
    assert len(json.dumps(sweep.parameters)) < 3000, len(json.dumps(sweep.parameters))


@pytest.mark.slow
def test_cells_log_their_rounds_and_no_task_state_chatter(swept) -> None:
    # Prepare
    runs = {run.name: run for run in flow_runs(swept[0])}
    # Execute
    logs, tasks = logs_and_tasks([runs[name].id for name in CELLS])
    # Assert: a line per round at INFO in each cell's log, no "Finished in state" per task run
    for name in CELLS:
        said = [log.message for log in logs if log.flow_run_id == runs[name].id and log.level == 20]
        for rnd in (1, 2):
            line = next((m for m in said if m.startswith(f"round {rnd} of 2: accuracy ")), None)
            assert line is not None and "clients ok, none failed" in line, said
    assert len(tasks) > 20 and any(re.fullmatch(r"r2-c\d+-e0", t.name) for t in tasks)
    chatter = [
        log.message for log in logs if log.task_run_id is not None and "Finished in state" in log.message
    ]
    assert chatter == []


@pytest.mark.slow
def test_artifacts_show_each_cells_rounds_progress_and_mlflow_run_and_the_summary(swept) -> None:
    # Prepare
    cwd, mlflow_runs = swept
    runs = {run.name: run for run in flow_runs(cwd)}
    # Execute: the latest version of each key, as the UI's Artifacts page shows it
    key = partial(sweep_artifact_key, "quickstart", cwd / "outputs" / "quickstart")
    by_key = latest_artifacts(
        [*(key(n) for n in CELLS), *(key(n, "progress") for n in CELLS), key("summary")]
    )
    # Assert
    for name in CELLS:
        child = mlflow_runs[name][0]
        markdown = by_key[key(name)]
        assert markdown.type == "markdown" and markdown.flow_run_id == runs[name].id
        url = f"http://127.0.0.1:5000/#/experiments/{child.info.experiment_id}/runs/{child.info.run_id}"
        assert url in markdown.data and "final accuracy **" in markdown.data
        assert "| 1 |" in markdown.data and "| 2 |" in markdown.data
        progress = by_key[key(name, "progress")]
        assert progress.type == "progress" and progress.data == 100.0
    summary = by_key[key("summary")]
    assert summary.flow_run_id == next(r.id for r in runs.values() if r.name.startswith("quickstart-"))
    assert (
        all(name in summary.data for name in CELLS)
        and mlflow_runs["quickstart"][0].info.run_id in summary.data
    )


@pytest.mark.slow
def test_mlflow_parent_is_named_and_carries_headline_metrics_and_plots(swept, tmp_path) -> None:
    # Prepare
    _, runs = swept
    parent, _, client = runs["quickstart"]
    # Execute
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    image = Path(client.download_artifacts(parent.info.run_id, "plots/accuracy_vs_round.png", str(tmp_path)))
    # Assert
    assert re.fullmatch(r"quickstart #1 @ \d{4}-\d\d-\d\d \d\d:\d\d", parent.info.run_name), (
        parent.info.run_name
    )
    finals = [runs[name][1]["accuracy"][-1][1] for name in CELLS]
    metrics = parent.data.metrics
    assert metrics["best_final_accuracy"] == pytest.approx(max(finals))
    assert (metrics["cells_finished"], metrics["cells_failed"]) == (2, 0) and metrics["sweep_wall_s"] > 0
    assert plots == {
        f"plots/{n}.png" for n in ("accuracy_vs_round", "final_accuracy_by_method")
    }  # none failed
    assert image.read_bytes().startswith(PNG)


@pytest.mark.slow
def test_mlflow_children_are_tagged_for_grouping_and_the_experiment_is_a_training_one(swept) -> None:
    # Prepare
    _, runs = swept
    parent, _, client = runs["quickstart"]
    # Execute
    experiment = client.get_experiment(parent.info.experiment_id)
    # Assert
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.tags["fedsweep.sweep"] == "quickstart"  # how cli/ui.py finds it
    for name in CELLS:
        tags = runs[name][0].data.tags
        assert {k: tags.get(k) for k in ("strategy", "selection", "dataset", "partition", "num_clients")} == {
            "strategy": name.split("-")[0],
            "selection": "uniform",
            "dataset": "synthetic",
            "partition": "natural",
            "num_clients": "10",
        }


def test_the_figures_are_pngs_even_for_one_cell_or_none() -> None:
    # Prepare
    cell = CellCurve(
        name="fedavg-c10-r2-s0",
        method="fedavg",
        num_clients=10,
        rounds=(1, 2),
        accuracy=(0.3, 0.4),
        failed=(0.0, 1.0),
    )
    # Execute
    figures = [sweep_figures(cells) for cells in ([cell], [])]
    # Assert: the failures plot only where a client failed
    assert [len(f) for f in figures] == [3, 2] and all(
        png.startswith(PNG) for f in figures for png in f.values()
    )


def test_texts_say_failures_where_the_run_is_and_a_short_config() -> None:
    # Prepare
    row = {
        "clients_failed": 2.0,
        "failed_node_down": 1.0,
        "failed_transient": 1.0,
        "failed_oom": 0.0,
        "retries": 3.0,
    }
    tracking = {"uri": "sqlite:///mlruns/mlflow.db", "experiment_id": "7"}
    params = {
        "choice.strategy": "fedprox",
        "strategy.mu": 0.1,
        "strategy._target_": "x.FedProx",
        "seed": 0,
        "dataset.alpha": 1.0,
        "local_steps": None,
    }
    # Execute / Assert
    assert failures_text(row) == "2 failed (node_down 1, transient 1), 3 retries"
    assert failures_text({"clients_failed": 0.0}) == "none failed"
    assert "python cli/ui.py --backend-store-uri sqlite:///mlruns/mlflow.db" in mlflow_where(tracking, "abc")
    assert "`abc`" in mlflow_where(tracking, "abc")
    assert mlflow_where({**tracking, "ui_url": "http://h:5000/"}, "abc") == (
        "MLflow: [run abc](http://h:5000/#/experiments/7/runs/abc)"
    )
    assert short_config(params) == {"strategy": "fedprox", "seed": 0, "strategy.mu": 0.1}
    assert artifact_key("quickstart", "FedProx_mu0.1") == "quickstart-fedprox-mu0-1"


def test_artifact_keys_are_the_sweep_folders_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: two clones that use one sweep name, and the same folder named two ways
    from flows.view import folder_id, sweep_artifact_key

    one, two = tmp_path / "one" / "outputs" / "quickstart", tmp_path / "two" / "outputs" / "quickstart"
    (tmp_path / "one").mkdir()
    monkeypatch.chdir(tmp_path / "one")
    # Execute
    keys = [sweep_artifact_key("quickstart", d, "fedavg-c10-r5-s0", "progress") for d in (one, two)]
    # Assert
    assert keys[0] != keys[1]
    assert all(re.fullmatch(r"quickstart-[0-9a-f]{6}-fedavg-c10-r5-s0-progress", k) for k in keys)
    assert folder_id("outputs/quickstart") == folder_id(one) != folder_id(two)


def test_param_keys_are_spelled_as_mlflow_takes_them() -> None:
    # Execute / Assert: a grid label's `+key` override keeps its name, the `+` as `_`
    assert (
        param_key("grid.method.counting.+selection.num_clients")
        == "grid.method.counting._selection.num_clients"
    )
    assert param_key("choice.strategy") == "choice.strategy" and param_key("a b:c/d-e") == "a b:c/d-e"
