"""Validated configuration: the schema (`schema.py`), plug-in checks (`plugins.py`), pre-flight checks
of paths, URLs and dataset files (`environment.py`) and Hydra composition with one-line errors
(`compose.py`). A user's mistake is one `ConfigError`, found before anything is written."""

from fedsweep.config.errors import ConfigError
from fedsweep.config.schema import CellSettings, validate

__all__ = ["CellSettings", "ConfigError", "validate"]
