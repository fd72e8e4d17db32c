"""Comparing methods over seeds, from what finished cells recorded (the `cli/compare.py` command).

Pure functions over plain rows, no MLflow here: `stats.py` (means, exact Student-t intervals,
rounds-to-target), `methods.py` (cells grouped into methods; per-method figures; paired differences
against a baseline) and `tables.py` (text, Markdown, CSV).
"""
