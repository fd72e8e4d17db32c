"""MLflow tracking: one experiment per sweep name, a parent run per sweep, a child run per cell.

Runs are found again by content keys (tags `fedsweep.sweep_key`, `fedsweep.cell_key`), so re-running
the same command continues the same runs instead of duplicating them, and a round is logged only if
its step is not there yet. Every call passes `run_id` explicitly: MLflow's active run is
thread-local and tasks may run in other threads.
"""

import os
import re
import sqlite3
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.tags import CELL_KEY, EXPERIMENT_KIND, SUPERSEDED_BY, SWEEP_KEY, SWEEP_NAME, TRAINING, group_tags

ROUND_METRIC = "round_seconds"  # a metric every round logs: the last round logged is its last step


@lru_cache(maxsize=4)
def client(uri: str):  # mlflow is imported lazily: it costs seconds at start-up
    from mlflow import MlflowClient  # noqa: PLC0415 - mlflow: seconds, off the start-up path

    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _new_database(path)
    return MlflowClient(tracking_uri=uri)


def _new_database(path: Path) -> None:
    """A new MLflow sqlite database, copied from an empty one made once per MLflow version.

    MLflow creates a database by running its schema migrations one by one, ~2.5 s of CPU at every
    sweep's start in a new folder; the copy takes milliseconds. The empty database is made by
    MLflow itself (in ~/.cache/fedsweep, or $XDG_CACHE_HOME), and the copy's "Default" experiment
    gets the artifact location MLflow would have given it here.
    """
    import mlflow  # noqa: PLC0415 - as MlflowClient

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fedsweep"
    template = cache / f"mlflow-{mlflow.__version__}-empty.db"
    if not template.exists():
        cache.mkdir(parents=True, exist_ok=True)
        fresh = cache / f"{template.name}.{os.getpid()}.tmp"
        mlflow.MlflowClient(tracking_uri=f"sqlite:///{fresh}").search_experiments()
        os.replace(fresh, template)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_bytes(template.read_bytes())
    with sqlite3.connect(partial) as db:
        db.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            (str(Path("mlruns", "0").absolute()),),
        )
    db.close()
    try:  # a link never replaces: a neighbour's sweep that created the database first keeps its runs
        os.link(partial, path)
    except FileExistsError:
        pass
    finally:
        partial.unlink()


def experiment_id(uri: str, artifact_root: str, name: str) -> str:
    """The experiment named after the sweep, created with artifacts under `artifact_root`, and
    marked as training runs (MLflow's classic view, not its GenAI view)."""
    mlc = client(uri)
    tags = {EXPERIMENT_KIND: TRAINING, SWEEP_NAME: name}
    found = mlc.get_experiment_by_name(name)
    if found is not None:
        for tag, value in tags.items():  # an experiment made before fedsweep set them
            if found.tags.get(tag) != value:
                mlc.set_experiment_tag(found.experiment_id, tag, value)
        return found.experiment_id
    location = Path(artifact_root).absolute().as_uri() if "://" not in artifact_root else artifact_root
    return mlc.create_experiment(name, artifact_location=f"{location.rstrip('/')}/{name}", tags=tags)


def parent_run_name(uri: str, exp_id: str, sweep_name: str) -> str:
    """`quickstart #3 @ 2026-12-02 06:10`: the sweep's 3rd parent run in this store, and its start."""
    earlier = client(uri).search_runs(
        [exp_id], filter_string=f"tags.`{SWEEP_KEY}` LIKE '%'", max_results=1000
    )
    return f"{sweep_name} #{len(earlier) + 1} @ {time.strftime('%Y-%m-%d %H:%M')}"


def _find_run(uri: str, exp_id: str, tag: str, value: str) -> Any:
    runs = client(uri).search_runs([exp_id], filter_string=f"tags.`{tag}` = '{value}'", max_results=1)
    return runs[0] if runs else None


def _supersede(uri: str, exp_id: str, tag: str, values: list[str], by: str) -> None:
    """Starting over (`resume=false`): earlier runs keep their data but no longer match their key;
    they are tagged `fedsweep.superseded_by` with the new parent run's id."""
    mlc = client(uri)
    for value in values:
        for run in mlc.search_runs([exp_id], filter_string=f"tags.`{tag}` = '{value}'"):
            if run.info.run_id != by:
                mlc.set_tag(run.info.run_id, tag, f"{value}-superseded-{int(time.time())}")
                mlc.set_tag(run.info.run_id, SUPERSEDED_BY, by)


@task(cache_policy=NO_CACHE, name="track-sweep")
def open_sweep_run(
    uri: str,
    artifact_root: str,
    sweep_name: str,
    sweep_key: str,
    params: dict,
    fresh: bool = False,
    cell_keys: tuple[str, ...] = (),
) -> tuple[str, str]:
    """(experiment id, parent run id): the sweep's parent run, found again or created.

    `fresh` (`resume=false`): a new parent run; the earlier parent and the earlier runs of the cells
    `cell_keys` are superseded, so each cell gets a new child run under the new parent.
    """
    exp_id = experiment_id(uri, artifact_root, sweep_name)
    found = None if fresh else _find_run(uri, exp_id, SWEEP_KEY, sweep_key)
    if found is not None:
        client(uri).update_run(found.info.run_id, status="RUNNING")
        return exp_id, found.info.run_id
    name = parent_run_name(uri, exp_id, sweep_name)
    run = client(uri).create_run(exp_id, run_name=name, tags={SWEEP_KEY: sweep_key})
    if fresh:
        _supersede(uri, exp_id, SWEEP_KEY, [sweep_key], by=run.info.run_id)
        _supersede(uri, exp_id, CELL_KEY, list(cell_keys), by=run.info.run_id)
    _log_params(uri, run.info.run_id, params)
    return exp_id, run.info.run_id


@task(cache_policy=NO_CACHE, name="track-cell")
def open_cell_run(
    uri: str,
    exp_id: str,
    parent_run_id: str,
    cell_name: str,
    cell_key: str,
    params: dict,
    fresh: bool = False,
    rounds: int | None = None,
) -> tuple[str, int, str]:
    """(run id, last logged round, status before) of the cell's child run, found again or created;
    tagged with the cell's options (`strategy`, `num_clients`, ...) for the UI to group by. A run
    found again takes the cell's current name (its `-rN` moves when the cell is extended), and one
    FINISHED with fewer rounds than `rounds` runs again (RUNNING) until the cell finishes them."""
    mlc = client(uri)
    if fresh:
        _supersede(uri, exp_id, CELL_KEY, [cell_key], by=parent_run_id)
    found = _find_run(uri, exp_id, CELL_KEY, cell_key)
    if found is not None:
        run_id, status = found.info.run_id, found.info.status
        # The last round logged: every round logs `round_seconds` (not always `accuracy`: evaluate_every).
        logged = max((m.step for m in mlc.get_metric_history(run_id, ROUND_METRIC)), default=0)
        if status != "FINISHED" or (rounds is not None and logged < rounds):
            mlc.update_run(run_id, status="RUNNING")
            status = "RUNNING" if status == "FINISHED" else status
        if found.info.run_name != cell_name:
            mlc.update_run(run_id, name=cell_name)
        _set_tags(uri, run_id, group_tags(params))  # a run made before these tags existed
        return run_id, logged, status
    tags = {CELL_KEY: cell_key, "mlflow.parentRunId": parent_run_id, **group_tags(params)}
    run = mlc.create_run(exp_id, run_name=cell_name, tags=tags)
    _log_params(uri, run.info.run_id, params)
    return run.info.run_id, 0, "RUNNING"


def drop_tags(uri: str, run_id: str, names: list[str]) -> None:
    """Delete the run's tags `names` that it has (a per-round constant tagged when a cell finished,
    charted since it moved in an extension)."""
    mlc = client(uri)
    present = mlc.get_run(run_id).data.tags
    for name in names:
        if name in present:
            mlc.delete_tag(run_id, name)


def _set_tags(uri: str, run_id: str, tags: dict[str, str]) -> None:
    from mlflow.entities import RunTag  # noqa: PLC0415 - as MlflowClient

    if tags:
        client(uri).log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def param_key(key: str) -> str:
    """`key` as MLflow takes a parameter's name (letters, digits, `_ - . : /` and spaces): the others,
    such as the `+` of a grid label's `+selection.num_clients: 6` in `grid.method...`, become `_`."""
    return re.sub(r"[^/\w.\- :]", "_", key)


def _log_params(uri: str, run_id: str, params: dict) -> None:
    from mlflow.entities import Param  # noqa: PLC0415 - as MlflowClient

    items = [Param(param_key(k), str(v)[:6000]) for k, v in params.items()]
    for start in range(0, len(items), 100):  # MLflow's batch limit is 100 params
        client(uri).log_batch(run_id, params=items[start : start + 100])


def log_round(uri: str, run_id: str, round: int, metrics: dict[str, float]) -> None:
    """All of a round's metrics in one batch (one transaction), at step = round."""
    log_points(uri, run_id, {round: metrics})


def log_points(uri: str, run_id: str, points: dict[int, dict[str, float]]) -> None:
    """Metrics at their steps (round -> metric -> value), in batches of MLflow's limit (1000).

    A plain call, not a task: it runs after the round's checkpoint task, in the same background
    job, and a task run per round would cost the Prefect server more than the write itself.
    """
    from mlflow.entities import Metric  # noqa: PLC0415 - as MlflowClient

    stamp = int(time.time() * 1000)
    batch = [
        Metric(k, float(v), stamp, step)
        for step, metrics in sorted(points.items())
        for k, v in sorted(metrics.items())
    ]
    for start in range(0, len(batch), 1000):
        client(uri).log_batch(run_id, metrics=batch[start : start + 1000])


@task(cache_policy=NO_CACHE, name="track-finish")
def finish_run(
    uri: str,
    run_id: str,
    status: str,
    tags: dict[str, str],
    files: dict[str, bytes],
    metrics: dict[str, float] | None = None,
    step: int = 0,
) -> None:
    """Tags, metrics (at `step`), artifacts (`path -> bytes`) and the final status of a run."""
    mlc = client(uri)
    _set_tags(uri, run_id, tags)
    if metrics:
        log_points(uri, run_id, {step: metrics})
    with tempfile.TemporaryDirectory() as tmp:
        for rel, data in files.items():
            path = Path(tmp, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            sub = os.path.dirname(rel) or None
            mlc.log_artifact(run_id, str(path), artifact_path=sub)
    mlc.set_terminated(run_id, status=status)


def stop_runs(uri: str, parent_run_id: str) -> None:
    """A hard stop: the parent run and its children still RUNNING end as KILLED."""
    mlc = client(uri)
    parent = mlc.get_run(parent_run_id)
    children = mlc.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}' and attributes.status = 'RUNNING'",
    )
    for run in [*children, parent]:
        if run.info.status == "RUNNING":
            mlc.set_terminated(run.info.run_id, status="KILLED")
