"""fedsweep's entry point: a whole grid of FL experiments from one command.

    python flows/sweep.py +experiment=quickstart
    python flows/sweep.py +experiment=quickstart rounds=3 strategy=fedavg
    python flows/sweep.py -m strategy=fedavg,fedprox num_clients=10,100
    python flows/sweep.py +experiment=quickstart --dry-run    # the cells, which are finished; exit 0

One Prefect flow run per sweep (flows/sweep_flow.py), one child flow run per cell (flows/cell_flow.py);
one MLflow parent run per sweep and a child run per cell. Re-running the same command resumes;
`resume=false` starts over. The command line is checked first, every job of it, and a mistake is one
`error: ...` line and exit status 2 with nothing written (cli/main.py); Ctrl-C and SIGTERM stop the
sweep after the running round and exit with 130 / 143 (fedsweep/interrupt.py); the same command
then resumes.
"""

import sys

from fedsweep.interrupt import exit_status, install

if __name__ == "__main__":
    install()  # first: Ctrl-C during the slow imports below is one line and exit 130, not a traceback

import hydra
from omegaconf import DictConfig

from cli.main import CONF_DIR, CONFIG_NAME, cli, fail
from cli.plan import plan_sweep
from fedsweep.config import ConfigError
from server.leftovers import SweepLocked


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name=CONFIG_NAME)
def main(cfg: DictConfig) -> None:
    """Hydra's job: run the plan `cli` made for it; exit 1 if a cell failed, 130 / 143 if stopped."""
    from cli.preview import announce  # noqa: PLC0415 - torch: once the command is checked

    try:
        plan = plan_sweep(cfg)
    except ConfigError as err:  # only reachable when cli() was bypassed (e.g. --config-dir)
        fail(err)
    announce(plan)  # the first job's line was printed by cli(), before the Prefect server started
    from cli.run import run_sweep  # noqa: PLC0415 - imports Prefect: only once input is valid

    try:
        failed = run_sweep(plan)
    except SweepLocked as err:  # the same sweep, in the same folder, is running
        fail(err)
    stopped = exit_status()
    if stopped:  # Ctrl-C or SIGTERM: what finished is committed; re-running resumes
        sys.exit(stopped)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    cli(main)
