"""Every conf/dataset and conf/partition yaml instantiates (without reading any dataset files)."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fedsweep.data.base import Dataset, Partition

CONF = Path(__file__).resolve().parents[2] / "conf"


def test_expected_options_exist() -> None:
    # Assert
    assert {p.stem for p in (CONF / "dataset").glob("*.yaml")} >= {
        "synthetic",
        "mnist",
        "fashion_mnist",
        "cifar10",
        "teacher_mnist",
    }
    assert {p.stem for p in (CONF / "partition").glob("*.yaml")} >= {
        "natural",
        "iid",
        "dirichlet",
        "shards",
        "lognormal",
        "powerlaw",
        "label_quantity",
    }


@pytest.mark.parametrize("path", sorted((CONF / "dataset").glob("*.yaml")), ids=lambda p: p.stem)
def test_dataset_yaml_instantiates(path: Path) -> None:
    # Execute
    dataset = instantiate(OmegaConf.load(path))
    # Assert
    assert isinstance(dataset, Dataset)


@pytest.mark.parametrize("path", sorted((CONF / "partition").glob("*.yaml")), ids=lambda p: p.stem)
def test_partition_yaml_instantiates(path: Path) -> None:
    # Execute
    partition = instantiate(OmegaConf.load(path))
    # Assert
    assert isinstance(partition, Partition)


def test_synthetic_with_natural_from_yaml_loads_and_splits() -> None:
    # Prepare
    dataset = instantiate(OmegaConf.load(CONF / "dataset" / "synthetic.yaml"))
    partition = instantiate(OmegaConf.load(CONF / "partition" / "natural.yaml"))
    data = dataset.load(num_clients=3, seed=0)
    # Execute
    from fedsweep.rng import generator

    parts = partition.split(labels=data.train.y, num_clients=3, natural=data.natural, generator=generator(0))
    # Assert
    assert sum(len(p) for p in parts) == len(data.train)
