"""A cell's identity, folder and name as planned (cli/plan.py, cli/identity.py, cli/preview.py), in
process and on folders made here: rounds are where a cell stops, `runner.device=auto` is the device it
resolves to, a cell keyed the old way is found where it is, and cells that differ have different
names. Planning writes nothing."""

import json
from pathlib import Path

import pytest
import torch
from hydra import initialize_config_dir

from cli.main import CONF_DIR, check_command
from cli.plan import plan_overrides
from cli.preview import cell_states, dry_run_text
from fedsweep.cell.layout import write_cell_config
from fedsweep.checkpoint.storage import open_storage
from fedsweep.checkpoint.store import CheckpointStore
from fedsweep.grid import cell_key, legacy_key

ONE = ("strategy=fedprox", "num_clients=4", "clients_per_round=2", "batch_size=16")


@pytest.fixture(autouse=True)
def in_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of its own, and plans made afresh (a plan is made once per command line and process)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("cli.plan._PLANS", {})
    return tmp_path


def plan(*overrides: str):
    import cli.plan

    cli.plan._PLANS.clear()  # the folders may have changed since the same command was planned
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return plan_overrides("config", list(overrides))


def files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


def make_old_cell(cell: dict, name: str, *, rounds: int, committed: int, key: str | None = None) -> Path:
    """A cell folder as fedsweep made it before rounds left the key: `<name>-<old key[:8]>`, its
    cell.json, and `committed` rounds of checkpoints (tiny tensors; only the manifests are read)."""
    config = {**cell["config"], "rounds": rounds}
    key = key or legacy_key(config)
    folder = Path("outputs/default/cells") / f"{name}-{key[:8]}"
    write_cell_config(str(folder), key=key, name=name, config=config)
    store = CheckpointStore(storage=open_storage(str(folder / "checkpoints")), keep=3)
    history = [{"round": r, "round_seconds": 40.0, "accuracy": 0.5} for r in range(1, committed + 1)]
    for r in range(1, committed + 1):
        store.save(
            round=r, tensors={"model": {"w": torch.zeros(2)}}, meta={"round": r, "history": history[:r]}
        )
    return folder


def test_rounds_do_not_change_a_cell_but_a_grid_over_them_does(in_empty_folder: Path) -> None:
    # Execute
    (five,), (ten,) = plan(*ONE, "rounds=5").cells, plan(*ONE, "rounds=10").cells
    grid = plan(*ONE, "+grid.rounds=[5,10]").cells
    # Assert: one cell at 5 or 10 rounds, in a folder without -rN; a grid over rounds: two cells
    assert five["key"] == ten["key"] == cell_key(five["config"]) and five["dir"] == ten["dir"]
    assert five["dir"].endswith(f"/fedprox-c4-s0-{five['key'][:8]}")
    assert (five["name"], ten["name"]) == ("fedprox-c4-r5-s0", "fedprox-c4-r10-s0")
    assert [c["name"] for c in grid] == ["fedprox-c4-r5-s0", "fedprox-c4-r10-s0"]
    assert grid[0]["key"] != grid[1]["key"] and grid[0]["key"] == legacy_key(grid[0]["config"])
    assert grid[0]["dir"].endswith(f"/fedprox-c4-r5-s0-{grid[0]['key'][:8]}")
    assert files(in_empty_folder) == []


def test_a_setting_interpolated_from_rounds_makes_them_part_of_the_cell(in_empty_folder: Path) -> None:
    # Execute
    (cell,) = plan(*ONE, "rounds=6", "lr_schedule.milestones=[${rounds}]").cells
    # Assert
    assert cell["rounds_in_key"] and cell["rounds_from"] == ["lr_schedule.milestones.0"]
    assert cell["config"]["lr_schedule"]["milestones"] == [6]
    assert cell["key"] == legacy_key(cell["config"]) != cell_key(cell["config"])
    (state,) = cell_states(plan(*ONE, "rounds=6", "lr_schedule.milestones=[${rounds}]"))
    assert state == (
        "new",
        "new (rounds is part of this cell: lr_schedule.milestones.0 depends on it; "
        "other rounds are another cell)",
    )


def test_device_auto_on_a_machine_without_cuda_is_the_cpu_cell(
    in_empty_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    # Execute
    (cpu,), (auto,) = plan(*ONE).cells, plan(*ONE, "runner.device=auto").cells
    # Assert: the same key, folder and name; the cell records the device it runs on
    assert (auto["key"], auto["dir"], auto["name"]) == (cpu["key"], cpu["dir"], cpu["name"])
    assert auto["config"]["runner"]["device"] == "cpu"


def test_a_cell_keyed_the_old_way_is_used_where_it_is(in_empty_folder: Path) -> None:
    # Prepare: the 5-round cell made before, its folder named and keyed with its rounds
    (cell,) = plan(*ONE, "rounds=5").cells
    old = make_old_cell(cell, "fedprox-c4-r5-s0", rounds=5, committed=5)
    before = files(in_empty_folder)
    # Execute
    same, more, fewer = plan(*ONE, "rounds=5", "seed=0"), plan(*ONE, "rounds=8"), plan(*ONE, "rounds=3")
    # Assert: its folder and key, whatever the rounds; the dry run says what happens
    for p in (same, more, fewer):
        assert p.cells[0]["dir"] == str(old) and p.cells[0]["key"] == legacy_key(
            {**cell["config"], "rounds": 5}
        )
    assert cell_states(same) == [("finished", "finished (skipped)")]
    assert cell_states(more) == [
        ("extend", "extends from round 5 to 8: about 2 min left at 40 s a round (measured in rounds 1-5)")
    ]
    assert cell_states(fewer) == [
        ("finished", "finished (skipped): 5 rounds committed, more than rounds=3; nothing is undone")
    ]
    assert fewer.cells[0]["name"] == "fedprox-c4-r5-s0"  # the round it stops at: 5 are there
    assert files(in_empty_folder) == before


def test_of_several_old_folders_of_a_cell_the_one_to_extend_is_taken(in_empty_folder: Path) -> None:
    # Prepare: the cell run at 2 rounds and at 6 before: two folders, two old keys
    (cell,) = plan(*ONE, "rounds=2").cells
    two = make_old_cell(cell, "fedprox-c4-r2-s0", rounds=2, committed=2)
    six = make_old_cell(cell, "fedprox-c4-r6-s0", rounds=6, committed=3)  # interrupted after round 3
    # Execute / Assert: the most rounds not beyond the request, else the fewest beyond it
    assert plan(*ONE, "rounds=10").cells[0]["dir"] == str(six)
    assert plan(*ONE, "rounds=2").cells[0]["dir"] == str(two)
    assert cell_states(plan(*ONE, "rounds=4")) == [("resume", "resumes after round 3 of 4")]
    assert plan(*ONE, "rounds=1").cells[0]["dir"] == str(two)


def test_cells_that_differ_have_different_names(in_empty_folder: Path) -> None:
    # Prepare: FedProx at mu=1 made before, in this sweep folder
    (cell,) = plan(*ONE, "rounds=2").cells
    make_old_cell(cell, "fedprox-c4-r2-s0", rounds=2, committed=2)
    # Execute: mu=0.1 here; two models in one -m command
    (mu,) = plan(*ONE, "rounds=2", "strategy.mu=0.1").cells
    again = plan(*ONE, "rounds=2").cells[0]
    models = check_command(["-m", *ONE, "rounds=2", "sweep_name=two", "model=logreg,mlp"])
    # Assert: the first holder keeps its name, the others say what differs
    assert (again["name"], mu["name"]) == ("fedprox-c4-r2-s0", "fedprox-c4-r2-s0-mu0.1")
    assert [p.cells[0]["name"] for p in models] == ["fedprox-c4-r2-s0", "fedprox-c4-r2-s0-mlp"]
    assert "fedprox-c4-r2-s0-mlp" in dry_run_text(models)


def test_a_given_suffix_is_kept(in_empty_folder: Path) -> None:
    # Prepare: a cell named with a suffix (recorded in its folder), the plain name's holder gone
    (cell,) = plan(*ONE, "rounds=2", "strategy.mu=0.1").cells
    folder = Path(cell["dir"])
    write_cell_config(
        str(folder), key=cell["key"], name="fedprox-c4-r2-s0-mu0.1", config=cell["config"], suffix="mu0.1"
    )
    # Execute
    (again,) = plan(*ONE, "rounds=3", "strategy.mu=0.1").cells
    # Assert
    assert again["dir"] == str(folder) and again["name"] == "fedprox-c4-r3-s0-mu0.1"
    assert json.loads((folder / "cell.json").read_text())["suffix"] == "mu0.1"


def test_later_jobs_extend_an_earlier_jobs_cell_in_the_dry_run(in_empty_folder: Path) -> None:
    # Execute
    text = dry_run_text(check_command(["-m", *ONE, "rounds=2,5,3"]))
    # Assert
    lines = [line.split("  ")[1:3] for line in text.splitlines() if line.startswith("  ")]
    assert [[part.strip() for part in line if part.strip()] for line in lines] == [
        ["fedprox-c4-r2-s0", "new"],
        ["fedprox-c4-r5-s0", "extends from round 2 to 5 (after job 1)"],
        ["fedprox-c4-r3-s0", "runs in job 2, then skipped"],
    ]
