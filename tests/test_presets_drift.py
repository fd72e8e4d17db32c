"""The drift and noniid presets plan their cells and pass validation (plug-ins included), writing nothing."""

import pytest

from flows.sweep import check_command

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
