"""Bad invocations of `python flows/sweep.py`: one `error:` line, exit status 2, nothing written.

Every case is checked in-process through `check_command`, what the entry point calls first: one
ConfigError of one line naming the key, nothing written. One case per stage where a mistake can be
found also runs the real entry point, in its own empty folder, to its `error:` line and exit status 2
(Hydra's parsing, the schema, the plug-ins (torch imported), the file system, the argument parser,
a multirun job, the Dask cluster started after planning); those runs are started together (they
exit before Prefect or MLflow is imported) and each test then checks one of them. More cases are in
test_validation_plan.py.
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cli.main import check_command
from fedsweep.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ROOT / "flows" / "sweep.py"

# case -> (arguments, texts the error line must contain). {cwd} is the run's folder, {blocker} a file.
CASES: dict[str, tuple[list[str], list[str]]] = {
    "unknown-key": (["foo=1"], ["unknown key foo", "rounds"]),
    "added-unknown-key": (["+foo=1"], ["unknown key foo"]),
    "wrong-type": (["rounds=abc"], ["rounds must be an integer", "'abc'"]),
    "rounds-zero": (["rounds=0"], ["rounds must be >= 1 (got 0)"]),
    "lr-zero": (["lr=0"], ["lr must be > 0 (got 0)"]),
    "batch-size-zero": (["batch_size=0"], ["batch_size must be >= 1 (got 0)"]),
    "too-many-per-round": (
        ["clients_per_round=20", "num_clients=10"],
        ["clients_per_round", "num_clients=10"],
    ),
    "pow-d-fewer-candidates": (
        ["selection=pow_d", "selection.d=2", "clients_per_round=3"],
        ["selection.d must be >= clients_per_round (3)"],
    ),
    "pow-d-more-candidates": (
        ["selection=rpow_d", "selection.d=11", "num_clients=10"],
        ["selection.d must be <= num_clients (10), got d=11"],
    ),
    "dirichlet-alpha-zero": (["partition=dirichlet", "partition.alpha=0"], ["partition.alpha must be > 0"]),
    "keep-one": (["checkpoint.keep=1"], ["checkpoint.keep must be >= 2 (got 1)"]),
    "round-timeout-zero": (
        ["aggregation.round_timeout_s=0"],
        ["aggregation.round_timeout_s must be null or a number"],
    ),
    "unknown-option": (["strategy=nope"], ["unknown option strategy=nope", "fedavg,", "fedprox,"]),
    "unknown-experiment": (["+experiment=nope"], ["unknown option experiment=nope", "quickstart"]),
    "missing-dataset-files": (
        ["dataset=mnist", "dataset.root={cwd}/nodata", "partition=iid"],
        ["dataset files missing", "{cwd}/nodata/train-images-idx3-ubyte[.gz] (and 3 more)"],
    ),
    "empty-grid-axis": (["+experiment=quickstart", "grid.strategy=[]"], ["grid.strategy", "non-empty list"]),
    "bad-flag": (["--nope"], ["--nope"]),
    "multirun-bad-job": (["-m", "rounds=1,0"], ["rounds must be >= 1 (got 0)"]),
    "output-dir-not-creatable": (
        ["output_dir={blocker}/out"],
        ["output_dir", "{blocker} is not a directory"],
    ),
    "unknown-checkpoint-protocol": (["checkpoint.location=nope://x"], ["checkpoint.location", "'nope'"]),
    "dask-no-scheduler": (
        ["runner.pool=dask", "runner.dask.address=tcp://127.0.0.1:1"],
        ["runner.engine.address=tcp://127.0.0.1:1", "no Dask scheduler answers"],
    ),
    "dask-bad-address": (
        ["runner.pool=dask", "runner.dask.address=nope"],
        ["runner.engine.address", "tcp://HOST:8786"],
    ),
    "dask-cluster-not-importable": (
        ["runner.pool=dask", "runner.dask.cluster={{_target_:nope.Cluster}}"],
        ["runner.engine.cluster._target_", "cannot import 'nope.Cluster'"],
    ),
    "dask-cluster-not-built": (
        [
            "runner.pool=dask",
            "runner.dask.cluster={{_target_:distributed.LocalCluster,host:203.0.113.1,n_workers:1}}",
        ],
        ["runner.engine.cluster", "could not start", "Cannot assign requested address"],
    ),
    "grid-key-in-no-cell": (
        ["+experiment=quickstart", "grid.strategy=[fedavg,fedavgm]", "strategy.mu=0.1"],
        ["strategy.mu=0.1: reaches no cell", "the grid's strategy options: fedavg, fedavgm"],
    ),
    "grid-key-added": (
        ["+experiment=quickstart", "+strategy.mu=0.1"],
        ["+strategy.mu=0.1", "write strategy.mu=0.1", "the grid's strategy options: fedavg, fedprox"],
    ),
    "grid-key-inside-grid": (
        ["+experiment=quickstart", "grid.strategy.fedprox.mu=0.1"],
        [
            "grid.strategy.fedprox.mu=0.1",
            "write strategy.mu=0.1",
            "the grid's strategy options: fedavg, fedprox",
        ],
    ),
    "dask-memory-state": (
        ["runner.pool=dask", "checkpoint.location=memory://x"],
        ["checkpoint.location=memory://x", "Dask workers cannot reach it"],
    ),
}


# The cases that also run the real command: one per stage that finds a mistake (see above).
THROUGH_THE_COMMAND = (
    "unknown-option",
    "unknown-key",
    "missing-dataset-files",
    "output-dir-not-creatable",
    "bad-flag",
    "multirun-bad-job",
    "dask-cluster-not-built",
)
# Found once the cluster is started, after planning: the command alone finds it.
AFTER_PLANNING = ("dask-cluster-not-built",)


def run_cli(args: list[str], cwd: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CI": "true", **extra_env}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, str(SWEEP), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


@pytest.fixture(scope="module")
def blocker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file where a case needs a folder."""
    path = tmp_path_factory.mktemp("elsewhere") / "a-file"
    path.write_text("not a folder")
    return path


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, blocker: Path
) -> Iterator[dict[str, tuple[subprocess.CompletedProcess, Path, dict[str, str]]]]:
    """The command-line cases run once, concurrently, each in its own empty folder."""
    jobs = {}
    for case in THROUGH_THE_COMMAND:
        args, _ = CASES[case]
        cwd = tmp_path_factory.mktemp(case)
        fill = {"cwd": str(cwd), "blocker": str(blocker)}
        jobs[case] = ([a.format(**fill) for a in args], cwd, fill)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case: pool.submit(run_cli, args, cwd) for case, (args, cwd, _) in jobs.items()}
        yield {case: (futures[case].result(), jobs[case][1], jobs[case][2]) for case in jobs}


@pytest.mark.parametrize("case", sorted(set(CASES) - set(AFTER_PLANNING)))
def test_bad_input_is_one_config_error_naming_it_before_anything_is_written(
    case: str, blocker: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    args, expected = CASES[case]
    fill = {"cwd": str(tmp_path), "blocker": str(blocker)}
    monkeypatch.chdir(tmp_path)
    # Execute
    with pytest.raises(ConfigError) as err:
        check_command([a.format(**fill) for a in args])
    # Assert
    message = str(err.value)
    assert "\n" not in message
    for text in expected:
        assert text.format(**fill) in message, message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", THROUGH_THE_COMMAND)
def test_bad_invocation_is_one_error_line_exit_2_and_writes_nothing(runs: dict, case: str) -> None:
    # Prepare
    _, expected = CASES[case]
    # Execute
    proc, cwd, fill = runs[case]
    # Assert
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for text in expected:
        assert text.format(**fill) in lines[0]
    assert list(cwd.iterdir()) == []  # no outputs/, no mlruns/, no multirun.yaml


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes through permission bits")
def test_read_only_output_dir_is_named(tmp_path: Path) -> None:
    # Prepare
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        # Execute
        proc = run_cli([f"output_dir={locked}/out"], tmp_path)
    finally:
        locked.chmod(0o755)
    # Assert
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: output_dir: cannot write to {locked} (permission denied)"
    assert list(locked.iterdir()) == []


def test_dask_missing_is_one_error_line(tmp_path: Path) -> None:
    # Prepare: a `distributed` that cannot be imported, first on the path
    shadow = tmp_path / "shadow" / "distributed"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'distributed'\")\n")
    cwd = tmp_path / "run"
    cwd.mkdir()
    path = os.pathsep.join([str(shadow.parent), str(ROOT), os.environ.get("PYTHONPATH", "")])
    # Execute
    proc = run_cli(["runner.pool=dask"], cwd, PYTHONPATH=path)
    # Assert
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == 'error: runner/engine=dask needs dask: pip install "fedsweep[dask]"'
    assert list(cwd.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://u:secret@127.0.0.1/prefect", "takes a postgresql+asyncpg://"),
        (
            "postgresql+asyncpg://u:secret@127.0.0.1:1/prefect",
            "postgresql+asyncpg://127.0.0.1:1/prefect: no PostgreSQL server answers there",
        ),
    ],
)
def test_unusable_prefect_database_is_one_error_line(tmp_path: Path, url: str, expected: str) -> None:
    # Execute: the private Prefect server would be told to use this database
    proc = run_cli(["rounds=1"], tmp_path, PREFECT_SERVER_DATABASE_CONNECTION_URL=url, PREFECT_API_URL="")
    # Assert: named, the password left out, nothing written
    assert proc.returncode == 2, proc.stderr
    assert (
        proc.stderr.startswith("error: PREFECT_SERVER_DATABASE_CONNECTION_URL=") and expected in proc.stderr
    )
    assert len(proc.stderr.strip().splitlines()) == 1 and "secret" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_dry_run_lists_the_cells_and_writes_nothing_without_prefect_or_mlflow(tmp_path: Path) -> None:
    # Prepare: the quickstart, with FedProx's mu set for the FedProx cells (in a fresh folder)
    env = {**os.environ, "CI": "true"}
    args = ["-X", "importtime", str(SWEEP), "+experiment=quickstart", "strategy.mu=0.1", "--dry-run"]
    # Execute
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    # Assert: the 4 cells, all new, the override where it applies; nothing written, nothing slow imported
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert lines[0] == "dry run (nothing is run or written): 4 cells of quickstart in outputs/quickstart"
    assert [line.split()[:2] for line in lines[1:]] == [
        ["fedavg-c10-r10-s0", "new"],
        ["fedavg-c50-r10-s0", "new"],
        ["fedprox-c10-r10-s0", "new"],
        ["fedprox-c50-r10-s0", "new"],
    ]
    assert lines[3].endswith("strategy=fedprox num_clients=10 strategy.mu=0.1") and "mu" not in lines[1]
    imported = {
        line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line
    }
    assert "torch" in imported and not imported & {"prefect", "mlflow", "distributed"}
    assert list(tmp_path.iterdir()) == []
