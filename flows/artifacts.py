"""What a cell and a sweep leave in Prefect: log lines that say what happened, and artifacts.

A cell's flow run gets a progress artifact updated after every round, an INFO line per round in its
log (accuracy, loss, the clients that failed and how), a line when it resumes or has nothing left to
train, and at the end a Markdown artifact: the per-round table, the final metrics and where its
MLflow run is (a link when `tracking.ui_url` is set, else the run id and the `mlflow ui` command).
The sweep's flow run gets the summary table as a Markdown artifact.

Artifacts are sent by the process's records writer (server/records.py), in order, off the training
path: a busy Prefect server delays them, never a round, and one that cannot be sent is one line.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.schemas.actions import ArtifactCreate, ArtifactUpdate
from prefect.context import FlowRunContext
from prefect.logging import get_run_logger

from fedsweep.cell.cell import Cell
from fedsweep.rounds.state import CellState
from fedsweep.summary import evaluated
from flows.callbacks import CellCallback, Final, MlflowRun
from flows.view import sweep_artifact_key
from server.records import records

COLUMNS = ("round", "accuracy", "loss", "clients_ok", "clients_failed", "retries", "round_seconds")


def failures_text(row: dict[str, Any]) -> str:
    """`2 failed (node_down 1, transient 1), 3 retries`, or `none failed`."""
    kinds = [
        f"{k.removeprefix('failed_')} {int(v)}"
        for k, v in sorted(row.items())
        if k.startswith("failed_") and v
    ]
    failed = f"{int(row.get('clients_failed', 0))} failed ({', '.join(kinds)})" if kinds else "none failed"
    retries = int(row.get("retries", 0))
    return f"{failed}, {retries} retries" if retries else failed


def mlflow_where(tracking: dict[str, Any], run_id: str | None, what: str = "run") -> str:
    """A Markdown line saying where the MLflow run is."""
    if not run_id:
        return "MLflow: tracking is off (`tracking.enabled=false`)."
    if tracking.get("ui_url"):
        url = f"{tracking['ui_url'].rstrip('/')}/#/experiments/{tracking['experiment_id']}/runs/{run_id}"
        return f"MLflow: [{what} {run_id}]({url})"
    return (
        f"MLflow: {what} `{run_id}` in experiment `{tracking['experiment_id']}`; "
        f"open it with `python cli/ui.py --backend-store-uri {tracking['uri']}`."
    )


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    def fmt(value: Any) -> str:
        return (
            f"{value:.4f}"
            if isinstance(value, float) and not value.is_integer()
            else str(int(value) if isinstance(value, float) else value)
        )

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def flow_run_id() -> UUID | None:
    """The id of the flow run this thread runs in (None outside one)."""
    context = FlowRunContext.get()
    return context.flow_run.id if context is not None and context.flow_run is not None else None


def send_artifact(what: str, *, key: str, kind: str, data: Any, description: str, run: UUID | None) -> None:
    """Create an artifact of flow run `run` in the background (server/records.py)."""
    artifact = ArtifactCreate(key=key, type=kind, data=data, description=description, flow_run_id=run)
    records().submit(what, lambda client: client.create_artifact(artifact))


class CellStory(CellCallback):
    """The Prefect side of one cell's flow run (a round-loop callback, flows/callbacks.py). Artifact
    keys name the sweep, its folder and the cell (`quickstart-1a2b3c-fedprox-c50-r5-s0`), so the UI's
    Artifacts page keeps one entry per cell of each sweep folder, its versions the cell's runs."""

    def __init__(self, cell: Cell, tracking: dict[str, Any], mlflow_run: MlflowRun) -> None:
        self.name, self.rounds = cell.name, cell.knobs.rounds
        sweep, sweep_dir = cell.knobs.sweep_name, Path(cell.knobs.output_dir) / cell.knobs.sweep_name
        self.keys = {
            "progress": sweep_artifact_key(sweep, sweep_dir, cell.name, "progress"),
            "page": sweep_artifact_key(sweep, sweep_dir, cell.name),
        }
        self.tracking, self.mlflow_run, self.log = tracking, mlflow_run, get_run_logger()
        self.run = flow_run_id()
        self.progress: UUID | None = None  # set by the records writer once the artifact exists

    def on_start(self, state: CellState) -> None:
        done, history = state.round, state.history
        if done >= self.rounds:
            self.log.info(
                "cell %s already finished its %d rounds: nothing to train (skipped)", self.name, self.rounds
            )
        elif done:
            self.log.info("resuming cell %s after round %d of %d", self.name, done, self.rounds)
        artifact = ArtifactCreate(
            key=self.keys["progress"],
            type="progress",
            data=100.0 * done / self.rounds,
            description=self._said(history),
            flow_run_id=self.run,
        )

        def create(client: Any) -> None:
            self.progress = client.create_artifact(artifact).id

        records().submit(f"cell {self.name}'s progress", create)

    def _said(self, history: Sequence[dict[str, Any]]) -> str:
        rows = evaluated(history)
        accuracy = f", accuracy {rows[-1]['accuracy']:.4f}" if rows else ""
        if rows and rows[-1] is not history[-1]:  # evaluate_every: the last evaluated round's
            accuracy += f" (round {int(rows[-1]['round'])})"
        return f"{self.name}: round {len(history)} of {self.rounds}{accuracy}"

    def after_round(self, state: CellState) -> None:
        """One INFO line, and the progress artifact moves."""
        history = state.history
        row = history[-1]
        evaluation = (
            f"accuracy {row['accuracy']:.4f}, loss {row['loss']:.4f}"
            if "accuracy" in row
            else "not evaluated"
        )
        self.log.info(
            "round %d of %d: %s, %d of %d clients ok, %s",
            int(row["round"]),
            self.rounds,
            evaluation,
            int(row["clients_ok"]),
            int(row["clients_selected"]),
            failures_text(row),
        )
        update = ArtifactUpdate(data=100.0 * len(history) / self.rounds, description=self._said(history))

        def move(client: Any) -> None:
            if self.progress is not None:  # else its creation failed, and said so
                client.update_artifact(artifact_id=self.progress, artifact=update)

        records().submit(f"cell {self.name}'s progress", move)

    def on_end(self, state: CellState, status: str, final: Final) -> None:
        """A finished cell gets its Markdown artifact: final metrics, the per-round table, its MLflow run."""
        if status != "FINISHED":
            return
        history = state.history
        accuracies = [h["accuracy"] for h in evaluated(history)]
        final_line = (
            f"final accuracy **{accuracies[-1]:.4f}**, best {max(accuracies):.4f}, "
            f"{len(history)} rounds, {int(sum(h['clients_failed'] for h in history))} client failures"
            if accuracies
            else "no round recorded"
        )
        where = mlflow_where(self.tracking, self.mlflow_run.run_id)
        markdown = "\n\n".join([f"# Cell {self.name}", final_line, where, table(history, COLUMNS)])
        send_artifact(
            f"cell {self.name}'s table",
            key=self.keys["page"],
            kind="markdown",
            data=markdown,
            description=f"{self.name}: per-round metrics",
            run=self.run,
        )


def sweep_artifact(name: str, sweep_dir: str, summary_markdown: str, tracking: dict[str, Any]) -> None:
    """The sweep's Markdown artifact: its summary table and its MLflow parent run."""
    where = mlflow_where(tracking, tracking.get("parent_run_id"), what="parent run")
    send_artifact(
        "the sweep's summary",
        key=sweep_artifact_key(name, sweep_dir, "summary"),
        kind="markdown",
        data=f"# Sweep {name}\n\nFolder: `{Path(sweep_dir).resolve()}`\n\n{where}\n\n{summary_markdown}",
        description=f"{name}: one row per cell",
        run=flow_run_id(),
    )


def link_artifact(key: str, link: str, description: str) -> None:
    """A link of the sweep's flow run (where its jobs run: a Dask dashboard), as Prefect shows links."""
    send_artifact(
        f"the link {key}", key=key, kind="markdown", data=f"[{link}]({link})", description=description,
        run=flow_run_id(),
    )  # fmt: skip
