"""The sweep command line: check every job of a command before Hydra runs it, then run it.

`python flows/sweep.py ...` calls `cli` here. Bad input is refused before Hydra runs anything:
`check_command` parses the command line as Hydra would, plans every job (every point of a `-m`
sweep, every cell of its grid) with Hydra's compose API and the schema (cli/plan.py), and on the
first mistake `fail` prints one `error: ...` line and exits with 2, having written nothing. Only a
command that plans cleanly is handed to `hydra.main`, whose task function finds the plan already
made (and the sweep's execution engine already reached: a Dask scheduler that does not answer is a
mistake of the same kind). Hydra's own error printing (several lines, then exit 1) is thus never
reached for a user's mistake, without patching Hydra: checking first is simpler and also covers
multirun, where Hydra would only find a bad job after running the good ones.

Before anything slow (the Prefect server, MLflow) one line says how many cells start and how many
are finished (cli/preview.py). `--dry-run`, anywhere on the command line, is taken out before
Hydra parses it: the command is planned and checked as usual, its cells are listed with what would
happen to each, and it exits with 0 having written nothing. A key that exists in some grid cells only
(`strategy.mu=0.1` in a FedAvg-vs-FedProx grid, cli/overrides.py) reaches Hydra as `++strategy.mu=0.1`.
"""

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from hydra import initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from cli.aliases import translate
from cli.overrides import for_hydra
from cli.plan import name_jobs, plan_overrides
from fedsweep.config import ConfigError
from fedsweep.config.compose import parse_overrides
from fedsweep.interrupt import finish

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
CONFIG_NAME = "config"
DRY_RUN = "--dry-run"
USAGE_ERROR = 2  # argparse's exit status for a bad command line; ours for every user mistake
# Prefect reads its logging settings when it is first imported: fedsweep's quiet defaults go first
# (a user's own settings win). The terminal shows fedsweep's lines and Prefect's warnings.
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Prefect's client prints a telemetry notice on its first import in a terminal (and then reports usage)
# unless DO_NOT_TRACK is set; its server's analytics are off above. A user's own value wins.
os.environ.setdefault("DO_NOT_TRACK", "1")
# MLflow reports usage from a background thread (its config fetched from the network at start-up) unless
# DO_NOT_TRACK is "true" (not "1") or this is set; a user's own value wins here too.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def fail(err: BaseException | str) -> NoReturn:
    """One line on stderr, exit status 2: how every user mistake ends."""
    print(f"error: {' '.join(str(err).split())}", file=sys.stderr, flush=True)
    sys.exit(USAGE_ERROR)


def check_command(argv: list[str]) -> list:
    """Plan every job the command line would run (their SweepPlans); ConfigError on the first mistake."""

    def usage_error(message: str) -> NoReturn:
        raise ConfigError(f"{message} (see python flows/sweep.py --help)")

    parser = get_args_parser()
    parser.error = usage_error  # type: ignore[method-assign] - argparse would print usage and exit
    args = parser.parse_args(translate(argv))
    queries = (
        args.help,
        args.hydra_help,
        args.cfg,
        args.info,
        args.shell_completion,
        args.experimental_rerun,
    )
    if any(queries) or args.config_path or args.config_dir:
        return []  # Hydra's own commands, or another config tree: Hydra handles them (and the job validates)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name="sweep"):
        plans = [
            plan_overrides(args.config_name or CONFIG_NAME, job)
            for job in job_overrides(args.overrides, multirun=args.multirun)
        ]
    name_jobs(plans)
    return plans


def job_overrides(overrides: list[str], *, multirun: bool) -> list[list[str]]:
    """The task overrides of each job Hydra would launch (one job unless `-m`), hydra.* keys left out
    but `hydra.searchpath`."""
    parsed = parse_overrides(overrides)  # names the override that does not parse
    if multirun:
        # The same expansion as Hydra's default sweeper, so each job here is a job there.
        parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
        try:
            jobs = BasicSweeper.split_arguments(parser.parse_overrides(overrides), max_batch_size=None)[0]
        except HydraException as err:
            raise ConfigError(str(err)) from None
    else:
        jobs = [[o.input_line for o in parsed]]
    # Hydra's own keys stay with Hydra, but for `hydra.searchpath`: config folders of the user's own
    # (conf/model/mynet.yaml, conf/runner/engine/toy.yaml beside their package) that the cells compose from.
    return [[o.input_line for o in parse_overrides(job) if _composes(o)] for job in jobs]


def _composes(override: Any) -> bool:
    """Whether an override composes the cells: every one but Hydra's own, less its search path."""
    return not override.is_hydra_override() or override.key_or_group == "hydra.searchpath"


def cli(main: Callable[[], Any], argv: list[str] | None = None) -> None:
    """Check the command, then run it with Hydra (`main`: the entry's `hydra.main` function)."""
    args = translate(sys.argv[1:] if argv is None else argv)
    dry_run = DRY_RUN in args
    args = [a for a in args if a != DRY_RUN]
    try:
        plans = check_command(args)
    except ConfigError as err:
        fail(err)
    from cli.preview import announce, dry_run_text  # noqa: PLC0415 - torch: once the command is valid

    if dry_run:
        if not plans:
            fail(
                f"{DRY_RUN} lists the cells of a sweep; "
                "it does not go with Hydra's --help, --cfg, --info or --config-dir"
            )
        print(dry_run_text(plans), flush=True)
        return
    sys.argv = [sys.argv[0], *for_hydra(args, tuple(o for p in plans for o in p.scoped))]
    from cli.finished import skip_if_finished  # noqa: PLC0415 - torch, as cli.preview
    from server.leftovers import SweepLocked  # noqa: PLC0415 - psutil: as late as it can be

    try:
        if skip_if_finished(plans):  # from the sweep folder alone: no server, no Prefect, no MLflow
            finish(0)
    except SweepLocked as err:
        fail(err)
    if plans:
        from fedsweep import execution  # noqa: PLC0415 - torch: only for a command that runs
        from server.private import check_database, prefect_server  # noqa: PLC0415 - as execution

        try:
            check_database()  # a PostgreSQL server for Prefect that does not answer: one line, exit 2
        except ConfigError as err:
            fail(err)
        announce(plans[0])
        try:  # worker processes fork now, while this process has no other thread; a cluster is reached
            execution.start([cell for plan in plans for cell in plan.cells])
        except ConfigError as err:
            fail(err)
        # The input is valid: find the shared Prefect server, or start one now, so that its ~6 s of start-up
        # run beside Hydra's set-up and the imports (its log goes to the first job's folder).
        prefect_server(plans[0].dir)
    try:
        main()
    except SystemExit as done:
        finish(done.code)
    finish(0)
