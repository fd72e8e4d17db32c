"""What the peer programs share: the workload's flags, data and client training, all from
benchmarks/bare_loop.py, so that Flower and pfl-research train exactly what the bare loop trains.

The peer programs run with their own virtualenv's python (flwr and prefect cannot share one), yet
import fedsweep's data code and the bare loop from this checkout: importing this module puts the
checkout and benchmarks/ on `sys.path` and on `PYTHONPATH` (for worker processes a peer starts, such
as Ray's actors). Data and the client model are built once per process and cached here, in an
importable module, so that a worker reuses them across the clients it trains.
"""

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent.parent
PATHS = [str(BENCH.parent), str(BENCH), str(BENCH / "peers")]
for _path in reversed(PATHS):
    if _path not in sys.path:
        sys.path.insert(0, _path)
os.environ["PYTHONPATH"] = os.pathsep.join([*PATHS, *filter(None, [os.environ.get("PYTHONPATH")])])

import bare_loop  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402

Params = dict[str, torch.Tensor]


def parse(argv: list[str] | None, description: str) -> argparse.Namespace:
    """The bare loop's workload flags (same names, same defaults)."""
    p = argparse.ArgumentParser(description=description)
    bare_loop.add_workload_args(p)
    return p.parse_args(argv)


def key_of(args: argparse.Namespace) -> str:
    """A hashable, picklable form of the workload settings (what workers receive)."""
    return json.dumps(vars(args), sort_keys=True)


def settings(key: str) -> argparse.Namespace:
    return argparse.Namespace(**json.loads(key))


@functools.cache
def data(key: str) -> tuple[Any, Any, list[torch.Tensor]]:
    """(train, test, clients' index sets), built once per process."""
    return bare_loop.load_workload(settings(key))


@functools.cache
def _model(key: str) -> torch.nn.Module:
    return bare_loop.build_cnn(settings(key).seed, settings(key).model)


def mus(args: argparse.Namespace) -> list[float]:
    """The methods to run, one after another: FedProx's mu (0 = FedAvg)."""
    return [float(m) for m in args.mu.split(",")]


def train_one(key: str, global_params: Params, *, rnd: int, client: int, mu: float) -> tuple[Params, int]:
    """Client `client`'s update in round `rnd` (the bare loop's client_update); (new params, samples)."""
    train, _, parts = data(key)
    new = bare_loop.client_update(
        _model(key), global_params, train, parts[client], settings(key), rnd=rnd, client=client, mu=mu
    )
    return {k: v.detach().clone() for k, v in new.items()}, len(parts[client])


def report(peer: str, methods: list[dict[str, Any]]) -> None:
    """One human line per method and the `RESULT {json}` line benchmarks/vs_peers.py parses."""
    process_s = time.time() - psutil.Process().create_time()
    for m in methods:
        print(
            f"{peer}: mu={m['mu']:g}, {m['rounds']} rounds, loop {m['loop_s']:.2f} s, "
            f"final accuracy {m['final_accuracy']:.4f}",
            flush=True,
        )
    print("RESULT " + json.dumps({**methods[-1], "process_s": process_s, "methods": methods}), flush=True)
