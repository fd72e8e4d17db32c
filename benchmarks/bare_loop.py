"""The baseline fedsweep is measured against: a bare sequential FedAvg loop in plain torch.

No Prefect, no MLflow, no Hydra, no checkpoints: what a researcher writes in one file. It runs the
workload of `conf/experiment/bench.yaml` the same way fedsweep trains it, so that the time
difference is the price of fedsweep's machinery and nothing else:

- data: `fedsweep.data.teacher.TeacherMNIST` (plain torch), client k = its natural block k;
- model: conv(1→16,5)-ReLU-maxpool2-conv(16→32,5)-ReLU-maxpool2-fc(512→128)-ReLU-fc(128→10);
- each round: `clients_per_round` clients uniformly without replacement, each trains `local_epochs`
  epochs of SGD over its own shuffled mini-batches, starting from the global model; the new global
  model is the sample-weighted average (FedAvg, running float64 sum); evaluation on the test split.

Random streams come from `fedsweep.rng.generator` with fedsweep's coordinates (a hash of seed and
round/client numbers), so the two runs see the same selections, the same batch orders and the same
initial weights, and their accuracies should agree closely; bitwise equality is not a goal.

    python benchmarks/bare_loop.py                       # the full bench workload (50 rounds)
    python benchmarks/bare_loop.py --rounds 2 --clients 10 --samples-per-client 50

Prints one human line and one `RESULT {json}` line (what benchmarks/vs_loop.py parses).
"""

import argparse
import json
import time

import psutil
import torch
import torch.nn.functional as F
from torch import nn

from fedsweep.data.teacher import TeacherMNIST
from fedsweep.rng import derive_seed, generator

Params = dict[str, torch.Tensor]


def build_cnn(seed: int) -> nn.Module:
    """cnn_small in plain torch, initial weights from torch's default init seeded like fedsweep's."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(derive_seed(seed, "init"))
        return nn.Sequential(
            nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, 10),
        )  # fmt: skip


def train_client(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int, lr: float,
    gen: list[torch.Generator],
) -> None:
    """Plain mini-batch SGD over the client's samples, reshuffled every epoch."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen[epoch])
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    """Test accuracy of the model as it stands."""
    model.eval()
    correct = sum(int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum()) for i in range(0, len(x), batch))
    return correct / len(x)


def run(args: argparse.Namespace) -> dict[str, float]:
    """The whole FL run; returns its figures."""
    data = TeacherMNIST(samples_per_client=args.samples_per_client, test_samples=args.test_samples).load(
        num_clients=args.clients, seed=args.seed
    )
    train, test = data.train, data.test
    model = build_cnn(args.seed)
    global_params = {k: v.clone() for k, v in model.state_dict().items()}
    started = time.perf_counter()
    accuracy = float("nan")
    for rnd in range(1, args.rounds + 1):
        perm = torch.randperm(args.clients, generator=generator(args.seed, "select", rnd))
        selected = sorted(perm[: min(args.clients_per_round, args.clients)].tolist())
        sums: dict[str, torch.Tensor] = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in global_params.items()}
        total = 0
        for client in selected:
            idx = data.natural[client]
            model.load_state_dict(global_params)
            gens = [generator(args.seed, "batches", rnd, client, e) for e in range(args.local_epochs)]
            train_client(model, train.x[idx], train.y[idx], epochs=args.local_epochs,
                         batch_size=args.batch_size, lr=args.lr, gen=gens)
            # A running sum: one model's worth of memory however many clients a round has.
            for k, v in model.state_dict().items():
                sums[k] += v.double() * len(idx)
            total += len(idx)
        global_params = {k: (s / total).to(global_params[k].dtype) for k, s in sums.items()}
        model.load_state_dict(global_params)
        accuracy = evaluate(model, test.x, test.y)
    loop_s = time.perf_counter() - started
    since_start = time.time() - psutil.Process().create_time()
    return {"rounds": args.rounds, "loop_s": loop_s, "process_s": since_start, "final_accuracy": accuracy}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--clients", type=int, default=100, help="number of clients (num_clients)")
    p.add_argument("--clients-per-round", type=int, default=10)
    p.add_argument("--samples-per-client", type=int, default=600)
    p.add_argument("--test-samples", type=int, default=2000)
    p.add_argument("--local-epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    figures = run(parse_args(argv))
    print(f"bare_loop: {figures['rounds']} rounds, loop {figures['loop_s']:.2f} s, "
          f"process {figures['process_s']:.2f} s, final accuracy {figures['final_accuracy']:.4f}", flush=True)
    print("RESULT " + json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
