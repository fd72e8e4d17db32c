"""Per-round aggregation cost of every strategy: wall time and peak memory of one `aggregate` call
on the CNN of McMahan et al. 2017 (fedsweep/models/cnn.py, 1,663,370 parameters; its largest tensor,
the 3136 × 512 fully connected weight, is 6.1 MiB) at 10 and 100 clients per round.

Each (strategy, K) runs in a fresh subprocess (one torch thread, glibc's mmap threshold fixed at
64 KiB so freed tensors go back to the OS): it builds the K client models in memory (global + small
seeded noise, wrapped in `ListResults`), then samples its RSS every millisecond during `aggregate`.
"peak MiB" is the highest RSS minus the RSS just before the call: what aggregation adds on top of the
clients' models, which a sweep reads from disk one at a time instead. Robust rules get f = K // 10
(within Krum's n ≥ 2f + 3 and Bulyan's n ≥ 4f + 3); every other option runs with its yaml's values.

    python benchmarks/aggregation_cost.py                           # every option, K = 10 and 100
    python benchmarks/aggregation_cost.py --clients 10 --strategies fedavg,krum --model cnn_small
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
ROBUST_F = {"krum", "multikrum", "bulyan"}


def strategy_of(name: str, clients: int):  # a Strategy
    """The option's yaml as the composed config sees it (root knobs resolve `${lr}`), f = K // 10."""
    from hydra.utils import instantiate  # the parent process needs no torch
    from omegaconf import OmegaConf

    root = OmegaConf.load(CONF / "config.yaml")
    knobs = {k: v for k, v in root.items() if k not in ("defaults", "hydra")}
    node = OmegaConf.merge(knobs, {"strategy": OmegaConf.load(CONF / "strategy" / f"{name}.yaml")}).strategy
    if name in ROBUST_F:
        node.f = clients // 10
    return instantiate(node)


def measure(name: str, clients: int, model: str) -> dict:
    """One aggregate call of `name` over `clients` random CNN updates: seconds and peak RSS growth."""
    import psutil
    import torch
    from omegaconf import OmegaConf

    from fedsweep.models.cnn import CNN
    from fedsweep.strategies.base import ClientResult, ListResults, RoundContext

    torch.set_num_threads(1)
    spec = {
        k: v
        for k, v in OmegaConf.to_container(OmegaConf.load(CONF / "model" / f"{model}.yaml")).items()
        if not k.startswith("_")
    }
    torch.manual_seed(0)
    glob = {
        k: v.detach().clone()
        for k, v in CNN(input_shape=(1, 28, 28), num_classes=10, **spec).state_dict().items()
    }
    gen = torch.Generator().manual_seed(1)
    results = ListResults(
        [
            ClientResult(
                client=c,
                num_samples=100 + c,
                loss=1.0 + c / clients,
                steps=20,
                epochs_done=1,
                epochs_planned=1,
                params={k: v + 0.01 * torch.randn(v.shape, generator=gen) for k, v in glob.items()},
            )
            for c in range(clients)
        ]
    )
    strategy = strategy_of(name, clients)
    state = strategy.init_server_state(glob)
    context = RoundContext(round=1, selected=tuple(range(clients)), num_clients=clients)
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tick = time.perf_counter()
    strategy.aggregate(global_params=glob, results=results, failures=[], server_state=state, context=context)
    seconds = time.perf_counter() - tick
    done.set()
    sampler.join()
    peak[0] = max(peak[0], proc.memory_info().rss)
    largest = max(v.numel() * v.element_size() for v in glob.values())
    return {
        "strategy": name,
        "clients": clients,
        "seconds": seconds,
        "peak_mib": (peak[0] - base) / 2**20,
        "k_x_largest_mib": clients * largest / 2**20,
        "model_mib": sum(v.numel() * v.element_size() for v in glob.values()) / 2**20,
    }


def run_one(name: str, clients: int, model: str) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, __file__, "--one", name, str(clients), "--model", model],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if done.returncode != 0:
        raise SystemExit(f"{name} at K={clients} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.split("RESULT ", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 100])
    parser.add_argument(
        "--strategies", default=",".join(sorted(p.stem for p in (CONF / "strategy").glob("*.yaml")))
    )
    parser.add_argument("--model", default="cnn", help="a conf/model option built on CNN (cnn, cnn_small)")
    parser.add_argument("--one", nargs=2, metavar=("STRATEGY", "K"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(measure(args.one[0], int(args.one[1]), args.model)))
        return
    rows = [run_one(name, k, args.model) for k in args.clients for name in args.strategies.split(",")]
    print(f"model {args.model} ({rows[0]['model_mib']:.1f} MiB), load average {os.getloadavg()[0]:.2f}")
    print(f"{'strategy':<12} {'K':>4} {'seconds':>9} {'peak MiB':>9} {'K x largest MiB':>16}")
    for row in rows:
        print(
            f"{row['strategy']:<12} {row['clients']:>4} {row['seconds']:>9.3f} {row['peak_mib']:>9.1f} "
            f"{row['k_x_largest_mib']:>16.1f}"
        )
    print("RESULT " + json.dumps(rows))


if __name__ == "__main__":
    main()
