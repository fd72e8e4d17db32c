"""The drift, noniid, csfl and powd presets plan their cells and pass validation (plug-ins included),
writing nothing."""

import shutil
from pathlib import Path

import pytest

import flows.sweep
from flows.sweep import check_command

CONF = Path(flows.sweep.CONF_DIR)
DEBIAN = "/usr/share/datasets/fashion-mnist"  # conf/dataset/fashion_mnist_debian.yaml

CASES = {
    "drift": ["fedavg", "fedprox", "scaffold", "fednova", "feddyn"],
    "noniid": [f"{s}-{a}" for s in ("fedavg", "fedprox", "scaffold", "fednova", "feddyn") for a in ("alpha0.1", "alpha1.0")],
}


@pytest.mark.parametrize("preset", sorted(CASES))
def test_preset_plans_every_strategy(tmp_path, monkeypatch, preset) -> None:
    # Prepare
    monkeypatch.chdir(tmp_path)
    # Execute
    (plan,) = check_command([f"+experiment={preset}", "rounds=2"])
    # Assert
    names = [c["name"] for c in plan.cells]
    assert [n.split("-c")[0] + ("-" + n.rsplit("-", 1)[1] if preset == "noniid" else "") for n in names] == CASES[preset]
    assert list(tmp_path.iterdir()) == []


def present(group: str, options: list[str]) -> list[str]:
    return [o for o in options if (CONF / group / f"{o}.yaml").exists()]


@pytest.fixture
def conf_until_systems_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """csfl turns the fleet system model on (conf/systems/fleet.yaml); where this tree has no systems
    group yet, plan from a copy of conf/ whose csfl lacks that one line."""
    if (CONF / "systems" / "fleet.yaml").exists():
        return
    copy = tmp_path / "conf"
    shutil.copytree(CONF, copy)
    preset = copy / "experiment" / "csfl.yaml"
    preset.write_text("".join(line for line in preset.read_text().splitlines(True) if "/systems:" not in line))
    monkeypatch.setattr(flows.sweep, "CONF_DIR", str(copy))


def test_csfl_and_powd_plan_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conf_until_systems_exists) -> None:
    # Prepare: tiny versions; the selectors of their grids that this tree has (pow_d and oort arrive
    # with their own modules)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.chdir(run_dir)
    selectors = present("selection", ["uniform", "pow_d", "oort"])
    methods = {"rand": "{selection: uniform}"} | {f"powd{d}": f"{{selection: pow_d, selection.d: {d}}}" for d in (6, 9, 15)}
    methods = {k: v for k, v in methods.items() if "pow_d" in selectors or k == "rand"}
    tiny = ["rounds=2", "num_clients=6", "clients_per_round=3"]
    real = []  # without Debian's package, the files are looked for (by name only) in a stand-in folder
    if not Path(DEBIAN).is_dir():
        stand_in = tmp_path / "fmnist"
        stand_in.mkdir()
        for name in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"):
            (stand_in / f"{name}-ubyte.gz").write_bytes(b"")
        real = [f"dataset.root={stand_in}"]
    # Execute: csfl on real Fashion-MNIST and offline (its documented dataset=teacher_mnist), powd
    (csfl,) = check_command(["+experiment=csfl", *tiny, *real, f"grid.selection=[{','.join(selectors)}]"])
    (offline,) = check_command(["+experiment=csfl", *tiny, "dataset=teacher_mnist", "grid.selection=[uniform]"])
    (powd,) = check_command(["+experiment=powd", *tiny, *real, "~grid.method",
                             f"+grid.method={{{','.join(f'{k}:{v}' for k, v in methods.items())}}}"])
    # Assert
    assert [c["config"]["selection"]["_target_"].rsplit(".", 2)[-2] for c in csfl.cells] == selectors
    first = csfl.cells[0]["config"]
    assert (first["model"]["channels"], first["partition"]["alpha"], first["dataset"]["_target_"]) == (
        [32, 64], 0.5, "fedsweep.data.vision.FashionMNIST")
    assert offline.cells[0]["config"]["dataset"]["_target_"] == "fedsweep.data.teacher.TeacherMNIST"
    assert [c["name"].rsplit("-", 1)[-1] for c in powd.cells] == list(methods)
    config = powd.cells[0]["config"]
    assert (config["local_epochs"], config["local_steps"], config["batch_size"], config["lr"]) == (None, 30, 64, 0.005)
    assert (config["model"]["hidden"], config["partition"]["alpha"]) == ([64, 30], 2.0)
    assert config["dataset"]["root"] == (real[0].split("=", 1)[1] if real else DEBIAN)
    assert list(run_dir.iterdir()) == []
