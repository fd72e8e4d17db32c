"""Prefect flows: sweep.py (the entry point) and experiment.py (one cell: the round loop)."""
