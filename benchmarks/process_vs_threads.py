"""Why clients train in worker processes: one process with N intra-op threads vs N single-thread
worker processes (fedsweep.execution.workers.WorkerPool), on the bench workload's client epoch.

Each side trains the same `--clients` client epochs (600 samples, batch 32, SGD lr 0.05, cnn_small,
random 1×28×28 inputs); the worker side sends the clients to the pool `N` at a time, the data
already in the workers (shipped once as shared memory, as a sweep does). Sides alternate for
`--repeat` rounds; medians are printed with their ratio. N = usable CPUs.

    python benchmarks/process_vs_threads.py                 # 10 clients, 5 repeats
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from fedsweep.execution.workers import WorkerPool, usable_cpus

SAMPLES, BATCH, LR = 600, 32, 0.05
DATA: dict[str, torch.Tensor] = {}


def cnn_small() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip


def install(x: torch.Tensor, y: torch.Tensor) -> None:
    DATA["x"], DATA["y"] = x, y


MODEL: list = []  # [the model, its initial weights], built once per process


def client_epoch(client: int) -> float:
    """One client's local epoch from the initial weights, in this process's one reused model (as
    fedsweep and the bare loop train); returns the last loss."""
    x, y = DATA["x"], DATA["y"]
    if not MODEL:
        MODEL.append(cnn_small())
        MODEL.append({k: v.clone() for k, v in MODEL[0].state_dict().items()})
    model, initial = MODEL
    model.load_state_dict(initial)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    order = torch.randperm(SAMPLES, generator=torch.Generator().manual_seed(client))
    loss = torch.zeros(())
    for start in range(0, SAMPLES, BATCH):
        idx = order[start : start + BATCH]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cpus = usable_cpus()
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(SAMPLES, 1, 28, 28, generator=gen), torch.randint(0, 10, (SAMPLES,), generator=gen)
    install(x, y)
    pool = WorkerPool(cpus, torch_threads=1)  # forks before this process starts any thread
    setup = ("data", install, lambda: (x, y))
    torch.set_num_threads(cpus)
    clients = [(c,) for c in range(args.clients)]
    client_epoch(0), pool.map(client_epoch, clients[:cpus], setup=setup)  # warm-up: imports, data
    threads, processes = [], []
    for _ in range(args.repeat):
        tick = time.perf_counter()
        in_process = [client_epoch(c) for (c,) in clients]
        threads.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        in_workers = pool.map(client_epoch, clients, setup=setup)
        processes.append(time.perf_counter() - tick)
        assert len(in_process) == len(in_workers)
    pool.close()
    a, b = statistics.median(threads), statistics.median(processes)
    print(f"{args.clients} client epochs, {cpus} CPUs, median of {args.repeat}:")
    print(f"  1 process x {cpus} intra-op threads   {a:6.2f} s   ({' '.join(f'{t:.2f}' for t in threads)})")
    print(
        f"  {cpus} worker processes x 1 thread     {b:6.2f} s   ({' '.join(f'{t:.2f}' for t in processes)})"
    )
    print(f"  processes are {a / b:.2f}x as fast")


if __name__ == "__main__":
    main()
