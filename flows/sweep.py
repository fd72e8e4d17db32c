"""fedsweep's entry point: a whole grid of FL experiments from one command.

    python flows/sweep.py +experiment=quickstart
    python flows/sweep.py +experiment=quickstart rounds=3 strategy=fedavg
    python flows/sweep.py -m strategy=fedavg,fedprox num_clients=10,100

One Prefect flow run per sweep, one child flow run per cell; one MLflow parent run per sweep and a
child run per cell. Re-running the same command resumes; `resume=false` starts over.
"""

import os
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    from flows.plan import plan_sweep  # noqa: PLC0415 - keep `--help` and bad input fast

    plan = plan_sweep(cfg)
    from flows.runner import run_sweep  # noqa: PLC0415 - imports Prefect: only once input is valid

    failed = run_sweep(plan)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
