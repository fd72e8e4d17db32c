"""Where a sweep's start-up goes, and whole-process times of this checkout beside another one.

    python benchmarks/startup.py                                   # this checkout alone, 3 repeats
    python benchmarks/startup.py --before /tmp/fedsweep-before --repeat 3 --out /tmp/startup.json
    (make a `before` checkout with: git archive <commit> | tar -x -C /tmp/fedsweep-before)
    venv/bin/python benchmarks/startup.py --before ../main --before-python "$(which python)"
    (two environments)

Scenarios, each a whole `python flows/sweep.py` process (interpreter, imports, server, exit), a
1-round, 1-cell quickstart (`strategy=fedavg num_clients=10 rounds=1`) in a fresh folder:

- `new-cold`: nothing running; a Prefect server must boot (a fresh runtime folder each time);
- `new-warm`: a second sweep while the first one's shared server is still up (the checkout's
  runtime folder kept across its runs: for a checkout without sharing this equals `new-cold`);
- `finished`: the same command again in the folder of a finished run (every cell skipped);
- `import-torch`: `python -c "import torch"`, the floor any torch program pays.

Each checkout has its own Prefect database (PREFECT_HOME), migrated once before timing. Runs are
interleaved (checkout A, B, B, A, ... per scenario and repeat) so a drift of the machine's load hits
both; figures are medians and the ratio is this checkout's over `--before`'s. Each side runs under
its own interpreter: this one's is the script's, `--before`'s is `--before-python` (default the
same), so two environments (e.g. other Prefect or MLflow versions) compare alike. The breakdown, for
this checkout: `-X importtime` of a `new-warm` run summed by top-level package, the time from
starting a Prefect server to its first healthy answer, a first trivial flow run against it, and
MLflow's set-up (import, experiment and run in a fresh sqlite store).
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SWEEP = ("+experiment=quickstart", "strategy=fedavg", "num_clients=10", "rounds=1", "runner.progress=false")
SCENARIOS = ("new-cold", "new-warm", "finished", "import-torch")

COMPONENTS = r"""
import json, sys, tempfile, time
from pathlib import Path
t = time.perf_counter()
from server.private import LocalServer
home = Path(tempfile.mkdtemp())
server = LocalServer(log_path=home / "server.log")
server.wait_ready(600)
boot = time.perf_counter() - t
import os; os.environ["PREFECT_API_URL"] = server.url
t = time.perf_counter()
import prefect
imported = time.perf_counter() - t
t = time.perf_counter()
@prefect.flow(persist_result=False)
def nothing() -> int:
    return 1
nothing()
first_flow = time.perf_counter() - t
server.stop(idle_wait_s=1)
t = time.perf_counter()
import mlflow
mlflow_import = time.perf_counter() - t
t = time.perf_counter()
client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db")
run = client.create_run(client.create_experiment("x", artifact_location=str(home / "art")))
client.set_terminated(run.info.run_id)
mlflow_setup = time.perf_counter() - t
print("RESULT " + json.dumps({"server_boot_to_healthy_s": boot, "import_prefect_s": imported,
      "first_flow_run_s": first_flow, "import_mlflow_s": mlflow_import,
      "mlflow_experiment_and_run_s": mlflow_setup}))
"""


def _env(repo: Path, home: Path, runtime: Path, idle_s: float = 600) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "FEDSWEEP_"))}
    env.update(
        CI="true",
        PREFECT_HOME=str(home),
        FEDSWEEP_RUNTIME_DIR=str(runtime),
        PYTHONPATH=str(repo),
        FEDSWEEP_SERVER_IDLE_S=f"{idle_s:g}",
    )
    return env


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"failed ({done.returncode}): {' '.join(cmd)}\n{(done.stdout + done.stderr)[-3000:]}"
        )
    return seconds, done.stdout + done.stderr


class Checkout:
    """One fedsweep checkout's database, runtime folder and finished sweep folder."""

    def __init__(self, repo: Path, work: Path, label: str, python: str = sys.executable) -> None:
        self.repo, self.label, self.work, self.python = repo, label, work / label, python
        self.home, self.runtime, self.done = self.work / "home", self.work / "run", self.work / "done"
        for folder in (self.home, self.runtime, self.done):
            folder.mkdir(parents=True)

    def sweep(
        self, cwd: Path, runtime: Path, *, flags: tuple[str, ...] = (), idle_s: float = 600
    ) -> tuple[float, str]:
        cmd = [self.python, *flags, str(self.repo / "flows" / "sweep.py"), *SWEEP]
        return _timed(cmd, cwd, _env(self.repo, self.home, runtime, idle_s))

    def stop_shared(self) -> None:
        """Stop the shared server left in the runtime folder (SIGUSR1: its graceful stop)."""
        for state in self.runtime.glob("prefect-server-*.json"):
            try:
                os.kill(json.loads(state.read_text())["pid"], signal.SIGUSR1)
            except (OSError, ValueError, KeyError):
                pass

    def run(self, scenario: str) -> float:
        fresh = Path(tempfile.mkdtemp(dir=self.work))
        if scenario == "new-cold":
            return self.sweep(fresh, fresh / "run", idle_s=5)[0]  # its server goes 5 s after
        if scenario == "new-warm":
            return self.sweep(fresh, self.runtime)[0]
        if scenario == "finished":
            return self.sweep(self.done, self.runtime)[0]
        return _timed([self.python, "-c", "import torch"], fresh, _env(self.repo, self.home, self.runtime))[0]


def versions(python: str) -> str:
    """The interpreter's Prefect and MLflow versions, e.g. "prefect 3.9.1, mlflow 3.17.2"."""
    code = (
        "from importlib.metadata import version as v; "
        "print(f\"prefect {v('prefect')}, mlflow {v('mlflow')}\")"
    )
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def import_breakdown(out: str) -> dict[str, float]:
    """Seconds of import time by top-level package, from `-X importtime` lines (self times summed)."""
    per: dict[str, float] = defaultdict(float)
    for line in out.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            own, _, name = line.removeprefix("import time:").split("|")
            per[name.strip().split(".")[0]] += int(own) / 1e6
    return dict(sorted(per.items(), key=lambda kv: -kv[1]))


def components(repo: Path, work: Path) -> dict[str, float]:
    _, out = _timed([sys.executable, "-c", COMPONENTS], work, _env(repo, work / "c-home", work / "c-run"))
    return json.loads(
        next(line for line in out.splitlines() if line.startswith("RESULT ")).removeprefix("RESULT ")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="another fedsweep checkout to compare with")
    parser.add_argument(
        "--before-python",
        default=sys.executable,
        help="the interpreter (environment) for --before; default this one",
    )
    parser.add_argument("--repeat", type=int, default=3, help="0: the breakdown only")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fedsweep-startup-"))
    sides = [Checkout(REPO, work, "this")]
    if args.before:
        sides.append(Checkout(args.before.resolve(), work, "before", python=args.before_python))
    figures: dict = {"cpus": os.cpu_count(), "versions": {s.label: versions(s.python) for s in sides}}
    print("versions: " + "; ".join(f"{label}: {v}" for label, v in figures["versions"].items()), flush=True)
    if args.repeat:
        figures.update(whole_processes(sides, args.repeat, with_before=args.before is not None))
        if args.out:
            args.out.write_text(json.dumps(figures, indent=1))
    figures.update(breakdown(sides[0], work))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1))


def whole_processes(sides: list[Checkout], repeat: int, *, with_before: bool) -> dict:
    """The scenarios, interleaved; prints each run and the medians (with ratios)."""
    for side in sides:  # warm-up, untimed: the database migrated, the finished folder made, caches filled
        side.sweep(side.done, side.runtime)
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    loads = []
    for rep in range(repeat):
        for scenario in SCENARIOS:
            for side in sides if rep % 2 == 0 else sides[::-1]:
                loads.append(os.getloadavg()[0])
                times[(side.label, scenario)].append(side.run(scenario))
                print(
                    f"{scenario:12s} {side.label:6s} {times[(side.label, scenario)][-1]:6.1f} s", flush=True
                )
    medians = {f"{label}/{scenario}": statistics.median(v) for (label, scenario), v in times.items()}
    print(f"\nwhole process, median seconds (load average {min(loads):.1f}-{max(loads):.1f}):")
    for scenario in SCENARIOS:
        row = [f"{scenario:12s}"] + [f"{s.label} {medians[f'{s.label}/{scenario}']:6.1f}" for s in sides]
        if with_before:
            row.append(f"ratio {medians[f'this/{scenario}'] / medians[f'before/{scenario}']:.2f}")
        print("  " + "   ".join(row), flush=True)
    return {
        "median_s": medians,
        "runs_s": {f"{k[0]}/{k[1]}": v for k, v in times.items()},
        "load_avg": [round(x, 2) for x in loads],
    }


def breakdown(side: Checkout, work: Path) -> dict:
    """This checkout's imports (a `new-warm` run under -X importtime) and components; a part that
    fails (a server that does not start on an overloaded machine) is reported, not fatal."""
    out: dict = {}
    try:
        _, traced = side.sweep(Path(tempfile.mkdtemp(dir=work)), side.runtime, flags=("-X", "importtime"))
        out["imports_s"] = dict(list(import_breakdown(traced).items())[:15])
        print(
            "\nimports of a sweep (self time by top-level package, s):\n  "
            + ", ".join(f"{name} {s:.2f}" for name, s in out["imports_s"].items()),
            flush=True,
        )
        out["components_s"] = components(REPO, work)
        print(
            "\ncomponents (s): " + ", ".join(f"{k} {v:.2f}" for k, v in out["components_s"].items()),
            flush=True,
        )
    except SystemExit as err:
        out["error"] = str(err)[-2000:]
        print(f"breakdown failed: {out['error']}", flush=True)
    finally:
        side.stop_shared()
    return out


if __name__ == "__main__":
    main()
