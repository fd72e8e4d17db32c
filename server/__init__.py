"""The Prefect API server a sweep talks to, and what a killed sweep leaves behind.

`private` (one server per command, tied to its life) and `shared` (one per user and database,
gone when idle) run `process` (uvicorn serving Prefect's API); `leftovers` marks a killed run's
flow runs Crashed, removes interrupted temp files and locks a sweep folder; `untrusted` keeps
anything but plain data out of Prefect's persisted results. Used by the command line (cli/)."""
