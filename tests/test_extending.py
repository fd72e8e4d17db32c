"""docs/extending.md's worked examples, taken from the page itself so that it cannot drift: its code
blocks are written into a package outside fedsweep, as a reader would copy them, then the strategy,
the selector, the dataset and the model are held to their contracts, every yaml composes through
`hydra.searchpath` in a dry run, and the toy engine runs the quickstart to the same weights as the
default engine."""

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from fedsweep.config import ConfigError
from fedsweep.config.environment import check_dataset_files
from fedsweep.config.plugins import build
from fedsweep.data.base import DatasetFilesMissing
from fedsweep.execution.base import Engine
from fedsweep.models.init import build_model
from fedsweep.rng import generator
from fedsweep.selection.base import ClientFeedback, Population
from fedsweep.strategies.base import ClientResult, ListResults, RoundContext
from fedsweep.strategies.fedavg import FedAvg
from fedsweep.train import LocalConfig, train_epoch

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "extending.md"
# A code block whose first line is a comment naming its file: `# mylab/clipped.py`.
BLOCK = re.compile(r"^```(?:python|yaml)\n(# (\S+\.(?:py|yaml))\n.*?)^```", re.DOTALL | re.MULTILINE)
FILES = {
    "mylab/clipped.py",
    "mylab/highloss.py",
    "mylab/csvdata.py",
    "mylab/tanhnet.py",
    "mylab/engine.py",
    "conf/strategy/clipped_fedavg.yaml",
    "conf/selection/high_loss.yaml",
    "conf/dataset/mycsv.yaml",
    "conf/model/tanhnet.yaml",
    "conf/runner/engine/toy.yaml",
}


def page_files() -> dict[str, str]:
    """{path in the reader's project: text} of every code block of the page that names its file."""
    return {path: text for text, path in BLOCK.findall(PAGE.read_text())}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The reader's project folder, outside fedsweep, written from the page; `mylab` importable."""
    root = tmp_path_factory.mktemp("myproject")
    for path, text in page_files().items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    (root / "mylab" / "__init__.py").write_text("")  # "an empty file: mylab is a package"
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    for name in [m for m in sys.modules if m == "mylab" or m.startswith("mylab.")]:
        del sys.modules[name]


def node(project: Path, yaml: str, **changes) -> dict:
    """The plug-in node of one of the page's yamls, with `changes`."""
    return {**OmegaConf.to_container(OmegaConf.load(project / yaml)), **changes}


def test_the_page_has_a_module_and_a_yaml_for_every_example() -> None:
    assert set(page_files()) == FILES
    layout = PAGE.read_text().split("```", 2)[1]  # the page's first block: the project's layout
    assert all(Path(path).name in layout for path in FILES)


# (a) the strategy


def result(client: int, params: dict[str, torch.Tensor], samples: int = 10) -> ClientResult:
    return ClientResult(
        client=client, num_samples=samples, loss=1.0, steps=1, epochs_done=1, epochs_planned=1, params=params
    )


def aggregate(strategy, global_params, results) -> dict[str, torch.Tensor]:
    context = RoundContext(round=1, selected=tuple(r.client for r in results), num_clients=4)
    out = strategy.aggregate(
        global_params=global_params,
        results=ListResults(results),
        failures=[],
        server_state={},
        context=context,
    )
    return out.params


GLOBAL = {"w": torch.zeros(3, 2), "b": torch.zeros(2), "count": torch.tensor(4, dtype=torch.int64)}


def test_clipped_fedavg_is_fedavg_when_no_update_is_clipped(project) -> None:
    # Prepare
    from mylab.clipped import ClippedFedAvg

    gen = torch.Generator().manual_seed(0)
    results = [
        result(c, {k: v + 0.01 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v + c
                   for k, v in GLOBAL.items()}, samples=10 + c)
        for c in range(3)
    ]  # fmt: skip
    # Execute
    clipped = aggregate(ClippedFedAvg(max_norm=10.0), GLOBAL, results)
    plain = aggregate(FedAvg(), GLOBAL, results)
    # Assert: bitwise FedAvg, keys, dtypes and all
    assert list(clipped) == list(GLOBAL)
    assert all(torch.equal(clipped[k], plain[k]) and clipped[k].dtype == plain[k].dtype for k in GLOBAL)


def test_clipped_fedavg_bounds_what_one_client_can_pull(project) -> None:
    # Prepare: one honest client, one that pushes the model 1,000 away
    from mylab.clipped import ClippedFedAvg

    honest = {k: v + 0.1 if v.is_floating_point() else v for k, v in GLOBAL.items()}
    attacker = {k: v + 1000.0 if v.is_floating_point() else v for k, v in GLOBAL.items()}
    # Execute
    out = aggregate(ClippedFedAvg(max_norm=1.0), GLOBAL, [result(0, honest), result(1, attacker)])
    # Assert: the mean of two updates of norm <= 1 has norm <= 1
    norm = torch.sqrt(sum(((out[k] - GLOBAL[k]) ** 2).sum() for k in ("w", "b")))
    assert 0.5 < float(norm) <= 1.0 + 1e-6
    assert torch.equal(out["count"], GLOBAL["count"])


def test_clipped_fedavg_keeps_the_model_when_nobody_reported(project) -> None:
    from mylab.clipped import ClippedFedAvg

    out = aggregate(ClippedFedAvg(), GLOBAL, [])
    assert all(torch.equal(out[k], GLOBAL[k]) for k in GLOBAL)


def test_clipped_fedavg_yaml_builds_and_a_bad_norm_is_one_line(project) -> None:
    from mylab.clipped import ClippedFedAvg

    path = "conf/strategy/clipped_fedavg.yaml"
    assert isinstance(build(node(project, path), key="strategy"), ClippedFedAvg)
    with pytest.raises(ConfigError, match=r"^strategy\.max_norm must be > 0 \(got 0\)$"):
        build(node(project, path, max_norm=0), key="strategy")


# (b) the selector


def select(selector, available: list[int], k: int, state: dict, *, seed: int = 0, rnd: int = 1):
    population = Population(num_samples=torch.full((8,), 20, dtype=torch.int64))
    return selector.select(
        round=rnd,
        available=torch.tensor(available, dtype=torch.int64),
        k=k,
        generator=generator(seed, "select", rnd),
        state=state,
        population=population,
    )


@pytest.mark.parametrize("explore", [0.0, 0.5, 1.0])
@pytest.mark.parametrize(("available", "k"), [(list(range(8)), 3), ([1, 4, 6], 5), ([0, 2, 3, 7], 0)])
def test_high_loss_keeps_the_selection_contract(project, explore, available, k) -> None:
    from mylab.highloss import HighLoss

    state = {"loss": torch.tensor([0.5, 2.0, 1.0, 3.0, 0.1, 0.7, 9.0, 0.2], dtype=torch.float64)}
    before = state["loss"].clone()
    chosen = select(HighLoss(explore=explore), available, k, state)
    again = select(HighLoss(explore=explore), available, k, state)
    assert chosen.clients == sorted(set(chosen.clients)) == again.clients  # sorted, distinct, seeded
    assert set(chosen.clients) <= set(available) and len(chosen.clients) == min(k, len(available))
    assert torch.equal(state["loss"], before)  # select never modifies the state it is given


def test_high_loss_learns_the_losses_and_picks_the_highest(project) -> None:
    # Prepare: round 1 with nobody heard from, then feedback from four clients (one failed)
    from mylab.highloss import HighLoss

    selector = HighLoss(explore=0.0)
    first = select(selector, list(range(8)), 4, {})
    feedback = [
        ClientFeedback(client=c, num_samples=20, loss=loss, steps=2)
        for c, loss in zip(first.clients[:3], (0.3, 2.5, 1.1), strict=True)
    ]
    feedback.append(ClientFeedback(client=first.clients[3], failure="transient"))
    # Execute
    state = selector.observe(round=1, feedback=feedback, state=first.state)
    second = select(selector, list(range(8)), 6, state, rnd=2)
    # Assert: the five unseen (+inf, the failed one among them) first, then the highest reported loss
    unseen = [c for c in range(8) if c not in first.clients[:3]]
    assert state["loss"][first.clients[1]] == 2.5
    assert second.clients == sorted([*unseen, first.clients[1]])


def test_high_loss_yaml_builds_and_refuses_a_bad_share(project) -> None:
    from mylab.highloss import HighLoss

    path = "conf/selection/high_loss.yaml"
    assert isinstance(build(node(project, path), key="selection"), HighLoss)
    with pytest.raises(ConfigError, match="^selection: explore must be in"):
        build(node(project, path, explore=1.5), key="selection")


# (c) the dataset and the model


@pytest.fixture
def points(tmp_path) -> Path:
    """A CSV of 200 points in two classes (the sign of x0 · x1)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(200, 2, generator=gen) * 2 - 1
    lines = ["x0,x1,label", *(f"{a:.5f},{b:.5f},{int(a * b > 0)}" for a, b in x.tolist())]
    path = tmp_path / "points.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_dataset_loads_every_row_once_as_tensors(project, points) -> None:
    # Prepare
    dataset = build(node(project, "conf/dataset/mycsv.yaml", path=str(points)), key="dataset")
    # Execute
    data = dataset.load(num_clients=4, seed=0)
    again, other = dataset.load(num_clients=4, seed=0), dataset.load(num_clients=4, seed=1)
    # Assert: float32 / int64, 20 % test, every row in exactly one split, the split seeded
    assert (data.train.x.dtype, data.train.y.dtype, data.num_classes) == (torch.float32, torch.int64, 2)
    assert (len(data.train), len(data.test)) == (160, 40) and data.natural is None
    rows = torch.cat([torch.cat([s.x, s.y[:, None].float()], 1) for s in (data.train, data.test)])
    assert len(torch.unique(rows, dim=0)) == 200
    assert torch.equal(data.test.x, again.test.x) and not torch.equal(data.test.x, other.test.x)


def test_csv_dataset_names_a_missing_file_before_anything_runs(project, tmp_path) -> None:
    missing = node(project, "conf/dataset/mycsv.yaml", path=str(tmp_path / "nope.csv"))
    with pytest.raises(ConfigError, match="nope.csv"):
        check_dataset_files(missing)  # what planning does: one error line, exit 2
    with pytest.raises(DatasetFilesMissing, match="nope.csv"):
        build(missing, key="dataset").load(num_clients=4, seed=0)


def test_tanhnet_builds_seeded_partitions_the_csv_and_learns_it(project, points) -> None:
    # Prepare: the dataset split over 4 clients by fedsweep's Dirichlet partition, the model from its yaml
    data = build(node(project, "conf/dataset/mycsv.yaml", path=str(points)), key="dataset").load(
        num_clients=4, seed=0
    )
    partition = build(OmegaConf.to_container(OmegaConf.load(ROOT / "conf/partition/dirichlet.yaml")), key="p")
    clients = partition.split(labels=data.train.y, num_clients=4, natural=None, generator=generator(0, "p"))
    factory = build(node(project, "conf/model/tanhnet.yaml", width=16), key="model")
    model = build_model(factory, input_shape=(2,), num_classes=2, generator_seed=7)
    twin = build_model(factory, input_shape=(2,), num_classes=2, generator_seed=7)
    seeded = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), twin.state_dict().values()))
    # Execute: five local epochs of one client, as fedsweep trains it
    params = {k: v.clone() for k, v in model.state_dict().items()}
    losses = []
    for epoch in range(5):
        out = train_epoch(
            model=model, data=data.train, indices=clients[0], params=params, optimizer_state={},
            global_params=params, strategy=FedAvg(), server_state={}, client_state={},
            cfg=LocalConfig(lr=0.5, batch_size=8), generator=generator(0, "train", epoch),
        )  # fmt: skip
        params, losses = out.params, [*losses, out.loss]
    # Assert
    assert torch.equal(torch.sort(torch.cat(list(clients))).values, torch.arange(len(data.train)))
    assert seeded
    assert model(data.test.x).shape == (len(data.test), 2)
    assert losses[-1] < losses[0]


# (d) the engine


def double(cell_dir: str, x: int) -> tuple[str, int, str]:
    return cell_dir, 2 * x, threading.current_thread().name


def fail(cell_dir: str) -> None:
    raise TimeoutError("the job's own error")  # not to be taken for the engine's polling


def test_toy_engine_runs_jobs_in_its_threads_counts_and_logs_them(project, tmp_path) -> None:
    # Prepare
    from mylab.engine import ToyEngine

    log = tmp_path / "jobs.jsonl"
    node_ = node(project, "conf/runner/engine/toy.yaml", threads=3, log=str(log))
    engine = build(node_, key="runner.engine")
    cell = SimpleNamespace(dir=str(tmp_path / "cell-a"))
    # Execute
    engine.start([])
    try:
        executor = engine.executor(cell)
        answers = executor.map(double, [(x,) for x in range(7)])
        one = executor.run(double, 21)
        with pytest.raises(TimeoutError, match="the job's own error"):
            executor.run(fail)
        measured, then = engine.round_measures(cell), engine.round_measures(cell)
    finally:
        engine.shutdown()
    # Assert
    assert isinstance(engine, ToyEngine) and isinstance(engine, Engine)
    assert [a[1] for a in answers] == [2 * x for x in range(7)] and one[1] == 42
    assert all(a[0] == cell.dir and a[2].startswith("toy") for a in [*answers, one])
    assert (executor.width, engine.width()) == (3, 3)
    assert measured == {"toy_jobs": 8.0} and then == {"toy_jobs": 0.0}  # the failed job is not counted
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 8 and {line["job"] for line in lines} == {"double"}
    assert engine.describe().line == "toy engine: jobs in 3 threads of its own"


def test_toy_engine_settings_are_checked_at_plan_time(project, tmp_path) -> None:
    from mylab.engine import ToyEngine

    with pytest.raises(ConfigError, match="^runner.engine: threads must be >= 1"):
        build(node(project, "conf/runner/engine/toy.yaml", threads=0), key="runner.engine")
    with pytest.raises(ConfigError, match="^runner.engine.log: no folder"):
        ToyEngine.check_plan({"threads": 2, "log": str(tmp_path / "no" / "jobs.jsonl")}, [])


# Every example through the real command line


def sweep(cwd: Path, project: Path, *overrides: str, env: dict[str, str] | None = None) -> str:
    """`python flows/sweep.py ...` in `cwd` with the reader's project on PYTHONPATH and its config
    folder on Hydra's search path (`env`: the environment, by default this one); its output, failing
    with it unless the exit status is 0."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(project), str(ROOT), env.get("PYTHONPATH")) if p)
    searchpath = f"hydra.searchpath=[file://{project}/conf]"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "flows" / "sweep.py"), searchpath, *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout


def test_every_yaml_composes_from_the_readers_folder(project, points, tmp_path) -> None:
    out = sweep(
        tmp_path,
        project,
        *("strategy=clipped_fedavg", "selection=high_loss", "dataset=mycsv", f"dataset.path={points}"),
        *(
            "partition=dirichlet",
            "model=tanhnet",
            "num_clients=20",
            "clients_per_round=5",
            "runner/engine=toy",
        ),
        "--dry-run",
    )
    assert "1 cell of default" in out and "clipped_fedavg-c20-r10-s0  new" in out
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_the_toy_engine_runs_the_quickstart_to_the_default_engines_weights(
    project, quickstart_sweep, tmp_path, prefect_home
) -> None:
    """Engines never change results: the session's quickstart (tests/conftest.py, the default
    engine) run again on the toy engine."""
    from sweep_cli import QUICKSTART, sweep_env

    from fedsweep.checkpoint.storage import open_storage
    from fedsweep.checkpoint.store import CheckpointStore
    from fedsweep.weights import weights_sha256

    def final_weights(cwd: Path) -> dict[str, str]:
        """{cell: final_weights_sha256} from the cells' last committed checkpoints."""
        out = {}
        for cell_dir in sorted((cwd / "outputs" / "quickstart" / "cells").iterdir()):
            latest = CheckpointStore(storage=open_storage(f"{cell_dir}/checkpoints")).load_latest()
            assert latest is not None and len(latest.meta["history"]) == 2
            out[cell_dir.name] = weights_sha256(latest.tensors["model"])
        return out

    # Prepare: the default engine's finished sweep
    default, _ = quickstart_sweep
    expected = final_weights(default)
    # Execute: its two strategies at 10 clients, 2 rounds, on the toy engine
    log = tmp_path / "jobs.jsonl"
    args = (*QUICKSTART, "tracking.enabled=false", "runner.progress=false", "runner/engine=toy")
    out = sweep(tmp_path, project, *args, f"runner.engine.log={log}", env=sweep_env(prefect_home))
    # Assert: the toy engine ran every job of both cells, and the weights are the default engine's
    assert "toy engine: jobs in 2 threads of its own" in out
    jobs = [json.loads(line) for line in log.read_text().splitlines()]
    assert {j["job"] for j in jobs} == {"client_epoch", "evaluate_part"}
    assert len({j["cell"] for j in jobs}) == 2 and {j["thread"][:3] for j in jobs} == {"toy"}
    assert len(expected) == 2 and final_weights(tmp_path) == expected
