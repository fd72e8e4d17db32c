"""Several sweeps on one machine, sharing one Prefect server: alone, then all at once.

Three sweeps (by default the quickstart, the Byzantine grid at 5 rounds and a 3-seed quickstart grid,
each a whole `python flows/sweep.py` process in a fresh folder) run first one after another, then
all three at the same time. Per sweep the script prints:

- wall time alone and together, and their ratio (the target: together within 1.5x of alone);
- the longest silent period of its terminal output (stdout and stderr, every line and every
  progress-bar update counted; target: none over 10 s), and the line it followed;
- how many "records delayed" lines it printed (the Prefect server answered slowly);
- each cell's final_weights_sha256, and whether they are equal alone and together.

Per phase: the Prefect server's CPU seconds (the shared server is started by the phase's first
sweep in a fresh runtime folder, so all of its CPU is the phase's) and the 503 answers it logged.
All phases share one Prefect database (its own PREFECT_HOME, migrated before the first phase), as a
user's sweeps share ~/.prefect. The alternatives: `--server private` (a private server per sweep, on
that one database) and `--server separate` (a shared server and a database per sweep: nothing shared,
one Prefect UI per sweep).

    python benchmarks/shared_server.py                       # the three sweeps, alone then together
    python benchmarks/shared_server.py --server private      # each sweep its own private server
    python benchmarks/shared_server.py --server separate     # each sweep its own server and database
    python benchmarks/shared_server.py --only together --out /tmp/shared.json
    python benchmarks/shared_server.py --sweep '+experiment=quickstart rounds=2' \
        --sweep '+experiment=quickstart sweep_name=q2 rounds=2'         # sweeps of your choice
"""

import argparse
import datetime
import json
import os
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from server_cpu import cpu_s, server_of, settled_cpu_s, stop
from sweep_env import sweep_env

REPO = Path(__file__).resolve().parent.parent
SWEEPS = (
    "+experiment=quickstart sweep_name=ss-quickstart",
    "+experiment=byzantine sweep_name=ss-byzantine rounds=5",
    "+experiment=quickstart sweep_name=ss-seeds num_clients=10 +grid.seed=[0,1,2]",
)
SILENCE_TARGET_S, RATIO_TARGET = 10.0, 1.5


class Output:
    """A process's merged output, read as it comes: each line or progress-bar update timestamped."""

    def __init__(self, proc: subprocess.Popen, started: float) -> None:
        self.proc, self.started = proc, started
        self.chunks: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd, pending = self.proc.stdout.fileno(), b""
        while True:
            data = os.read(fd, 65536)
            now = time.perf_counter() - self.started
            if not data:
                break
            pending += data
            *done, pending = pending.replace(b"\r", b"\n").split(b"\n")
            self.chunks += [(now, line.decode(errors="replace")) for line in done if line.strip()]
        if pending.strip():
            self.chunks.append((time.perf_counter() - self.started, pending.decode(errors="replace")))

    def text(self) -> str:
        return "\n".join(line for _, line in self.chunks)

    def longest_silence(self, end: float) -> tuple[float, str]:
        """(seconds, the line before it) of the longest gap from the start to `end` (the exit)."""
        times = [(0.0, "(process start)"), *self.chunks, (end, "(exit)")]
        gap, after = max(
            ((b[0] - a[0], a[1]) for a, b in zip(times, times[1:], strict=False)), key=lambda g: g[0]
        )
        return gap, after[:100]


def hashes(cwd: Path) -> dict[str, str]:
    """{cell: final_weights_sha256} from the folder's MLflow database."""
    with sqlite3.connect(f"file:{cwd / 'mlruns' / 'mlflow.db'}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT r.name, t.value FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE t.key = 'final_weights_sha256'"
        ).fetchall()
    return dict(sorted(rows))


class PrivateServers:
    """With `--server private`: the CPU of the sweeps' own servers (children of the sweep processes),
    sampled every half second (the last half second of each is missed)."""

    def __init__(self) -> None:
        self.last: dict[int, float] = {}
        self.stop = threading.Event()
        self.procs: list[subprocess.Popen] = []
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self.stop.wait(0.5):
            for proc in list(self.procs):
                try:
                    children = psutil.Process(proc.pid).children(recursive=True)
                except psutil.Error:
                    continue
                for child in children:
                    try:
                        if any(part.endswith("server/process.py") for part in child.cmdline()):
                            self.last[child.pid] = cpu_s(child)
                    except psutil.Error:
                        continue

    def total(self) -> float:
        return sum(self.last.values())


def sweep_env_of(base: dict[str, str], work: Path, phase: str, i: int, mode: str) -> dict[str, str]:
    """Sweep `i`'s environment: the phase's shared server (`shared`), a private server each on the
    same database (`private`), or a shared server and a database of its own each (`separate`)."""
    env = {**base, "PREFECT_API_LOG_RETRYABLE_ERRORS": "true"}
    if mode == "separate":
        return {
            **env,
            "FEDSWEEP_RUNTIME_DIR": str(work / f"run-{phase}-{i}"),
            "PREFECT_HOME": str(home_of(work, i)),
        }
    env["FEDSWEEP_RUNTIME_DIR"] = str(work / f"run-{phase}")
    if mode == "private":
        env["FEDSWEEP_PREFECT_SERVER"] = "private"
    return env


def home_of(work: Path, i: int | None = None) -> Path:
    """The benchmark's Prefect database folder (with `separate`, sweep `i`'s own)."""
    return work / ("prefect-home" if i is None else f"prefect-home-{i}")


def run_phase(
    name: str, sweeps: list[str], work: Path, base: dict[str, str], together: bool, mode: str
) -> dict[str, Any]:
    """Run `sweeps` (all at once when `together`) in fresh folders; their figures and the servers'."""
    envs = [sweep_env_of(base, work, name, i, mode) for i in range(len(sweeps))]
    runtimes = sorted({Path(env["FEDSWEEP_RUNTIME_DIR"]) for env in envs})
    for runtime in runtimes:
        runtime.mkdir()
    private = mode == "private"
    watcher = PrivateServers() if private else None
    load = os.getloadavg()[0]
    results: list[dict[str, Any]] = []
    servers: dict[Path, psutil.Process] = {}

    def look() -> None:
        for runtime in runtimes:
            if runtime not in servers and (found := server_of(runtime)) is not None:
                servers[runtime] = found

    def start(i: int, command: str) -> tuple[subprocess.Popen, Output, Path, float]:
        cwd = work / f"{name}-{i}"
        cwd.mkdir()
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "flows" / "sweep.py"), *shlex.split(command)],
            cwd=cwd,
            env=envs[i],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if watcher is not None:
            watcher.procs.append(proc)
        return proc, Output(proc, started), cwd, started

    def finish(i: int, command: str, running: tuple[subprocess.Popen, Output, Path, float]) -> None:
        proc, out, cwd, started = running
        code = proc.wait()
        wall = time.perf_counter() - started
        out.thread.join()
        silence, after = out.longest_silence(wall)
        text = out.text()
        (work / f"{name}-{i}.log").write_text(text)
        results.append(
            {
                "sweep": command,
                "code": code,
                "wall_s": wall,
                "silence_s": silence,
                "silence_after": after,
                "delayed_lines": text.count("records delayed"),
                "hashes": hashes(cwd) if code == 0 else {},
                "tail": text[-1500:] if code else "",
            }
        )

    if together:
        running = [start(i, command) for i, command in enumerate(sweeps)]
        while not private and len(servers) < len(runtimes) and any(r[0].poll() is None for r in running):
            look()
            time.sleep(0.2)
        for i, command in enumerate(sweeps):
            finish(i, command, running[i])
    else:
        for i, command in enumerate(sweeps):
            run = start(i, command)
            while not private and len(servers) < len(runtimes) and run[0].poll() is None:
                look()
                time.sleep(0.2)
            finish(i, command, run)
    look()
    server_cpu = sum(settled_cpu_s(server) for server in servers.values())  # once they digested it all
    for server in servers.values():
        stop(server)
    if watcher is not None:
        watcher.stop.set()
        server_cpu = watcher.total()
    logs = [
        *(log for runtime in runtimes for log in runtime.glob("*.log")),
        *work.glob(f"{name}-*/outputs/*/prefect-server.log"),
    ]
    busy = sum(p.read_text(errors="replace").count("retryable exception") for p in logs if p.is_file())
    return {
        "phase": name,
        "load_before": load,
        "load_after": os.getloadavg()[0],
        "server_cpu_s": server_cpu,
        "server_503s": busy,
        "sweeps": results,
    }


def migrate(env: dict[str, str], work: Path) -> None:
    """Create the benchmark's Prefect database before the first phase (no phase pays for it)."""
    sys.path.insert(0, str(REPO))
    from server.private import LocalServer

    old = dict(os.environ)
    os.environ.update(env)
    try:
        server = LocalServer(log_path=work / "migrate.log")
        server.wait_ready(timeout_s=300)
        server.stop()
    finally:
        os.environ.clear()
        os.environ.update(old)


def report(phases: dict[str, dict[str, Any]], sweeps: list[str]) -> list[str]:
    alone, together = phases.get("alone"), phases.get("together")
    lines = [f"{'sweep':<62} {'alone s':>8} {'together s':>10} {'ratio':>6} {'silent s':>13} {'delayed':>8}"]
    ok = True
    for i, command in enumerate(sweeps):
        a = alone["sweeps"][i] if alone else None
        t = together["sweeps"][i] if together else None
        ratio = t["wall_s"] / a["wall_s"] if a and t else float("nan")
        silent = "/".join(f"{r['silence_s']:.1f}" for r in (a, t) if r)
        delayed = "/".join(str(r["delayed_lines"]) for r in (a, t) if r)
        lines.append(
            f"{command[:62]:<62} {a['wall_s'] if a else float('nan'):8.1f} "
            f"{t['wall_s'] if t else float('nan'):10.1f} {ratio:6.2f} {silent:>13} {delayed:>8}"
        )
        for r in (a, t):
            if r and r["code"]:
                ok = False
                lines.append(f"  exit {r['code']}:\n{r['tail']}")
            if r and r["silence_s"] > SILENCE_TARGET_S:
                ok = False
                lines.append(f"  silent {r['silence_s']:.1f} s after: {r['silence_after']}")
        if a and t:
            same = a["hashes"] == t["hashes"] and bool(a["hashes"])
            ok &= same and ratio <= RATIO_TARGET
            lines.append(f"  {len(a['hashes'])} cells, hashes alone == together: {same}")
            if not same:
                lines += [
                    f"    {cell}: {a['hashes'].get(cell)} / {t['hashes'].get(cell)}" for cell in a["hashes"]
                ]
    for phase in phases.values():
        lines.append(
            f"{phase['phase']:<9} server CPU {phase['server_cpu_s']:7.1f} s, 503 answers logged "
            f"{phase['server_503s']}, load {phase['load_before']:.2f} -> {phase['load_after']:.2f}"
        )
    lines.append(
        f"targets (silent <= {SILENCE_TARGET_S:g} s, together <= {RATIO_TARGET:g}x alone, same hashes): "
        + ("met" if ok else "NOT met")
    )
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sweep", action="append", help="a sweep's arguments (repeatable; default: the three)")
    p.add_argument("--only", choices=("alone", "together"), help="run one phase only")
    p.add_argument(
        "--server",
        choices=("shared", "private", "separate"),
        default="shared",
        help="shared: one server for all (the default); private: a server each, one database; "
        "separate: a server and a database each",
    )
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the working folders and logs")
    args = p.parse_args(argv)
    sweeps = args.sweep or list(SWEEPS)
    work = Path(tempfile.mkdtemp(prefix="shared_server-"))
    env = {
        **{k: v for k, v in sweep_env().items() if not k.startswith(("FEDSWEEP_", "PREFECT_HOME"))},
        "PREFECT_HOME": str(home_of(work)),
        "FEDSWEEP_SERVER_IDLE_S": "600",
    }
    homes = [home_of(work, i) for i in range(len(sweeps))] if args.server == "separate" else [home_of(work)]
    for home in homes:
        migrate({**env, "PREFECT_HOME": str(home)}, work)
    phases = {}
    for name in ("alone", "together"):
        if args.only in (None, name):
            phases[name] = run_phase(name, sweeps, work, env, name == "together", args.server)
    lines = report(phases, sweeps)
    print("\n".join(lines), flush=True)
    if args.out:
        body = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "server": args.server}
        args.out.write_text(json.dumps({**body, "phases": phases}, indent=1))
        print(f"figures: {args.out}")
    print(f"logs: {work}" if args.keep else "", end="")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
