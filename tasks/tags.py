"""The MLflow tag names fedsweep writes (tasks/track.py) and reads (flows/compare.py).

No Prefect import here: the compare command reads MLflow without starting Prefect.
"""

SWEEP_KEY, CELL_KEY = "fedsweep.sweep_key", "fedsweep.cell_key"
SUPERSEDED_BY = "fedsweep.superseded_by"
