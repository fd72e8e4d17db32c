"""Bad settings of the update-comparing selectors are refused in one line naming the key."""

from pathlib import Path

import pytest
from hydra import initialize_config_dir

from fedsweep.config import ConfigError, validate
from fedsweep.config.compose import compose_config

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["selection=clustered_similarity", "selection.sketch_dim=0"], "selection.sketch_dim must be > 0, got 0"),
        (["selection=clustered_similarity", "selection.similarity=l1"], "selection.similarity"),
        (["selection=divfl", "selection.sketch_dim=-3"], "selection.sketch_dim must be > 0, got -3"),
        (["selection=clustered_size"], None),
        (["selection=divfl"], None),
    ],
)
def test_bad_selector_settings_name_the_key(overrides: list[str], expected: str | None) -> None:
    # Prepare
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        config, choices = compose_config("config", overrides)
    # Execute / Assert
    if expected is None:
        validate(config, groups=choices)
        return
    with pytest.raises(ConfigError) as err:
        validate(config, groups=choices)
    assert expected in str(err.value) and "\n" not in str(err.value)
