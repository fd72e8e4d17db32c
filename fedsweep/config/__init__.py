"""Validated configuration: the schema and the cell key's semantic keys (`schema.py`), pydantic
validation with one-line errors (`validation.py`), plug-in checks and the plug-in builder
(`plugins.py`), pre-flight checks of paths, URLs and dataset files (`environment.py`) and Hydra
composition with one-line errors (`compose.py`). A user's mistake is one `ConfigError`
(`errors.py`), found before anything is written."""

from fedsweep.config.errors import ConfigError
from fedsweep.config.schema import CellSettings, validate

__all__ = ["CellSettings", "ConfigError", "validate"]
