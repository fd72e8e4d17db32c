"""Prefect tasks: thin, typed wrappers over the fedsweep library. Retries, timeouts and cache keys
live here; the work itself lives in fedsweep.rounds (through the jobs of fedsweep/jobs.py).
"""
