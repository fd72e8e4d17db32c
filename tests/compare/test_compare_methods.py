"""Cells grouped into methods, and each method's figures, on accuracies chosen to be worked by hand."""

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from fedsweep.compare.methods import Run, group_cells, method_figures, method_params, paired_differences
from fedsweep.compare.tables import tables, to_csv, to_markdown, to_text
from fedsweep.config.schema import semantic_params, semantic_view
from fedsweep.grid import flatten

ROOT = Path(__file__).resolve().parents[2]
T2, T1 = 4.302652729749464, 12.706204736174698  # t(0.975, 2), t(0.975, 1)
# accuracy per round (1, 2, 3), by seed
FEDAVG = {0: [0.5, 0.7, 0.8], 1: [0.6, 0.9, 0.85], 2: [0.4, 0.5, 0.6]}
FEDPROX = {0: [0.55, 0.75, 0.84], 1: [0.65, 0.82, 0.88], 2: [0.5, 0.6, 0.66]}


_PARAMS: dict[tuple[str, ...], dict[str, str]] = {}


@pytest.fixture
def params(cell_config):
    """MLflow's params of a quickstart cell (as cli/plan.py logs them), by strategy and seed."""

    def of(strategy: str, seed: int, *more: str) -> dict[str, str]:
        key = (strategy, str(seed), *more)
        if key not in _PARAMS:  # composing costs a fraction of a second; the tests share them
            config = cell_config(
                "+experiment=quickstart",
                "num_clients=10",
                "rounds=3",
                f"strategy={strategy}",
                f"seed={seed}",
                *more,
            )
            _PARAMS[key] = {**{k: str(v) for k, v in flatten(config).items()}, "choice.strategy": strategy}
        return _PARAMS[key]

    return of


def runs(params) -> list[Run]:
    out = []
    for strategy, accuracies in (("fedavg", FEDAVG), ("fedprox", FEDPROX)):
        for seed, values in accuracies.items():
            out.append(Run(f"{strategy}-c10-r3-s{seed}", params(strategy, seed), list(enumerate(values, 1))))
    return out


def test_method_params_are_the_cell_keys_view_less_the_seed(cell_config) -> None:
    config = cell_config("+experiment=quickstart", "strategy=fedprox", "runner.amp=true")
    flat = {k: str(v) for k, v in flatten(config).items()}
    assert set(semantic_params(flat)) == set(flatten(semantic_view(config)))
    assert "runner.amp" in semantic_params(flat) and "runner.torch_threads" not in semantic_params(flat)
    assert set(method_params(flat)) == set(flatten(semantic_view(config))) - {"seed", "rounds"}


def test_cells_group_by_method_whatever_their_sweep_and_runner(params) -> None:
    # Prepare: fedavg seed 0 again, recorded by another sweep that ran its clients in Dask, and once more
    # by a run made before engines were plug-ins (its params name `runner.pool` and `runner.dask.*`)
    again = Run(
        "fedavg-c10-r3-s0",
        params("fedavg", 0, "sweep_name=other", "runner/engine=dask"),
        [(1, 0.1), (2, 0.1), (3, 0.1)],
    )
    old_params = {
        **params("fedavg", 0, "sweep_name=old"),
        "runner.pool": "dask",
        "runner.dask.n_workers": "2",
    }
    old = Run("fedavg-c10-r3-s0", old_params, [(1, 0.2), (2, 0.2), (3, 0.2)])
    # Execute
    cells, repeats = group_cells([*runs(params), again, old])
    # Assert: the repeats are counted, not averaged in
    assert repeats == 2
    assert [(c.method, c.seed, c.final) for c in cells][:3] == [
        ("fedavg-c10-r3", 0, 0.8),
        ("fedavg-c10-r3", 1, 0.85),
        ("fedavg-c10-r3", 2, 0.6),
    ]
    assert {c.method for c in cells} == {"fedavg-c10-r3", "fedprox-c10-r3"}


def test_methods_sharing_a_name_are_told_apart_by_their_params(params) -> None:
    one = Run("fedprox-c10-r3-s0", params("fedprox", 0, "strategy.mu=0.1"), [(1, 0.5)])
    two = Run("fedprox-c10-r3-s0", params("fedprox", 0, "strategy.mu=1.0"), [(1, 0.6)])
    cells, _ = group_cells([one, two])
    assert [c.method for c in cells] == ["fedprox-c10-r3 strategy.mu=0.1", "fedprox-c10-r3 strategy.mu=1.0"]


def test_figures_worked_by_hand(params) -> None:
    # Execute
    cells, _ = group_cells(runs(params))
    fedavg, fedprox = method_figures(cells, target=0.8)
    # Assert: finals 0.8, 0.85, 0.6: mean 0.75, s^2 = 0.035 / 2
    assert fedavg.final.mean == pytest.approx(0.75)
    assert fedavg.final.half == pytest.approx(T2 * (0.035 / 2 / 3) ** 0.5)
    # bests 0.8, 0.9, 0.6: mean 0.7667, s^2 = 0.046667 / 2
    assert fedavg.best.mean == pytest.approx(0.766667, abs=1e-6)
    assert fedavg.best.half == pytest.approx(T2 * (0.0466667 / 2 / 3) ** 0.5, abs=1e-6)
    # rounds to 0.8: 3 (seed 0), 2 (seed 1), never (seed 2): mean 2.5 over the 2 that got there
    assert (fedavg.reached, fedavg.rounds.n, fedavg.rounds.mean) == (2, 2, 2.5)
    assert fedavg.rounds.half == pytest.approx(T1 * 0.5)
    assert (fedprox.reached, fedprox.rounds.mean) == (2, 2.5)  # rounds 3, 2 and never


def test_paired_differences_worked_by_hand(params) -> None:
    cells, _ = group_cells(runs(params))
    # Execute
    (paired,) = paired_differences(cells, baseline="fedavg-c10-r3")
    # Assert: per seed 0.84-0.8, 0.88-0.85, 0.66-0.6 = 0.04, 0.03, 0.06: mean 0.04333, s^2 = 0.00046667 / 2
    assert (paired.method, paired.difference.n, paired.unpaired) == ("fedprox-c10-r3", 3, 0)
    assert paired.difference.mean == pytest.approx(0.0433333, abs=1e-6)
    assert paired.difference.half == pytest.approx(T2 * (0.00046667 / 2 / 3) ** 0.5, abs=1e-6)


def test_a_seed_one_side_lacks_is_counted_unpaired(params) -> None:
    cells, _ = group_cells([r for r in runs(params) if r.name != "fedprox-c10-r3-s2"])
    (paired,) = paired_differences(cells, baseline="fedavg-c10-r3")
    assert (paired.difference.n, paired.unpaired) == (2, 1)
    assert paired.difference.mean == pytest.approx(0.035)


def test_tables_show_every_figure_and_the_csv_holds_the_bounds(params) -> None:
    # Prepare
    cells, _ = group_cells(runs(params))
    figures, paired = method_figures(cells, 0.8), paired_differences(cells, "fedavg-c10-r3")
    # Execute
    parts = tables(figures, paired, 0.8)
    rows = list(csv.DictReader(io.StringIO(to_csv(figures, paired, 0.8))))
    # Assert
    text, markdown = to_text(parts), to_markdown(parts)
    assert "0.7500 ± 0.3286" in text and "2/3" in text and "+0.0433 ± 0.0379" in text
    assert "| fedprox-c10-r3 | 3 | +0.0433 ± 0.0379 | 0 |" in markdown
    rounds = next(r for r in rows if r["method"] == "fedavg-c10-r3" and r["metric"] == "rounds_to_0.8")
    assert (rounds["n"], float(rounds["mean"]), rounds["missing"]) == ("2", 2.5, "1")
    diff = next(r for r in rows if r["table"] == "paired")
    assert float(diff["ci_high"]) - float(diff["mean"]) == pytest.approx(paired[0].difference.half)


def test_the_command_imports_neither_prefect_nor_mlflow_to_start() -> None:
    # MLflow is imported once the arguments are checked; Prefect never (seconds of start-up)
    check = "import sys, cli.compare; print(sorted({'prefect', 'mlflow'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.stdout.strip() == "[]", done.stderr


def test_a_method_is_told_apart_by_the_rounds_its_runs_have(params) -> None:
    # Prepare: seed 0's cell at 3 rounds and, in another sweep, at 2 (an old run with its `rounds`
    # param, a new one without: a cell's run grows when it is extended)
    three = Run("fedavg-c10-r3-s0", params("fedavg", 0), list(enumerate(FEDAVG[0], 1)))
    two = {k: v for k, v in params("fedavg", 1).items() if k != "rounds"}
    runs = [three, Run("fedavg-c10-r2-s1", two, list(enumerate(FEDAVG[1][:2], 1)))]
    # Execute
    cells, repeats = group_cells(runs)
    # Assert: two methods (3 rounds, 2 rounds), whatever the params say of rounds
    assert repeats == 0 and [c.method for c in cells] == ["fedavg-c10-r3", "fedavg-c10-r2"]
