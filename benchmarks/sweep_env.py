"""The environment of a benchmarked sweep process: this checkout first on PYTHONPATH, no Prefect
server of the user's (each sweep starts its private one), CI=true (no prompts)."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def sweep_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(CI="true", PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p))
    return env
