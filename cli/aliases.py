"""Command-line keys that moved, and how a command written for them still runs.

Engines became plug-ins (conf/runner/engine/*.yaml), so two spellings changed; the old ones are
translated before anything parses the command line, so scripts and notes keep working:

    runner.pool=NAME            -> runner/engine=NAME          (the engine group; -m lists work too)
    runner.dask.KEY=VALUE       -> runner.engine.KEY=VALUE     (the Dask engine's own keys)

A config file that still sets them is refused with a line saying where they went
(fedsweep/config/schema.py, `RETIRED_RUNNER_KEYS`).
"""

import re

_ALIASES = (
    (re.compile(r"^runner\.pool=(.*)$"), r"runner/engine=\1"),
    (re.compile(r"^(\+{0,2})runner\.dask\.(.+)$"), r"\1runner.engine.\2"),
)


def translate(argv: list[str]) -> list[str]:
    """The command line with every old spelling replaced by the new one."""
    out = []
    for arg in argv:
        for pattern, replacement in _ALIASES:
            arg = pattern.sub(replacement, arg)
        out.append(arg)
    return out
