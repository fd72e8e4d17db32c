"""Prefect flows only: sweep.py (the entry point), sweep_flow.py (flow "sweep"), cell_flow.py (flow
"cell": the round loop), round.py (one round, top to bottom), and what hooks into them (callbacks.py,
artifacts.py, commit.py, view.py)."""
