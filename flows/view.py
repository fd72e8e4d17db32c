"""How a sweep reads in the Prefect UI: flow-run names, tags, compact parameters, quiet task logs.

A flow run's parameters are what the UI shows on its page, so the flows receive compact views (a
cell's name, key and a short config) instead of the expanded sweep; the full cells stay in this
process (flows/cell_flow.py). Tags say what a run is about, so the UI's filters find, e.g., every
FedProx cell of every sweep: `experiment:<sweep name>` on every run, and on a cell's run
`strategy:`, `selection:`, `dataset:`, `partition:`, `model:`, `clients:`.
"""

import hashlib
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Any

# The config keys a cell's short view shows, besides its chosen options and its strategy's settings.
KNOBS = (
    "seed",
    "rounds",
    "num_clients",
    "clients_per_round",
    "local_epochs",
    "local_steps",
    "batch_size",
    "lr",
)
TAGGED = ("strategy", "selection", "dataset", "partition", "model")


def sweep_run_name(sweep_name: str, started: datetime) -> str:
    """`quickstart-20261202-061033`: runs of one sweep told apart by their start."""
    return f"{sweep_name}-{started:%Y%m%d-%H%M%S}"


def experiment_tag(sweep_name: str) -> str:
    return f"experiment:{sweep_name}"


def short_config(params: dict[str, Any]) -> dict[str, Any]:
    """The chosen options, the top-level knobs and the strategy's own settings of a cell."""
    choices = {k.removeprefix("choice."): v for k, v in params.items() if k.startswith("choice.")}
    knobs = {k: params[k] for k in KNOBS if params.get(k) is not None}
    method = {k: v for k, v in params.items() if k.startswith("strategy.") and not k.endswith("_target_")}
    return {**choices, **knobs, **method}


def compact_cell(cell: dict[str, Any]) -> dict[str, Any]:
    """What a cell's flow run shows as parameters: its name, key and short config."""
    return {"name": cell["name"], "key": cell["key"], "config": short_config(cell["params"])}


def cell_tags(cell: dict[str, Any]) -> list[str]:
    """`strategy:fedprox`, `selection:uniform`, ..., `clients:50` (tags of the cell's flow run)."""
    params = cell["params"]
    found = [f"{group}:{params[f'choice.{group}']}" for group in TAGGED if f"choice.{group}" in params]
    return [*found, f"clients:{cell['config']['num_clients']}"]


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits and dashes) made of `parts`."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", "-".join(parts).lower())).strip("-")


def folder_id(sweep_dir: str | Path) -> str:
    """Six hex digits of the sweep folder's absolute path: two folders (two clones, two machines'
    outputs) that use one sweep name keep their own artifacts on a shared Prefect server."""
    return hashlib.sha256(str(Path(sweep_dir).resolve()).encode()).hexdigest()[:6]


def sweep_artifact_key(sweep_name: str, sweep_dir: str | Path, *parts: str) -> str:
    """`quickstart-1a2b3c-fedprox-c50-r5-s0-progress`: the sweep, its folder, then `parts`."""
    return artifact_key(sweep_name, folder_id(sweep_dir), *parts)


def quiet_task_runs() -> None:
    """No INFO lines from task runs: Prefect's "Finished in state Completed()" per task (dozens per
    round) would bury what a cell's log says. Warnings and errors still come through."""
    logging.getLogger("prefect.task_runs").setLevel(logging.WARNING)
