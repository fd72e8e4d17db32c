"""Pre-flight checks (fedsweep/config/environment.py): folders, URLs, dataset files; nothing created."""

from pathlib import Path

import pytest

from fedsweep.config import ConfigError
from fedsweep.config.environment import (
    check_creatable,
    check_dataset_files,
    check_device,
    check_location,
    check_tracking,
)

MNIST_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]
CIFAR_FILES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]


def test_a_folder_that_can_be_created_passes_and_is_not_created(tmp_path: Path) -> None:
    # Execute
    check_creatable(tmp_path / "a" / "b" / "c", key="output_dir")
    check_location(f"file://{tmp_path}/ckpt", key="checkpoint.location")
    check_location("memory://bucket/ckpt", key="checkpoint.location")
    check_tracking(
        {
            "enabled": True,
            "uri": f"sqlite:///{tmp_path}/mlruns/mlflow.db",
            "artifact_root": f"{tmp_path}/mlruns/artifacts",
        }
    )
    # Assert
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "key", ["output_dir", "checkpoint.location", "tracking.uri", "tracking.artifact_root"]
)
def test_a_file_in_the_way_is_named(tmp_path: Path, key: str) -> None:
    # Prepare
    blocker = tmp_path / "file"
    blocker.write_text("x")
    tracking = {"enabled": True, "uri": "sqlite:///mlruns/mlflow.db", "artifact_root": "mlruns/artifacts"}
    checks = {
        "output_dir": lambda: check_creatable(blocker / "out", key="output_dir"),
        "checkpoint.location": lambda: check_location(str(blocker / "ckpt"), key="checkpoint.location"),
        "tracking.uri": lambda: check_tracking({**tracking, "uri": f"sqlite:///{blocker}/db/mlflow.db"}),
        "tracking.artifact_root": lambda: check_tracking(
            {**tracking, "uri": "http://localhost:5000", "artifact_root": f"{blocker}/art"}
        ),
    }
    # Execute
    with pytest.raises(ConfigError) as err:
        checks[key]()
    # Assert
    assert str(err.value).startswith(f"{key}") and f"{blocker} is not a directory" in str(err.value)


def test_disabled_tracking_is_not_checked(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    check_tracking({"enabled": False, "uri": f"sqlite:///{tmp_path}/file/x.db", "artifact_root": "x"})


def test_unknown_protocol_and_missing_package_are_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown protocol 'nope'"):
        check_location("nope://x", key="checkpoint.location")
    with pytest.raises(ConfigError, match=r"needs the 's3fs' package \(pip install s3fs\)"):
        check_location("s3://bucket/x", key="checkpoint.location")


def test_cpu_and_auto_devices_always_pass() -> None:
    check_device("cpu")
    check_device("auto")


@pytest.mark.parametrize(
    ("option", "folder", "names"),
    [
        ("MNIST", "MNIST/raw", MNIST_FILES),
        ("FashionMNIST", "FashionMNIST/raw", MNIST_FILES),
        ("CIFAR10", "cifar-10-batches-py", CIFAR_FILES),
    ],
)
def test_dataset_files_are_checked_by_name_without_reading(
    tmp_path: Path, option: str, folder: str, names: list[str]
) -> None:
    # Prepare
    node = {"_target_": f"fedsweep.data.vision.{option}", "root": str(tmp_path), "download": False}
    # Execute / Assert: nothing there (the MNIST family names root itself: a flat folder is fine too)
    nothing = tmp_path if option != "CIFAR10" else tmp_path / folder
    with pytest.raises(ConfigError, match=rf"dataset files missing: {nothing}/\S+ \(and \d+ more\)"):
        check_dataset_files(node)
    # Execute / Assert: empty files of the right names pass (they are never opened)
    (tmp_path / folder).mkdir(parents=True)
    for name in names:
        (tmp_path / folder / name).write_bytes(b"")
    check_dataset_files(node)
    (tmp_path / folder / names[-1]).unlink()
    gz = r"\[\.gz\]" if option != "CIFAR10" else ""
    with pytest.raises(ConfigError, match=rf"dataset files missing: {tmp_path}/{folder}/{names[-1]}{gz};"):
        check_dataset_files(node)


def test_datasets_without_files_or_with_download_pass(tmp_path: Path) -> None:
    check_dataset_files({"_target_": "fedsweep.data.synthetic.Synthetic"})
    check_dataset_files({"_target_": "fedsweep.data.vision.MNIST", "root": str(tmp_path), "download": True})
    assert list(tmp_path.iterdir()) == []
