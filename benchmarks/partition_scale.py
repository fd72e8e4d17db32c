"""What a partition costs at up to a million clients: seconds and peak RSS per partition option.

    python benchmarks/partition_scale.py                          # 2,000,000 samples, 1,000,000 clients
    python benchmarks/partition_scale.py --samples 60000 --clients 100 1000 10000

Each partition splits the same random labels (10 classes) once, on one thread, in a fresh process
(so the peak RSS of one does not hide another's). The partitions' own work is one permutation, one
stable sort and a bincount. The figures below were taken when the contract asked for a list of one
index tensor per client (torch.split made ~6 µs and ~0.5 KB of Python object per client); a
partition now returns a `ClientIndex` (fedsweep/data/clients.py: one index tensor plus offsets),
and benchmarks/README.md has the figures since.
Each option as conf/partition/ configures it. Measured (2 cores at load average ~20, 2e6 samples,
1e6 clients): iid 7.5 s, lognormal 9.3 s (σ = 1; σ does not change the work), powerlaw 7.8 s, of
which ~6 s and ~560 MB are the million views; label_quantity (k = 2) refuses that split (some
client gets no sample) and took 22 s at 1e7 samples. Peak RSS ~1.2-1.8 GB, of which ~0.5 GB is the
imports. The per-client sort that iid used before took 33 s at the same size.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OPTIONS = ["iid", "lognormal", "powerlaw", "label_quantity"]  # conf/partition options measured


def measure(option: str, samples: int, clients: int) -> dict[str, float]:
    """Run one split in this process and return its seconds and the process's peak RSS."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from fedsweep.rng import generator

    torch.set_num_threads(1)
    partition = instantiate(OmegaConf.load(REPO / "conf" / "partition" / f"{option}.yaml"))
    labels = torch.randint(0, 10, (samples,), generator=generator(0, "labels"))
    tick = time.perf_counter()
    parts = partition.split(labels=labels, num_clients=clients, natural=None, generator=generator(0, "p"))
    seconds = time.perf_counter() - tick
    assert len(parts) == clients
    return {
        "seconds": round(seconds, 3),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2_000_000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=OPTIONS)
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # OPTION SAMPLES CLIENTS, in a child
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), int(args.one[2]))))
        return 0
    print(f"load average {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}")
    for clients in args.clients:
        for option in args.options:
            cmd = [sys.executable, __file__, "--one", option, str(args.samples), str(clients)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = (proc.stdout if proc.returncode == 0 else proc.stderr).strip().splitlines()
            result = lines[-1] if lines else f"exit {proc.returncode}"
            print(f"{option:15s} samples={args.samples} clients={clients}: {result}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
