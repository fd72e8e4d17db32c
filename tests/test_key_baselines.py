"""Options added after cells were keyed count in a cell's identity only when set: every preset's cell
keys are those computed before the options existed (pinned below), a plug-in key at its class's
`KEY_BASELINES` value is left out of the cell key and of the params compare groups seeds by, and a
set option makes a new cell."""

import pytest

from cli.main import check_command
from fedsweep.compare.methods import Run, group_cells, method_params
from fedsweep.config.schema import plugin_baselines, semantic_params, semantic_view
from fedsweep.grid import cell_key, flatten, legacy_key

# The quickstart as it was at c895941 (since then: 90 % stragglers, E = 5, 10 rounds).
OLD_QUICKSTART = [
    "+experiment=quickstart", "faults=none", "rounds=5", "local_epochs=1", "aggregation.stragglers=partial"
]  # fmt: skip
# Cell keys computed at commit c895941 (before dropout, normalisation constants, the Dirichlet rules,
# FedAdam's step_count and weighted Multi-Krum existed): experiment presets, then plug-in options.
PINNED = {
    "bench": {
        "fedavg-c100-r50-s0": "9aec99ae02a3fdaf",
    },
    "byzantine": {
        "fedavg-c11-r30-s0-mean": "fb30cfb5db982844",
        "fedmedian-c11-r30-s0-median": "8c2423aa449467ec",
        "trimmedmean-c11-r30-s0-beta0.2": "03ed334f37a79935",
        "krum-c11-r30-s0-f2": "67f981309b5507ec",
        "multikrum-c11-r30-s0-f2-m9": "a55af7c06f1e5eca",
        "bulyan-c11-r30-s0-f2-theta7": "be68ebc431c6d1dd",
    },
    "csfl": {
        "fedavg-c100-r100-s0-uniform": "6daebd220126ddd4",
        "fedavg-c100-r100-s0-pow_d": "9717707e21a7eea0",
        "fedavg-c100-r100-s0-oort": "df78b04aebf2de6f",
    },
    "drift": {
        "fedavg-c30-r30-s0": "9ea4f6db2bc1aafe",
        "fedprox-c30-r30-s0": "cebcff1096e8f158",
        "scaffold-c30-r30-s0": "541fa7188dece7a6",
        "fednova-c30-r30-s0": "935f2c2d3c9f9de0",
        "feddyn-c30-r30-s0": "f3c6cd4e89e2bf90",
    },
    "failures": {
        "fedavg-c4-r5-s0": "d9774dac896d6dad",
    },
    "noniid": {
        "fedavg-c20-r20-s0-alpha0.1": "453dfcd987bb48c0",
        "fedavg-c20-r20-s0-alpha1.0": "c7ecae3372af954d",
        "fedprox-c20-r20-s0-alpha0.1": "2bbbf5476bc86c2f",
        "fedprox-c20-r20-s0-alpha1.0": "95cec0d14ba799f2",
        "scaffold-c20-r20-s0-alpha0.1": "4bf3519b80009d51",
        "scaffold-c20-r20-s0-alpha1.0": "debe0f6653ddd587",
        "fednova-c20-r20-s0-alpha0.1": "807662dba60edb26",
        "fednova-c20-r20-s0-alpha1.0": "44f01611deafcb07",
        "feddyn-c20-r20-s0-alpha0.1": "4d2e7bbc5cbcaaac",
        "feddyn-c20-r20-s0-alpha1.0": "4b82b113ccf08cf3",
    },
    "powd": {
        "fedavg-c100-r300-s0-rand": "63f7766443d8b3af",
        "fedavg-c100-r300-s0-powd6": "8f320b7f55fa08ad",
        "fedavg-c100-r300-s0-powd9": "8a5a3948d004162c",
        "fedavg-c100-r300-s0-powd15": "f094c17e83a2f997",
    },
    "quickstart": {
        "fedavg-c10-r5-s0": "cbb01e7638afc889",
        "fedavg-c50-r5-s0": "47bc08644bcbdb29",
        "fedprox-c10-r5-s0": "27369351ff990f24",
        "fedprox-c50-r5-s0": "65dc604935c79737",
    },
    "scale100": {
        "fedavg-c100-r100-s0-avg": "00101402ad781129",
        "fedprox-c100-r100-s0-mu1": "1038b0d0494500ef",
        "fedprox-c100-r100-s0-mu0.01": "0525f74127ea0766",
    },
    "stragglers": {
        "fedavg-c30-r20-s0-fraction0.0-fedavg_drop": "60060db7eeb8d438",
        "fedprox-c30-r20-s0-fraction0.0-fedprox_mu0": "17dcf86b7b9197ad",
        "fedprox-c30-r20-s0-fraction0.0-fedprox_mu1": "0dee37364be21b7d",
        "fedavg-c30-r20-s0-fraction0.5-fedavg_drop": "fbcaa7d3ec16eaea",
        "fedprox-c30-r20-s0-fraction0.5-fedprox_mu0": "ee9517de48dab7ba",
        "fedprox-c30-r20-s0-fraction0.5-fedprox_mu1": "b7c63e26e538a5e0",
        "fedavg-c30-r20-s0-fraction0.9-fedavg_drop": "f841ebc53abb5bc0",
        "fedprox-c30-r20-s0-fraction0.9-fedprox_mu0": "d68e7dafc0e37694",
        "fedprox-c30-r20-s0-fraction0.9-fedprox_mu1": "05c2ba2aa85643a4",
    },
    "model=mlp": {
        "fedavg-c10-r5-s0": "09852ab8e08a2ad2",
        "fedavg-c50-r5-s0": "a6ae60a74ce517f9",
        "fedprox-c10-r5-s0": "0319ef31a91dc6fd",
        "fedprox-c50-r5-s0": "187a25d15ff03127",
    },
    "dataset=fashion_mnist_debian partition=dirichlet model=mlp": {
        "fedavg-c10-r5-s0": "3f017376e2ec392f",
        "fedavg-c50-r5-s0": "7b45e36746f7f510",
        "fedprox-c10-r5-s0": "6a53501ec81bb09c",
        "fedprox-c50-r5-s0": "d69011f381118646",
    },
    "strategy=fedadam": {
        "fedadam-c10-r5-s0": "aa34ea9d31d82ec2",
        "fedadam-c50-r5-s0": "e531efa496bc2f4a",
    },
    "strategy=multikrum": {
        "multikrum-c10-r5-s0": "d9d72cf1c3856096",
        "multikrum-c50-r5-s0": "a62502770a4eeb2b",
    },
    "strategy=krum": {
        "krum-c10-r5-s0": "e487600da0075530",
        "krum-c50-r5-s0": "21da14287836ebdf",
    },
}
EXTRA = {
    "model=mlp": ["model=mlp"],
    "dataset=fashion_mnist_debian partition=dirichlet model=mlp": [
        "dataset=fashion_mnist_debian",
        "partition=dirichlet",
        "model=mlp",
    ],
    "strategy=fedadam": ["strategy=fedadam"],
    "strategy=multikrum": ["strategy=multikrum"],
    "strategy=krum": ["strategy=krum"],
}


def keys(command: list[str]) -> dict[str, str]:
    """The cells' keys as they were computed before rounds left them (`legacy_key`: cells keyed
    then are found by it, cli/identity.py)."""
    (plan,) = check_command(command)
    return {c["name"]: legacy_key(c["config"]) for c in plan.cells}


@pytest.mark.parametrize("group", sorted(PINNED))
def test_every_existing_cell_keeps_its_key(tmp_path, monkeypatch, group: str) -> None:
    # Prepare: the planner, as the sweep runs it (it writes nothing)
    monkeypatch.chdir(tmp_path)
    command = {"quickstart": OLD_QUICKSTART, **{g: [*OLD_QUICKSTART, *e] for g, e in EXTRA.items()}}.get(
        group, [f"+experiment={group}"]
    )
    # Execute / Assert
    assert keys(command) == PINNED[group]


SET = {
    "model.dropout=0.5": ["model=mlp"],
    "dataset.mean=[0.1307]": ["dataset=fashion_mnist_debian", "partition=dirichlet"],
    "partition.split_seed=2020": ["dataset=fashion_mnist_debian", "partition=dirichlet"],
    "partition.cap=true": ["dataset=fashion_mnist_debian", "partition=dirichlet"],
    "partition.redraw=true": ["dataset=fashion_mnist_debian", "partition=dirichlet"],
    "strategy.weighted=true": ["strategy=multikrum"],
}
BASELINE = {
    "model.dropout=0.0": ["model=mlp"],
    "dataset.std=null": ["dataset=fashion_mnist_debian", "partition=dirichlet"],
    "partition.cap=false": ["dataset=fashion_mnist_debian", "partition=dirichlet"],
    "strategy.step_count=server": ["strategy=fedadam"],
}


@pytest.mark.parametrize(("option", "group"), [*SET.items(), *BASELINE.items()])
def test_an_option_counts_only_off_its_baseline(tmp_path, monkeypatch, option: str, group: list[str]) -> None:
    # Prepare
    monkeypatch.chdir(tmp_path)
    base = [*OLD_QUICKSTART, "strategy=fedavg", "num_clients=10", *group]
    # Execute
    plain, with_option = keys(base), keys([*base, option])
    # Assert
    assert (plain == with_option) is (option in BASELINE)


def test_the_view_and_the_params_leave_out_baseline_values() -> None:
    # Prepare: an MLP node with the dropout written out at its baseline, and one set
    node = {"_target_": "fedsweep.models.mlp.MLP", "_partial_": True, "hidden": [64]}
    at_baseline, written = {"model": node}, {"model": {**node, "dropout": 0.0}}
    set_ = {"model": {**node, "dropout": 0.5}}
    # Execute / Assert: the view (hashed into the key) and the flattened MLflow params alike
    assert semantic_view(written) == semantic_view(at_baseline) != semantic_view(set_)
    params = {k: str(v) for k, v in flatten(written).items()}
    assert "model.dropout" not in semantic_params(params)
    assert semantic_params({k: str(v) for k, v in flatten(set_).items()})["model.dropout"] == "0.5"
    assert cell_key(written) == cell_key(at_baseline)
    assert plugin_baselines("fedsweep.models.mlp.MLP") == {"dropout": 0.0}
    assert plugin_baselines("no.such.Class") == {} and plugin_baselines(None) == {}


def test_compare_puts_runs_from_before_and_after_an_option_in_one_method() -> None:
    # Prepare: seed 0 recorded before `dropout` existed, seed 1 after (written at its baseline)
    old = {"seed": "0", "model._target_": "fedsweep.models.mlp.MLP", "model.hidden": "[64]", "lr": "0.1"}
    new = {**old, "seed": "1", "model.dropout": "0.0"}
    runs = [Run("fedavg-c10-r5-s0", old, [(1, 0.5)]), Run("fedavg-c10-r5-s1", new, [(1, 0.6)])]
    # Execute
    cells, repeats = group_cells(runs)
    # Assert
    assert method_params(old) == method_params({**new, "seed": "0"})
    assert [c.method for c in cells] == ["fedavg-c10-r5", "fedavg-c10-r5"] and repeats == 0
