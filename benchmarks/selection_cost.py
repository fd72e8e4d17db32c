"""The cost of client selection per round, for every selector in conf/selection/, at several
population sizes (issue: a selector must not be O(clients²) per round).

Each selector plays `--rounds` rounds against a synthetic population: client sizes from a lognormal,
simulated round durations from a lognormal (so Oort's speed penalty and FedCS's packing have
something to work on), a deadline at the population's median duration, random probe losses for
the selectors that probe, and feedback (loss, squared loss, seconds, and a random update sketch for
the selectors that ask for one) for every selected client. Before the timing every client reports
once (round 1, untimed; `--cold` skips it), so the selectors that compare clients' sketches
(clustered_similarity, divfl) meet their worst case: every client has one. Timed: `probe` +
`select` + `observe`, the selector's whole share of a round; the population is built once, outside
the timing.

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
from fedsweep.selection.base import ClientFeedback, Population, Selection, Selector

CONF = Path(__file__).resolve().parents[1] / "conf" / "selection"


def population(num_clients: int, seed: int = 0) -> Population:
    g = generator(seed, "bench-population", num_clients)
    sizes = (
        torch.exp(torch.randn(num_clients, generator=g, dtype=torch.float64) * 0.5 + 5.0).round().long() + 1
    )
    seconds = torch.exp(torch.randn(num_clients, generator=g, dtype=torch.float64) * 0.7 + 2.0)
    return Population(num_samples=sizes, expected_seconds=seconds, deadline_s=float(seconds.median()))


def feedback_of(clients: list[int], pop: Population, dim: int, g: torch.Generator) -> list[ClientFeedback]:
    loss = torch.rand(len(clients), 2, generator=g).tolist()
    sketches = torch.randn(len(clients), dim, generator=g) if dim else None
    return [
        ClientFeedback(
            client=c,
            num_samples=int(pop.num_samples[c]),
            loss=loss[i][0],
            loss_sq=loss[i][1],
            steps=10,
            seconds=float(pop.expected_seconds[c]),
            sketch=sketches[i] if dim else None,
        )
        for i, c in enumerate(clients)
    ]


def choose(
    selector: Selector,
    pop: Population,
    *,
    rnd: int,
    k: int,
    available: torch.Tensor,
    state: dict[str, torch.Tensor],
    g: torch.Generator,
) -> Selection:
    """A round's probe (answered with random losses from `g`) and select."""
    draws = generator(0, "select", rnd)
    probe = selector.probe(round=rnd, available=available, k=k, generator=draws, state=state, population=pop)
    losses = None
    if probe is not None:
        losses = dict(zip(probe.clients, torch.rand(len(probe.clients), generator=g).tolist()))
    return selector.select(
        round=rnd, available=available, k=k, generator=draws, state=state, population=pop, probes=losses
    )


def reported_by_all(
    selector: Selector, pop: Population, *, k: int, g: torch.Generator
) -> dict[str, torch.Tensor]:
    """The state after every client has reported once (round 1, untimed): the worst case for the
    selectors that compare clients (every client has a sketch) and a full table for the others."""
    available = torch.arange(pop.num_clients)
    state = choose(selector, pop, rnd=1, k=k, available=available, state={}, g=g).state
    for lo in range(0, pop.num_clients, 50_000):
        chunk = available[lo : lo + 50_000].tolist()
        state = selector.observe(
            round=1, feedback=feedback_of(chunk, pop, selector.update_sketch_dim, g), state=state
        )
    return state


def play(selector: Selector, pop: Population, *, rounds: int, k: int, warm: bool = True) -> float:
    """Seconds per round of probe + select + observe, over `rounds` rounds (after every client
    reported once, unless `warm` is False)."""
    available = torch.arange(pop.num_clients)
    g_feedback = generator(1, "bench-feedback")
    state = reported_by_all(selector, pop, k=k, g=g_feedback) if warm else {}
    dim = selector.update_sketch_dim
    start = time.perf_counter()
    first = 2 if warm else 1
    for rnd in range(first, first + rounds):
        chosen = choose(selector, pop, rnd=rnd, k=k, available=available, state=state, g=g_feedback)
        feedback = feedback_of(chosen.clients, pop, dim, g_feedback)
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
    parser.add_argument(
        "--cold", action="store_true", help="start from an empty state (no client has reported)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(
        f"load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds, k={args.k}; "
        "ms per round (probe+select+observe)"
    )
    names = options(args.only)
    print("| selector | " + " | ".join(f"{n:,} clients" for n in args.clients) + " |")
    print("|---|" + "---|" * len(args.clients))
    pops = {n: population(n) for n in args.clients}
    for name in names:
        node = yaml.safe_load((CONF / f"{name}.yaml").read_text())
        cells = []
        for n in args.clients:
            selector = build(node, key="selection")
            cells.append(
                f"{play(selector, pops[n], rounds=args.rounds, k=args.k, warm=not args.cold) * 1e3:.1f}"
            )
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
