"""The cost of client selection per round, for every selector in conf/selection/, at several
population sizes (issue: a selector must not be O(clients²) per round).

Each selector plays `--rounds` rounds against a synthetic population: client sizes from a lognormal,
simulated round durations from a lognormal (so Oort's speed penalty and FedCS's packing have
something to work on), a deadline at the population's median duration, random probe losses for
the selectors that probe, and feedback (loss, squared loss, seconds, and a random update sketch for
the selectors that ask for one) for every selected client. Timed: `probe` + `select` + `observe`,
the selector's whole share of a round; the population is built once, outside the timing.

    python benchmarks/selection_cost.py                          # 100 and 10,000 clients
    python benchmarks/selection_cost.py --clients 100 10000 1000000 --only uniform oort
"""

import argparse
import os
import time
from pathlib import Path

import torch
import yaml

from fedsweep.config.plugins import build
from fedsweep.rng import generator
from fedsweep.selection.base import ClientFeedback, Population, Selector

CONF = Path(__file__).resolve().parents[1] / "conf" / "selection"
# Above this many clients the selectors whose rounds are quadratic by design are not run (their
# docstrings say so): clustered sampling by similarity and DivFL compare every pair of clients.
QUADRATIC_LIMIT = 10_000


def population(num_clients: int, seed: int = 0) -> Population:
    g = generator(seed, "bench-population", num_clients)
    sizes = torch.exp(torch.randn(num_clients, generator=g, dtype=torch.float64) * 0.5 + 5.0).round().long() + 1
    seconds = torch.exp(torch.randn(num_clients, generator=g, dtype=torch.float64) * 0.7 + 2.0)
    return Population(num_samples=sizes, expected_seconds=seconds, deadline_s=float(seconds.median()))


def play(selector: Selector, pop: Population, *, rounds: int, k: int) -> float:
    """Seconds per round of probe + select + observe, over `rounds` rounds."""
    state: dict[str, torch.Tensor] = {}
    available = list(range(pop.num_clients))
    g_feedback = generator(1, "bench-feedback")
    dim = selector.update_sketch_dim
    start = time.perf_counter()
    for rnd in range(1, rounds + 1):
        g = generator(0, "select", rnd)
        probe = selector.probe(round=rnd, available=available, k=k, generator=g, state=state, population=pop)
        losses = None
        if probe is not None:
            values = torch.rand(len(probe.clients), generator=g_feedback).tolist()
            losses = dict(zip(probe.clients, values))
        chosen = selector.select(round=rnd, available=available, k=k, generator=g, state=state, population=pop,
                                 probes=losses)
        feedback = [
            ClientFeedback(client=c, num_samples=int(pop.num_samples[c]), loss=float(torch.rand(1, generator=g_feedback)),
                           loss_sq=float(torch.rand(1, generator=g_feedback)), steps=10,
                           seconds=float(pop.expected_seconds[c]),
                           sketch=torch.randn(dim, generator=g_feedback) if dim else None)
            for c in chosen.clients
        ]
        state = selector.observe(round=rnd, feedback=feedback, state=chosen.state)
    return (time.perf_counter() - start) / rounds


def options(only: list[str] | None) -> list[str]:
    names = sorted(p.stem for p in CONF.glob("*.yaml"))
    return [n for n in names if not only or n in only]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--k", type=int, default=10, help="clients per round")
    parser.add_argument("--only", nargs="*", help="selection options to run (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds, k={args.k}; ms per round (probe+select+observe)")
    names = options(args.only)
    print("| selector | " + " | ".join(f"{n:,} clients" for n in args.clients) + " |")
    print("|---|" + "---|" * len(args.clients))
    pops = {n: population(n) for n in args.clients}
    for name in names:
        node = yaml.safe_load((CONF / f"{name}.yaml").read_text())
        cells = []
        for n in args.clients:
            selector = build(node, key="selection")
            quadratic = selector.update_sketch_dim > 0 or name == "divfl"
            if quadratic and n > QUADRATIC_LIMIT:
                cells.append("not run (quadratic)")
                continue
            cells.append(f"{play(selector, pops[n], rounds=args.rounds, k=args.k) * 1e3:.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
