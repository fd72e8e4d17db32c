"""fedsweep beside a bare torch loop, Flower and pfl-research on the identical workload, in one run.

Sides, each a whole process timed from outside (interpreter start, imports, data, teardown):
  bare      benchmarks/bare_loop.py: sequential FedAvg in plain torch (vs_loop.py's baseline)
  fedsweep  python flows/sweep.py with its defaults: MLflow tracking, checkpoints, its Prefect server
            (shared, in a runtime folder of the benchmark's: its CPU during the run is reported)
  flower    benchmarks/peers/flower_sim.py: flwr 1.42's run_simulation, Ray backend, 1 CPU per client
  pfl       benchmarks/peers/pfl_sim.py: pfl-research 0.6.0's SimulatedBackend

Flower and pfl run with their own virtualenv's python (flwr's and prefect's fastapi pins conflict):
`--flower-python` / `--pfl-python`, default `$FEDSWEEP_FLOWER_PYTHON` / `$FEDSWEEP_PFL_PYTHON`, else
`.venv-flwr/bin/python` / `.venv-pfl/bin/python` in this checkout. A peer whose python cannot import
it is skipped with one line saying how to make the virtualenv; the other sides still run.

Workloads (`--workload`): `bench` (conf/experiment/bench.yaml: TeacherMNIST, 100 clients x 600
samples, 10 a round, 1 epoch, batch 32, SGD lr 0.05, cnn_small, FedAvg); `scale100`
(conf/experiment/scale100.yaml: the same data, three methods FedAvg, FedProx mu=1, FedProx mu=0.01;
the fedsweep side is one 3-cell sweep, the others run the three one after another in one process;
`--peer-rounds` lets the peers run fewer rounds, then per-round times are what compares); `fmnist`
(Fashion-MNIST with McMahan et al.'s CNN, conf/model/cnn.yaml, i.i.d. over 100 clients, 10 a round;
read from `--fmnist-gz`, Debian's .gz files, decompressed into the run's folder in torchvision's layout).

    python benchmarks/vs_peers.py                                  # bench, 20 rounds, every side once
    python benchmarks/vs_peers.py --rounds 5 --repeat 2 --only bare,fedsweep,flower --out /tmp/peers.json
    python benchmarks/vs_peers.py --workload scale100 --rounds 100 --peer-rounds 20
    python benchmarks/vs_peers.py --workload fmnist --rounds 3 --only bare,fedsweep

With `--repeat k` the order is a b c d, then d c b a, ...; figures are medians per side, ratios are
to the bare loop's. Per round = in-process seconds / rounds played (bare: its loop; fedsweep: the
cells' `wall_s`; flower: between its evaluations, Ray's start excluded; pfl: its run).
"""

import argparse
import datetime
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vs_loop import REPO, SideFailed, _fail, _timed, run_bare, run_fedsweep, stop_server, workload

SIDES = ("bare", "fedsweep", "flower", "pfl")
FEDSWEEP_NAMES = {
    "clients": "num_clients",
    "samples_per_client": "dataset.samples_per_client",
    "test_samples": "dataset.test_samples",
}


@dataclass(frozen=True)
class Peer:
    """A peer framework's program, the module its python must import, and how to make its venv."""

    script: str
    module: str
    env: str
    venv: str
    install: str

    def python(self, given: str | None) -> str:
        return given or os.environ.get(self.env) or str(REPO / self.venv / "bin" / "python")

    def missing(self, python: str) -> str | None:
        """None if `python` imports the peer, else one line saying how to make its virtualenv."""
        ok = (
            Path(python).exists()
            and subprocess.run(
                [python, "-c", f"import {self.module}"], capture_output=True, check=False
            ).returncode
            == 0
        )
        make = (
            f"python -m venv --system-site-packages {self.venv} && "
            f"{self.venv}/bin/pip install '{self.install}'"
        )
        return (
            None if ok else f"{python} cannot import {self.module}; make it with: {make} (or set {self.env})"
        )


PEERS = {
    "flower": Peer(
        "flower_sim.py", "flwr", "FEDSWEEP_FLOWER_PYTHON", ".venv-flwr", "flwr[simulation]==1.42.*"
    ),
    "pfl": Peer("pfl_sim.py", "pfl", "FEDSWEEP_PFL_PYTHON", ".venv-pfl", "pfl[pytorch]==0.6.0"),
}


@dataclass(frozen=True)
class Plan:
    """One workload: the fedsweep command's preset and overrides, the bare loop's and peers' extra flags."""

    w: dict[str, Any]
    experiment: str | None
    sweep: str
    overrides: list[str]
    flags: list[str]


def fashion_root(gz: Path, work: Path) -> Path:
    """Debian's Fashion-MNIST .gz files decompressed under `work` in torchvision's layout."""
    raw = work / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        with gzip.open(gz / f"{name}.gz", "rb") as src, (raw / name).open("wb") as dst:
            shutil.copyfileobj(src, dst)
    return work / "data"


def plan(args: argparse.Namespace, work: Path) -> Plan:
    """The workload's settings for every side, with `--set` applied to all of them."""
    w = workload(args.rounds, "scale100" if args.workload == "scale100" else "bench")
    sets = dict(item.split("=", 1) for item in args.set)  # checked by main
    w.update({k: type(w[k])(v) for k, v in sets.items()})
    # The same settings in fedsweep's names (clients are num_clients; TeacherMNIST's sizes live under
    # dataset.)
    same = [f"{FEDSWEEP_NAMES.get(k, k)}={v}" for k, v in sets.items()]
    if args.workload == "scale100":
        return Plan(w, "scale100", "scale100", same, ["--mu=0,1,0.01"])
    if args.workload == "bench":
        return Plan(w, "bench", "bench", same, [])
    root = fashion_root(args.fmnist_gz, work)
    knobs = [f"{k}={w[k]}" for k in ("clients_per_round", "local_epochs", "batch_size", "lr", "seed")]
    return Plan(
        w,
        None,
        "fmnist",
        [
            "sweep_name=fmnist",
            "dataset=fashion_mnist",
            f"dataset.root={root}",
            "partition=iid",
            "model=cnn",
            "strategy=fedavg",
            f"num_clients={w['clients']}",
            *knobs,
        ],
        ["--dataset=fashion_mnist", f"--root={root}", "--model=cnn"],
    )


def run_peer(
    name: str, python: str, p: Plan, work: Path, rounds: int, timeout_s: float | None = None
) -> dict[str, Any]:
    """A peer's program as a whole process with its venv's python."""
    flags = [f"--{k.replace('_', '-')}={rounds if k == 'rounds' else v}" for k, v in p.w.items()] + p.flags
    log = work / f"{name}-{len(list(work.glob(f'{name}*.log')))}.log"
    load = os.getloadavg()[0]
    script = str(REPO / "benchmarks" / "peers" / PEERS[name].script)
    wall, code = _timed([python, script, *flags], work, log, timeout_s)
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("RESULT ")]
    if code or not lines:
        _fail(name, log)
    methods = json.loads(lines[-1].removeprefix("RESULT "))["methods"]
    return {
        "side": name,
        "wall_s": wall,
        "loop_s": sum(m["loop_s"] for m in methods),
        "final_accuracy": methods[0]["final_accuracy"],
        "accuracies": [m["final_accuracy"] for m in methods],
        "rounds_run": sum(m["rounds"] for m in methods),
        "load_before": load,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per side: medians of wall, in-process and per-round seconds; accuracies; ratios to the bare loop."""
    out: dict[str, dict[str, Any]] = {}
    for side in dict.fromkeys(r["side"] for r in runs):
        mine = [r for r in runs if r["side"] == side]
        out[side] = {
            "wall_s": statistics.median(r["wall_s"] for r in mine),
            "loop_s": statistics.median(r["loop_s"] for r in mine),
            "round_s": statistics.median(r["loop_s"] / r["rounds_run"] for r in mine),
            "accuracies": mine[0]["accuracies"],
            "rounds_run": mine[0]["rounds_run"],
            **{
                k: statistics.median(r[k] for r in mine)
                for k in ("train_s", "eval_s", "server_cpu_s")
                if k in mine[0]
            },
        }
        if "server_cpu_s" in out[side]:  # the Prefect server's CPU, per round and beside the rounds' time
            out[side]["server_cpu_per_round_s"] = statistics.median(
                r["server_cpu_s"] / r["rounds_run"] for r in mine
            )
            out[side]["server_cpu_share"] = statistics.median(r["server_cpu_s"] / r["loop_s"] for r in mine)
    if "bare" in out:
        for s in out.values():
            s["wall_ratio"] = s["wall_s"] / out["bare"]["wall_s"]
            s["round_ratio"] = s["round_s"] / out["bare"]["round_s"]
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workload", choices=("bench", "scale100", "fmnist"), default="bench")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--peer-rounds", type=int, help="rounds for flower and pfl (default: --rounds)")
    p.add_argument("--repeat", type=int, default=1, help="runs per side, interleaved a b c d, d c b a, ...")
    p.add_argument("--only", default=",".join(SIDES), help=f"comma-separated sides, of {', '.join(SIDES)}")
    p.add_argument("--flower-python", help="python of Flower's virtualenv")
    p.add_argument("--pfl-python", help="python of pfl-research's virtualenv")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a workload setting on every side (e.g. clients=10, samples_per_client=50)",
    )
    p.add_argument("--fmnist-gz", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    p.add_argument(
        "--side-timeout",
        type=float,
        default=3600,
        metavar="SECONDS",
        help="a side running longer is killed and left out of the remaining repeats (default 3600)",
    )
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the working directories and logs")
    args = p.parse_args(argv)
    sides = [s.strip() for s in args.only.split(",") if s.strip()]
    if unknown := [s for s in sides if s not in SIDES]:
        p.error(f"--only: unknown side(s) {', '.join(unknown)}; choose from {', '.join(SIDES)}")
    known = sorted(set(workload(args.rounds)) - {"rounds"})
    if bad := [item for item in args.set if item.split("=", 1)[0] not in known or "=" not in item]:
        p.error(f"--set: unknown key(s) or no '=' in {', '.join(bad)}; keys: {', '.join(known)}")
    pythons = {name: PEERS[name].python(getattr(args, f"{name}_python")) for name in PEERS if name in sides}
    for name, python in pythons.items():
        if why := PEERS[name].missing(python):
            print(f"vs_peers: skipping {name}: {why}", flush=True)
            sides.remove(name)
    work = Path(tempfile.mkdtemp(prefix="vs_peers-"))
    pl = plan(args, work)
    peer_rounds = args.peer_rounds or args.rounds
    runs: list[dict[str, Any]] = []
    limit, left_out = args.side_timeout, []
    for i in range(args.repeat):
        for side in list(sides if i % 2 == 0 else reversed(sides)):
            try:
                if side == "bare":
                    run = run_bare(pl.w, work, pl.flags, timeout_s=limit)
                elif side == "fedsweep":
                    run = run_fedsweep(
                        pl.w, work, pl.overrides, experiment=pl.experiment, sweep=pl.sweep, timeout_s=limit
                    )
                else:
                    run = run_peer(side, pythons[side], pl, work, peer_rounds, timeout_s=limit)
            except SideFailed as failed:
                print(f"vs_peers: {failed}\nvs_peers: {side} is left out from here on", flush=True)
                sides.remove(side)
                left_out.append(side)
                continue
            runs.append({**run, "repeat": i})
            server = f"  Prefect server CPU {run['server_cpu_s']:.1f} s" if "server_cpu_s" in run else ""
            print(
                f"[{i + 1}/{args.repeat}] {side:<8} {run['wall_s']:7.1f} s "
                f"(in-process {run['loop_s']:6.1f} s, "
                f"{run['rounds_run']} rounds)  accuracy {' / '.join(f'{a:.4f}' for a in run['accuracies'])}"
                f"{server}  load {run['load_before']:.2f}",
                flush=True,
            )
    if "fedsweep" in sides or "fedsweep" in left_out:
        stop_server(work)
    if left_out and not runs:
        sys.exit(f"vs_peers: no side finished ({', '.join(left_out)} failed)")
    s = summarise(runs)
    print(
        f"\n{args.workload}: {args.rounds} rounds (peers {peer_rounds}), {pl.w['clients']} clients, "
        f"{pl.w['clients_per_round']} per round, median of {args.repeat}:"
    )
    for side, f in s.items():
        ratios = f"  {f['wall_ratio']:5.2f}x / {f['round_ratio']:5.2f}x of bare" if "wall_ratio" in f else ""
        split = f"  (train {f['train_s']:.1f} s, eval {f['eval_s']:.1f} s)" if "train_s" in f else ""
        print(
            f"  {side:<8} wall {f['wall_s']:7.1f} s  per round {f['round_s']:6.2f} s{ratios}  accuracy "
            f"{' / '.join(f'{a:.4f}' for a in f['accuracies'])}{split}"
        )
    if "fedsweep" in s and "server_cpu_s" in s["fedsweep"]:
        f = s["fedsweep"]
        print(
            f"  fedsweep's Prefect server: {f['server_cpu_s']:.1f} s of CPU, "
            f"{1000 * f['server_cpu_per_round_s']:.0f} ms a round "
            f"({100 * f['server_cpu_share']:.1f} % of its rounds' time)"
        )
    if "fedsweep" in s:
        for peer in (name for name in PEERS if name in s):
            print(
                f"  {peer} / fedsweep: wall {s[peer]['wall_s'] / s['fedsweep']['wall_s']:.2f}x, "
                f"per round {s[peer]['round_s'] / s['fedsweep']['round_s']:.2f}x"
            )
    print("RESULT " + json.dumps(s), flush=True)
    if args.out:
        figures = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "workload": args.workload,
            "settings": pl.w,
            "peer_rounds": peer_rounds,
            "summary": s,
            "runs": runs,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=1))
        print(f"figures: {args.out}")
    if args.keep:
        print(f"working directories and logs: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
