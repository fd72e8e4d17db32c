"""MLflow's UI on the sweeps' store, opening fedsweep's experiments on their runs table.

    python cli/ui.py                       # sqlite:///mlruns/mlflow.db on http://127.0.0.1:5000
    python cli/ui.py --port 5001 --backend-store-uri sqlite:///elsewhere/mlflow.db   # `mlflow server` options

It is `mlflow server` (its options, its defaults but one worker) with one addition. MLflow 3.17's UI
opens an experiment in the view of a switch kept in the browser ("GenAI" / "Model training":
localStorage `mlflow.workflowType_v1`, GenAI until chosen, or `?workflowType=` in the URL); the
experiment tag `mlflow.experimentKind` that fedsweep sets is no longer read (its code takes the switch
whenever its workflow-type feature is on, and 3.17 turns it on). So a fresh browser clicking a sweep's
experiment lands on an empty GenAI overview ("Traces 0"). Its runs table, too, shows no metric by
default (its default columns are Source, Models and Dataset; what a browser chose is kept in its
localStorage, per experiment).

The page this server sends (its index.html) carries a few lines of script that, where the browser
has not chosen yet: set the switch to "Model training"; for each fedsweep experiment (experiment tag
`fedsweep.sweep`) not opened yet in this browser, show the runs table with the columns
`final_accuracy`, `best_accuracy`, `rounds` (a cell's summary, tasks/track.py), `best_final_accuracy`
(a sweep's), `strategy` and `num_clients`, and the sweeps' parent runs unfolded; and leave MLflow's
assistant panel closed until asked for (it opens by itself once, over a third of the table). What a
browser has chosen is never changed. With plain `mlflow ui` the same is two clicks: "Model training"
(top left), then "Columns".
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STORE = "sqlite:///mlruns/mlflow.db"
FACTORY = "cli.ui:create_app"
SWEEP_TAG = "fedsweep.sweep"  # tasks/tags.py: the experiment of a sweep (its name)
SWEEP_RUN_TAG = "fedsweep.sweep_key"  # a sweep's parent run
COLUMNS = [
    "metrics.`final_accuracy`",
    "metrics.`best_accuracy`",
    "metrics.`rounds`",
    "metrics.`best_final_accuracy`",
    "tags.`strategy`",
    "tags.`num_clients`",
]
# MLflow 3.17's UI state in localStorage: its `useLocalStorage` hook keys `<key>_v<version>` (JSON
# values); its experiment page's store keys `MLflowLocalStorage-1.1-ExperimentPage-<JSON of the
# experiment ids>-ReactComponentState`.
PAGE_STATE = ("MLflowLocalStorage-1.1-ExperimentPage-", "-ReactComponentState")
SCRIPT = """<script>(function(){try{var s=window.localStorage;
var put=function(k,v){if(s.getItem(k)===null)s.setItem(k,JSON.stringify(v));};
put("mlflow.workflowType_v1","machine_learning");
put("mlflow.assistant.fab.autoOpenedOnFirstLoad_v1",true);
var seeds=%s;
for(var id in seeds){put("%s"+JSON.stringify([id])+"%s",seeds[id]);}
}catch(e){}})();</script>"""


def seeds() -> dict[str, dict[str, Any]]:
    """Per fedsweep experiment id: the runs table's first state (columns, parent runs unfolded)."""
    from mlflow.entities import ViewType  # noqa: PLC0415 - MLflow: once the command line is read
    from mlflow.server.handlers import _get_tracking_store  # noqa: PLC0415 - the server's own store

    store = _get_tracking_store()
    found: dict[str, dict[str, Any]] = {}
    for experiment in store.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000):
        if SWEEP_TAG not in experiment.tags:
            continue
        parents = store.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{SWEEP_RUN_TAG}` LIKE '%'",
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=100,
            order_by=None,
        )
        expanded = {run.info.run_id: True for run in parents}
        found[experiment.experiment_id] = {"selectedColumns": COLUMNS, "runsExpanded": expanded}
    return found


def _first_visit_defaults(response: Any) -> Any:
    """MLflow's index.html with the script in its head (a Flask after_request hook)."""
    from flask import request  # noqa: PLC0415 - MLflow: once the command line is read

    if request.endpoint != "serve" or response.status_code != 200 or response.mimetype != "text/html":
        return response
    try:
        script = SCRIPT % (json.dumps(seeds()).replace("</", "<\\/"), *PAGE_STATE)
    except Exception:  # noqa: BLE001 - the UI without defaults rather than no UI
        script = SCRIPT % ("{}", *PAGE_STATE)
    response.direct_passthrough = False
    response.set_data(response.get_data().replace(b"<head>", b"<head>" + script.encode(), 1))
    for header in ("ETag", "Last-Modified"):  # a page cached from plain `mlflow ui` is not ours
        response.headers.pop(header, None)
    response.headers["Cache-Control"] = "no-cache"
    return response


def create_app() -> Any:
    """The ASGI app uvicorn runs: MLflow's, its Flask part sending index.html with the script."""
    from mlflow.server import app as flask_app  # noqa: PLC0415 - MLflow: once the command line is read

    flask_app.after_request(_first_visit_defaults)
    from mlflow.server.fastapi_app import app  # noqa: PLC0415 - MLflow: once the command line is read

    return app


def main(argv: list[str] | None = None) -> None:
    """`mlflow server` with `args`, the sweeps' store and one worker unless given, serving `create_app`."""
    import mlflow.server  # noqa: PLC0415 - MLflow: once the command line is read
    from mlflow.cli import cli as mlflow_cli  # noqa: PLC0415 - MLflow: once the command line is read

    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a.split("=", 1)[0] == "--backend-store-uri" for a in args):
        args = ["--backend-store-uri", DEFAULT_STORE, *args]
    if not any(a.split("=", 1)[0] == "--workers" for a in args):
        args = [*args, "--workers", "1"]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    build = mlflow.server._build_uvicorn_command

    def ours(uvicorn_opts, host, port, workers, app_name, env_file=None, is_factory=False):  # type: ignore[no-untyped-def]
        if app_name != "mlflow.server.fastapi_app:app":  # --app-name: that app, as MLflow runs it
            return build(uvicorn_opts, host, port, workers, app_name, env_file, is_factory)
        return build(uvicorn_opts, host, port, workers, FACTORY, env_file, True)

    mlflow.server._build_uvicorn_command = ours  # type: ignore[attr-defined]
    mlflow_cli.main(args=["server", *args], prog_name="python cli/ui.py")


if __name__ == "__main__":
    main()
