"""The drift, noniid, csfl and powd presets plan their cells and pass validation (plug-ins included),
writing nothing."""

from pathlib import Path

import pytest

import cli.main
from cli.main import check_command

CONF = Path(cli.main.CONF_DIR)
DEBIAN = "/usr/share/datasets/fashion-mnist"  # conf/dataset/fashion_mnist_debian.yaml

CASES = {
    "drift": ["fedavg", "fedprox", "scaffold", "fednova", "feddyn"],
    "noniid": [
        f"{s}-{a}"
        for s in ("fedavg", "fedprox", "scaffold", "fednova", "feddyn")
        for a in ("alpha0.1", "alpha1.0")
    ],
}


@pytest.mark.parametrize("preset", sorted(CASES))
def test_preset_plans_every_strategy(tmp_path, monkeypatch, preset) -> None:
    # Prepare
    monkeypatch.chdir(tmp_path)
    # Execute
    (plan,) = check_command([f"+experiment={preset}", "rounds=2"])
    # Assert
    names = [c["name"] for c in plan.cells]
    assert [
        n.split("-c")[0] + ("-" + n.rsplit("-", 1)[1] if preset == "noniid" else "") for n in names
    ] == CASES[preset]
    assert list(tmp_path.iterdir()) == []


def test_csfl_and_powd_plan_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: tiny versions (16 clients: powd's largest d is 15)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.chdir(run_dir)
    selectors = ["uniform", "pow_d", "oort"]
    tiny = ["rounds=2", "num_clients=16", "clients_per_round=3"]
    real = []  # without Debian's package, the files are looked for (by name only) in a stand-in folder
    if not Path(DEBIAN).is_dir():
        stand_in = tmp_path / "fmnist"
        stand_in.mkdir()
        for name in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"):
            (stand_in / f"{name}-ubyte.gz").write_bytes(b"")
        real = [f"dataset.root={stand_in}"]
    # Execute: csfl on real Fashion-MNIST and offline (its documented dataset=teacher_mnist), powd
    (csfl,) = check_command(["+experiment=csfl", *tiny, *real])
    (offline,) = check_command(
        ["+experiment=csfl", *tiny, "dataset=teacher_mnist", "grid.selection=[uniform]"]
    )
    (powd,) = check_command(["+experiment=powd", *tiny, *real])
    # Assert
    assert [c["config"]["selection"]["_target_"].rsplit(".", 2)[-2] for c in csfl.cells] == selectors
    first = csfl.cells[0]["config"]
    assert (first["model"]["channels"], first["partition"]["alpha"], first["dataset"]["_target_"]) == (
        [32, 64],
        0.5,
        "fedsweep.data.vision.FashionMNIST",
    )
    assert offline.cells[0]["config"]["dataset"]["_target_"] == "fedsweep.data.teacher.TeacherMNIST"
    assert [c["name"].rsplit("-", 1)[-1] for c in powd.cells] == ["rand", "powd6", "powd9", "powd15"]
    assert [c["config"]["selection"].get("d") for c in powd.cells] == [None, 6, 9, 15]
    assert first["systems"]["_target_"].endswith("Fleet")
    config = powd.cells[0]["config"]
    assert (config["local_epochs"], config["local_steps"], config["batch_size"], config["lr"]) == (
        None,
        30,
        64,
        0.005,
    )
    assert (config["model"]["hidden"], config["partition"]["alpha"]) == ([64, 30], 2.0)
    assert config["dataset"]["root"] == (real[0].split("=", 1)[1] if real else DEBIAN)
    assert list(run_dir.iterdir()) == []
