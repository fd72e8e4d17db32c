"""The baseline fedsweep is measured against: a bare sequential FedAvg loop in plain torch.

No Prefect, no MLflow, no Hydra, no checkpoints: what a researcher writes in one file. It runs the
workload of `conf/experiment/bench.yaml` the same way fedsweep trains it, so that the time
difference is the price of fedsweep's machinery and nothing else:

- data: `fedsweep.data.teacher.TeacherMNIST` (plain torch), client k = its natural block k; or, with
  `--dataset fashion_mnist --root DIR`, Fashion-MNIST read by fedsweep's torchvision loader and cut
  into i.i.d. parts by fedsweep's `IID` partition (fedsweep's `partition=iid`, same generator);
- model: `--model cnn_small` (default) conv(1→16,5)-ReLU-maxpool2-conv(16→32,5)-ReLU-maxpool2-
  fc(512→128)-ReLU-fc(128→10), or `--model cnn`, McMahan et al.'s CNN (conf/model/cnn.yaml);
- each round: `clients_per_round` clients uniformly without replacement, each trains `local_epochs`
  epochs of SGD over its own shuffled mini-batches, starting from the global model (with `--mu`,
  FedProx's proximal term μ/2·‖w − w_global‖², Li et al. 2020, Algorithm 2); the new global model
  is the sample-weighted average (FedAvg, running float64 sum); evaluation on the test split.

Random streams come from `fedsweep.rng.generator` with fedsweep's coordinates (a hash of seed and
round/client numbers), so the two runs see the same selections, the same batch orders and the same
initial weights, and their accuracies should agree closely; bitwise equality is not a goal.
benchmarks/peers/ imports `load_workload`, `select`, `build_cnn`, `client_update` and `evaluate`
from here, so that Flower and pfl-research train the identical workload.

    python benchmarks/bare_loop.py                       # the full bench workload (50 rounds)
    python benchmarks/bare_loop.py --rounds 2 --clients 10 --samples-per-client 50

Prints one human line and one `RESULT {json}` line (what benchmarks/vs_loop.py parses).
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import psutil
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from fedsweep.data.base import Split
from fedsweep.rng import derive_seed, generator

Params = dict[str, torch.Tensor]
MODEL_DIR = Path(__file__).resolve().parent.parent / "conf" / "model"


def build_cnn(seed: int, model: str = "cnn_small") -> nn.Module:
    """The CNN in plain torch, initial weights from torch's default init seeded like fedsweep's."""
    spec = yaml.safe_load((MODEL_DIR / f"{model}.yaml").read_text())  # conf/model: sizes cannot drift
    (c1, c2), hidden, pad = spec["channels"], spec["hidden"], spec["padding"]
    side = ((28 + 2 * pad - 4) // 2 + 2 * pad - 4) // 2  # two conv(5)+pool(2) stages
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(derive_seed(seed, "init"))
        return nn.Sequential(
            nn.Conv2d(1, c1, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(c2 * side * side, hidden), nn.ReLU(), nn.Linear(hidden, 10),
        )  # fmt: skip


def load_workload(args: argparse.Namespace) -> tuple[Split, Split, list[torch.Tensor]]:
    """(train, test, clients' index sets), exactly as fedsweep builds them for the same settings."""
    if args.dataset == "fashion_mnist":
        from fedsweep.data.partition.iid import IID  # (torchvision only when asked)
        from fedsweep.data.vision import FashionMNIST

        data = FashionMNIST(root=args.root).load(num_clients=args.clients, seed=args.seed)
        parts = IID().split(
            labels=data.train.y,
            num_clients=args.clients,
            natural=None,
            generator=generator(args.seed, "partition"),
        )
        return data.train, data.test, parts
    from fedsweep.data.teacher import TeacherMNIST

    data = TeacherMNIST(samples_per_client=args.samples_per_client, test_samples=args.test_samples).load(
        num_clients=args.clients, seed=args.seed
    )
    return data.train, data.test, list(data.natural)


def select(seed: int, rnd: int, clients: int, per_round: int) -> list[int]:
    """fedsweep's uniform selection of round `rnd`."""
    perm = torch.randperm(clients, generator=generator(seed, "select", rnd))
    return sorted(perm[: min(per_round, clients)].tolist())


def train_client(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    gen: list[torch.Generator],
    mu: float = 0.0,
) -> None:
    """Plain mini-batch SGD over the client's samples, reshuffled every epoch (+ FedProx's term if mu > 0)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    anchor = [p.detach().clone() for p in model.parameters()] if mu > 0 else []
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen[epoch])
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            if mu > 0:  # squared norm, as in the paper (Flower's docstring example omits the square)
                loss = loss + 0.5 * mu * sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def client_update(
    model: nn.Module,
    global_params: Params,
    train: Split,
    idx: torch.Tensor,
    args: argparse.Namespace,
    *,
    rnd: int,
    client: int,
    mu: float = 0.0,
) -> Params:
    """One client's local training from the global model; returns its new state_dict."""
    model.load_state_dict(global_params)
    gens = [generator(args.seed, "batches", rnd, client, e) for e in range(args.local_epochs)]
    train_client(
        model,
        train.x[idx],
        train.y[idx],
        epochs=args.local_epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        gen=gens,
        mu=mu,
    )
    return model.state_dict()


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    """Test accuracy of the model as it stands."""
    model.eval()
    correct = sum(
        int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum()) for i in range(0, len(x), batch)
    )
    return correct / len(x)


def run(args: argparse.Namespace, mu: float = 0.0) -> dict[str, float]:
    """The whole FL run; returns its figures."""
    train, test, parts = load_workload(args)
    model = build_cnn(args.seed, args.model)
    global_params = {k: v.clone() for k, v in model.state_dict().items()}
    started = time.perf_counter()
    accuracy = float("nan")
    round_s: list[float] = []
    train_s = eval_s = 0.0
    for rnd in range(1, args.rounds + 1):
        tick = time.perf_counter()
        sums: dict[str, torch.Tensor] = {
            k: torch.zeros_like(v, dtype=torch.float64) for k, v in global_params.items()
        }
        total = 0
        for client in select(args.seed, rnd, args.clients, args.clients_per_round):
            idx = parts[client]
            # A running sum: one model's worth of memory however many clients a round has.
            for k, v in client_update(
                model, global_params, train, idx, args, rnd=rnd, client=client, mu=mu
            ).items():
                sums[k] += v.double() * len(idx)
            total += len(idx)
        global_params = {k: (s / total).to(global_params[k].dtype) for k, s in sums.items()}
        model.load_state_dict(global_params)
        trained = time.perf_counter()
        accuracy = evaluate(model, test.x, test.y)
        train_s += trained - tick
        eval_s += time.perf_counter() - trained
        round_s.append(time.perf_counter() - tick)
    loop_s = time.perf_counter() - started
    since_start = time.time() - psutil.Process().create_time()
    return {
        "rounds": args.rounds,
        "loop_s": loop_s,
        "process_s": since_start,
        "final_accuracy": accuracy,
        "round_s_median": statistics.median(round_s),
        "train_s": train_s,
        "eval_s": eval_s,
    }


def add_workload_args(p: argparse.ArgumentParser) -> None:
    """The workload's flags (vs_loop.py passes the bench preset's values; benchmarks/peers/ reuse them)."""
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--clients", type=int, default=100, help="number of clients (num_clients)")
    p.add_argument("--clients-per-round", type=int, default=10)
    p.add_argument("--samples-per-client", type=int, default=600)
    p.add_argument("--test-samples", type=int, default=2000)
    p.add_argument("--local-epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", choices=("cnn_small", "cnn"), default="cnn_small", help="a conf/model CNN")
    p.add_argument("--dataset", choices=("teacher_mnist", "fashion_mnist"), default="teacher_mnist")
    p.add_argument("--root", default="data", help="dataset.root for --dataset fashion_mnist")
    p.add_argument(
        "--mu",
        type=str,
        default="0",
        help="FedProx mu; comma-separated values run one after another (0 = FedAvg)",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_workload_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    methods = []
    for mu in (float(m) for m in args.mu.split(",")):
        figures = run(args, mu=mu)
        methods.append({"mu": mu, **figures})
        print(
            f"bare_loop: mu={mu:g}, {figures['rounds']} rounds, loop {figures['loop_s']:.2f} s, "
            f"process {figures['process_s']:.2f} s, final accuracy {figures['final_accuracy']:.4f}",
            flush=True,
        )
    print("RESULT " + json.dumps({**methods[-1], "methods": methods}), flush=True)


if __name__ == "__main__":
    main()
