"""A user's own model, from a package of theirs outside the project, through the real command
(`model._target_=tiny.TinyNet` with the package on PYTHONPATH; docs/extending.md has the worked
examples): it trains in the worker processes, and beside the built-in model in one `-m` sweep the two
cells have names of their own in the summary and in MLflow."""

import csv
import os
import textwrap

import pytest
from mlflow import MlflowClient
from sweep_cli import run_sweep

pytestmark = pytest.mark.slow
TINY = textwrap.dedent(
    """
    import math

    from torch import nn


    class TinyNet(nn.Module):
        \"\"\"A one-hidden-layer network: the model of someone's own package.\"\"\"

        def __init__(self, *, input_shape, num_classes, hidden: int = 8):
            super().__init__()
            features = math.prod(int(d) for d in input_shape)
            self.net = nn.Sequential(
                nn.Flatten(), nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
            )

        def forward(self, x):
            return self.net(x)
    """
)


def test_a_model_from_the_users_package_runs_and_is_named_apart(tmp_path, prefect_home) -> None:
    # Prepare: the package, outside the project, on PYTHONPATH
    package = tmp_path / "mylab"
    package.mkdir()
    (package / "tiny.py").write_text(TINY)
    cwd = tmp_path / "work"
    cwd.mkdir()
    args = ("strategy=fedavg", "num_clients=4", "clients_per_round=2", "rounds=1", "runner.progress=false")
    models = "model._target_=fedsweep.models.logreg.LogisticRegression,tiny.TinyNet"
    # Execute
    path = os.pathsep.join(p for p in (str(package), os.environ.get("PYTHONPATH")) if p)
    out = run_sweep(cwd, prefect_home, "-m", models, *args, env={"PYTHONPATH": path})
    # Assert: both cells finished, under names of their own, in the summary and in MLflow
    rows = list(csv.DictReader(open(cwd / "outputs" / "default" / "summary.csv")))
    assert [(r["cell"], r["status"]) for r in rows] == [
        ("fedavg-c4-r1-s0", "FINISHED"),
        ("fedavg-c4-r1-s0-tinynet", "FINISHED"),
    ], out[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("default").experiment_id
    cells = {
        r.info.run_name: r for r in client.search_runs([experiment]) if "mlflow.parentRunId" in r.data.tags
    }
    assert set(cells) == {"fedavg-c4-r1-s0", "fedavg-c4-r1-s0-tinynet"}  # one run per job's cell
    tiny = cells["fedavg-c4-r1-s0-tinynet"]
    assert tiny.info.status == "FINISHED" and tiny.data.params["model._target_"] == "tiny.TinyNet"
