"""conf/checkpoint/default.yaml: exactly the documented keys, and they build the objects."""

import pathlib

from omegaconf import OmegaConf

from fedsweep.checkpoint.storage import open_storage
from fedsweep.checkpoint.store import CheckpointStore
from fedsweep.checkpoint.writer import BackgroundWriter

CONF = pathlib.Path(__file__).parents[2] / "conf" / "checkpoint" / "default.yaml"


def test_default_config_builds(tmp_path: pathlib.Path) -> None:
    # Prepare
    cfg = OmegaConf.load(CONF)

    # Execute
    store = CheckpointStore(storage=open_storage(cfg.location or str(tmp_path)), keep=cfg.keep)
    writer = BackgroundWriter(max_retries=cfg.write_retries, timeout_s=cfg.write_timeout_s)

    # Assert
    assert set(cfg) == {"location", "keep", "write_timeout_s", "write_retries", "background"}
    assert cfg.location is None and cfg.background is True and store.keep == 3
    assert writer.close(timeout_s=5)
