"""Planning a command line in-process (flows/sweep.py check_command, cli/plan.py): what is refused,
with which line, and what a valid command plans. Nothing here may write a file."""

from pathlib import Path

import pytest
from hydra import initialize_config_dir

from cli.main import CONF_DIR, check_command, job_overrides
from cli.plan import plan_overrides
from fedsweep.config import ConfigError

# argv -> texts the one-line error must contain
REFUSED: list[tuple[list[str], list[str]]] = [
    (["+strategy.foo=1"], ["unknown key strategy.foo; FedAvg takes no keys"]),
    (["strategy.foo=1"], ["unknown key strategy.foo"]),
    (["model=mlp", "+model.depth=3"], ["unknown key model.depth; MLP takes: hidden"]),
    (["+grid.foo=[1,2]"], ["unknown key foo", "(in the grid cell foo=1)"]),
    # A mistyped key or option: the close one is suggested, by Hydra's composition and by the schema
    (["rouds=5"], ["unknown key rouds (did you mean rounds?); top-level keys: "]),
    (["+rouds=5"], ["unknown key rouds (did you mean rounds?); top-level keys: "]),
    (["runner.retires=1"], ["unknown key runner.retires (did you mean retries?); keys of runner: "]),
    (["+runner.retires=1"], ["unknown key runner.retires (did you mean retries?); keys of runner: "]),
    (["strategy=fedprox", "+strategy.muu=1"], ["unknown key strategy.muu (did you mean mu?); FedProx takes"]),
    (["strategy=fedprx"], ["unknown option strategy=fedprx (did you mean fedprox?); choose one of: "]),
    (["+aggregation.min_fits=2"], ["aggregation.min_fits: unknown key (did you mean min_fit?)"]),
    (["foo=1"], ["unknown key foo; top-level keys: "]),  # nothing close: no suggestion
    (
        ["+experiment=quickstart", "grid.strategy=[fedavg,nope]"],
        ["unknown option strategy=nope", "grid cell"],
    ),
    (["+experiment=quickstart", "grid.num_clients=[10,10]"], ["same experiment"]),
    (["+grid.sweep_name=[a,b]"], ["sweep_name describes the whole sweep"]),
    (["grid=[1,2]"], ["Error merging override grid=[1,2]: Cannot merge DictConfig with ListConfig"]),
    (["rounds=[1,"], ["cannot parse override 'rounds=[1,'"]),
    (["rounds=1,2"], ["Ambiguous value", "--multirun"]),
    (["+rounds=3"], ["An item is already at 'rounds'"]),
    (["lr=${nope}"], ["lr: Interpolation key 'nope' not found"]),
    (["~rounds"], ["missing key rounds"]),
    (["rounds=true"], ["rounds must be an integer (got true)"]),
    (["momentum=1.0"], ["momentum must be in [0, 1) (got 1.0)"]),
    (["weight_decay=-0.1"], ["weight_decay must be >= 0"]),
    (["clip_norm=-1"], ["clip_norm must be >= 0"]),
    (["local_epochs=0"], ["local_epochs must be >= 1"]),
    (["num_clients=0", "clients_per_round=0"], ["num_clients must be >= 1"]),
    (["runner.retries=-1"], ["runner.retries must be >= 0"]),
    (["runner.device=gpu"], ["runner.device must be cpu, auto"]),
    (["strategy=fedprox", "strategy.mu=-1"], ["strategy: FedProx: mu must be >= 0"]),
    (["strategy._target_=nope.Nope"], ["strategy._target_: cannot import 'nope.Nope'"]),
    (["sweep_name=../up"], ["sweep_name must be a plain name"]),
    (["tracking.ui_url=localhost:5000"], ["tracking.ui_url must be the MLflow UI's http(s) address"]),
    (["checkpoint.location=s3://bucket/runs"], ["needs the 's3fs' package"]),
    (["-m", "strategy=fedavg,nope"], ["unknown option strategy=nope"]),
    (["-m", "rounds=3", "lr=0.1,-1"], ["lr must be > 0 (got -1)"]),
    (["--nope"], ["unrecognized arguments: --nope"]),
    # A key of some grid options only: one rule, stated whatever the attempt (cli/overrides.py)
    (
        ["+experiment=quickstart", "grid.strategy=[fedavg,fedavgm]", "strategy.mu=0.1"],
        [
            "strategy.mu=0.1: reaches no cell: no strategy of the grid has mu",
            "strategy.KEY=VALUE sets KEY in the cells whose strategy has it",
            "options: fedavg, fedavgm)",
        ],
    ),
    (
        ["+experiment=quickstart", "+strategy.mu=0.1"],
        ["write strategy.mu=0.1 (without +)", "options: fedavg, fedprox)"],
    ),
    (
        ["+experiment=quickstart", "grid.strategy.fedprox.mu=0.1"],
        ["grid.strategy is a list of options", "write strategy.mu=0.1;", "options: fedavg, fedprox)"],
    ),
    (["+experiment=quickstart", "grid.num_clients.a.b=1"], ["grid.num_clients is a list of values"]),
]


@pytest.fixture(autouse=True)
def in_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("argv", "expected"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_refused_commands_name_the_key_in_one_line(
    in_empty_folder: Path, argv: list[str], expected: list[str]
) -> None:
    # Execute
    with pytest.raises(ConfigError) as err:
        check_command(argv)
    # Assert
    message = str(err.value)
    assert "\n" not in message
    for text in expected:
        assert text in message
    assert list(in_empty_folder.iterdir()) == []


def test_valid_command_plans_every_cell_and_writes_nothing(in_empty_folder: Path) -> None:
    # Prepare
    overrides = ["+experiment=quickstart", "rounds=2"]
    # Execute
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        plan = plan_overrides("config", overrides)
        again = plan_overrides("config", overrides)
    # Assert
    assert again is plan  # the job Hydra runs afterwards finds the plan made by check_command
    assert [c["name"] for c in plan.cells] == [
        "fedavg-c10-r2-s0",
        "fedavg-c50-r2-s0",
        "fedprox-c10-r2-s0",
        "fedprox-c50-r2-s0",
    ]
    assert plan.dir == Path("outputs/quickstart")
    planned = {"name", "key", "dir", "config", "params", "committed", "suffix"}
    naming = {"rounds_in_key", "rounds_from", "stem", "base", "naming"}  # cli/identity.py
    assert all(set(c) == planned | naming for c in plan.cells)
    assert list(in_empty_folder.iterdir()) == []


def test_runner_dask_preset_plans_the_same_cells_on_dask(in_empty_folder: Path) -> None:
    # Execute: no cluster is reached while planning (cli/main.py starts the engine afterwards)
    (local,) = check_command(["+experiment=quickstart", "rounds=2"])
    (dask,) = check_command(["+experiment=quickstart", "rounds=2", "runner=dask"])
    (alias,) = check_command(
        ["+experiment=quickstart", "rounds=2", "runner.pool=dask", "runner.dask.n_workers=3"]
    )
    # Assert: the local runner's settings with the Dask engine and two cells at once; the cells' keys
    # (and so their folders, results and resume) do not depend on the engine
    runner = dask.cells[0]["config"]["runner"]
    assert runner["engine"] == {
        "_target_": "fedsweep.execution.dask.DaskEngine", "_recursive_": False,
        "address": None, "cluster": None, "n_workers": 0, "connect_timeout_s": 10,
    }  # fmt: skip
    assert runner["parallel_cells"] == 2
    same = {k: v for k, v in runner.items() if k not in ("engine", "parallel_cells")}
    local_runner = local.cells[0]["config"]["runner"]
    assert same == {k: v for k, v in local_runner.items() if k not in ("engine", "parallel_cells")}
    assert local_runner["engine"] == {"_target_": "fedsweep.execution.processes.ProcessEngine"}
    assert (
        [c["key"] for c in dask.cells] == [c["key"] for c in local.cells] == [c["key"] for c in alias.cells]
    )
    # The old spelling changes the engine alone (runner/engine=dask), its keys the engine's
    old = alias.cells[0]["config"]["runner"]
    assert old["engine"]["n_workers"] == 3 and old["parallel_cells"] == local_runner["parallel_cells"]
    assert list(in_empty_folder.iterdir()) == []


def test_a_key_of_some_grid_options_reaches_their_cells_only(in_empty_folder: Path) -> None:
    # Prepare
    from cli.overrides import for_hydra

    overrides = ["+experiment=quickstart", "rounds=2", "strategy.mu=0.1"]
    # Execute
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        plan = plan_overrides("config", overrides)
        as_hydra_runs_it = plan_overrides("config", for_hydra(overrides, plan.scoped))
    # Assert: FedProx cells get mu (a new key: new cells), FedAvg cells are the unchanged ones
    strategies = {c["name"]: c["config"]["strategy"] for c in plan.cells}
    assert strategies["fedprox-c10-r2-s0"]["mu"] == strategies["fedprox-c50-r2-s0"]["mu"] == 0.1
    assert "mu" not in strategies["fedavg-c10-r2-s0"]
    assert plan.overrides[2] == ("strategy=fedprox", "num_clients=10", "strategy.mu=0.1")
    assert plan.overrides[0] == ("strategy=fedavg", "num_clients=10")
    assert for_hydra(overrides, plan.scoped)[-1] == "++strategy.mu=0.1"
    assert as_hydra_runs_it is plan  # the job Hydra composes with ++ finds this plan
    assert list(in_empty_folder.iterdir()) == []


def test_multirun_jobs_are_expanded_as_hydra_does_without_hydra_keys() -> None:
    # Execute
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        jobs = job_overrides(["strategy=fedavg,fedprox", "rounds=2", "hydra.verbose=true"], multirun=True)
        single = job_overrides(["rounds=2", "hydra.verbose=true"], multirun=False)
    # Assert
    assert jobs == [["strategy=fedavg", "rounds=2"], ["strategy=fedprox", "rounds=2"]]
    assert single == [["rounds=2"]]


def test_hydra_queries_are_left_to_hydra() -> None:
    # Execute / Assert: nothing is planned (so nothing can fail) for --help, --cfg, --info
    for argv in (["--help"], ["--cfg", "job", "rounds=0"], ["--info"]):
        check_command(argv)
