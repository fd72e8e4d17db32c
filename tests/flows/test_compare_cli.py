"""The compare command on a real sweep (2 methods x 2 seeds), its figures checked against a direct
computation from MLflow's metric history."""

import csv
import os
import statistics
import subprocess
import sys

import pytest
from sweep_cli import REPO, recorded, run_sweep

pytestmark = pytest.mark.slow
ARGS = (
    "+experiment=quickstart",
    "sweep_name=compare",
    "rounds=3",
    "num_clients=10",
    "clients_per_round=5",
    "+grid.seed=[0,1]",
)
T1 = 12.706204736174707  # t(0.975, 1): two seeds
TARGET = 0.5


def compare(cwd, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "flows" / "compare.py"), *args]
    return subprocess.run(command, cwd=cwd, env=dict(os.environ), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def swept(tmp_path_factory, prefect_home):
    cwd = tmp_path_factory.mktemp("compare")
    run_sweep(cwd, prefect_home, *ARGS)
    return cwd


def half(values: list[float]) -> float:
    """The half-width of the 95 % t-interval of two values."""
    return T1 * statistics.stdev(values) / 2**0.5


def direct(cwd) -> dict[str, dict[int, list[float]]]:
    """{strategy: {seed: accuracy by round}}, straight from MLflow."""
    out: dict[str, dict[int, list[float]]] = {}
    for _name, (run, metrics, _) in recorded(cwd, "compare").items():
        if "mlflow.parentRunId" in run.data.tags:
            out.setdefault(run.data.params["choice.strategy"], {})[int(run.data.params["seed"])] = [
                v for _, v in metrics["accuracy"]
            ]
    return out


def test_the_figures_are_those_of_the_metric_history(swept) -> None:
    # Prepare
    history = direct(swept)
    assert {s: sorted(h) for s, h in history.items()} == {"fedavg": [0, 1], "fedprox": [0, 1]}
    # Execute
    done = compare(
        swept,
        "--experiment",
        "compare",
        "--target",
        str(TARGET),
        "--csv",
        "out/c.csv",
        "--markdown",
        "out/c.md",
    )
    # Assert
    assert done.returncode == 0, done.stderr
    rows = {(r["table"], r["method"], r["metric"]): r for r in csv.DictReader(open(swept / "out" / "c.csv"))}
    for strategy, seeds in history.items():
        finals = [acc[-1] for acc in seeds.values()]
        row = rows["method", f"{strategy}-c10-r3", "final_accuracy"]
        assert float(row["mean"]) == pytest.approx(statistics.mean(finals), abs=1e-12)
        assert float(row["ci_high"]) - float(row["mean"]) == pytest.approx(half(finals))
        best = rows["method", f"{strategy}-c10-r3", "best_accuracy"]
        assert float(best["mean"]) == pytest.approx(statistics.mean(max(acc) for acc in seeds.values()))
        reached = [next((i for i, a in enumerate(acc, 1) if a >= TARGET), None) for acc in seeds.values()]
        rounds = rows["method", f"{strategy}-c10-r3", f"rounds_to_{TARGET:g}"]
        assert int(rounds["missing"]) == reached.count(None)
        assert f"{sum(r is not None for r in reached)}/2" in done.stdout
        assert f"{statistics.mean(finals):.4f} ± " in done.stdout
    differences = [history["fedprox"][s][-1] - history["fedavg"][s][-1] for s in (0, 1)]
    paired = rows["paired", "fedprox-c10-r3", "final_accuracy_difference"]
    assert (paired["baseline"], paired["n"]) == ("fedavg-c10-r3", "2")
    assert float(paired["mean"]) == pytest.approx(statistics.mean(differences), abs=1e-12)
    assert float(paired["ci_high"]) - float(paired["mean"]) == pytest.approx(half(differences))
    assert f"{statistics.mean(differences):+.4f} ± " in done.stdout
    assert "| fedprox-c10-r3 | 2 |" in (swept / "out" / "c.md").read_text()


def test_mistakes_are_one_line_and_write_nothing(swept, monkeypatch, capsys) -> None:
    # Prepare: in this process (MLflow imported once), as the command line would run it
    from mlflow import MlflowClient

    from cli.compare import cli

    monkeypatch.chdir(swept)
    MlflowClient(tracking_uri=f"sqlite:///{swept / 'mlruns' / 'mlflow.db'}").create_experiment("empty")
    cases = {
        ("--experiment", "nope"): "no experiment named nope",
        ("--experiment", "empty"): "empty has no finished cells",
        ("--experiment", "compare", "--target", "80"): "--target must be an accuracy in (0, 1]",
        ("--experiment", "compare", "--baseline", "fedsgd"): "no method fedsgd",
        ("--target", "0.5"): "the following arguments are required: --experiment",
    }
    for args, message in cases.items():
        # Execute
        with pytest.raises(SystemExit) as done:
            cli([*args, "--csv", "wrong/c.csv"])
        # Assert
        out, err = capsys.readouterr()
        assert (done.value.code, out) == (2, ""), args
        assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (swept / "wrong").exists()


def test_a_superseded_run_is_left_out(swept, monkeypatch) -> None:
    # Prepare: a start-over (resume=false) tags the earlier run of a cell so (tasks/track.py)
    from mlflow import MlflowClient

    from cli.compare import cli

    monkeypatch.chdir(swept)
    client = MlflowClient(tracking_uri=f"sqlite:///{swept / 'mlruns' / 'mlflow.db'}")
    run_id = recorded(swept, "compare")["fedprox-c10-r3-s1"][0].info.run_id
    client.set_tag(run_id, "fedsweep.superseded_by", "a-later-parent")
    try:
        # Execute
        cli(["--experiment", "compare", "--csv", "c.csv"])
    finally:
        client.delete_tag(run_id, "fedsweep.superseded_by")
    # Assert
    rows = {(r["table"], r["method"], r["metric"]): r for r in csv.DictReader(open(swept / "c.csv"))}
    assert rows["method", "fedprox-c10-r3", "final_accuracy"]["n"] == "1"
    assert rows["paired", "fedprox-c10-r3", "final_accuracy_difference"]["missing"] == "1"
