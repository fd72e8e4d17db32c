"""The command line: checking and planning a command (`main`, `plan`, `overrides`), what it will do
(`preview`: the start-up line and the dry run), a finished sweep's receipt (`finished`), running a
plan (`run`: the Prefect server, the engine, tracking, the sweep flow) and comparing past sweeps
(`compare`). Nothing here is a Prefect flow or task; `run` is the only module that starts them."""
