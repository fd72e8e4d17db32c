"""Batched clients on one GPU: one by one vs batched, and the whole sweep vs a bare GPU loop, in one run.

Part 1, training only (the bench workload: TeacherMNIST, 600 samples per client, batch 32, one local
epoch, SGD lr 0.05; K clients from the same global model, K = `--clients`), per round, on cnn_small
and McMahan's cnn (`--models`):

- `loop`: a hand-written loop, the clients one after another (benchmarks/bare_loop.py's training);
- `one-by-one`: fedsweep's `train_epoch` for each client (what `runner.batch_clients=off` runs);
- `batched`: fedsweep's `train_batch_epoch` over all K (what `runner.batch_clients=auto` runs: in
  chunks of what fits in free GPU memory, halved on out of memory), in float32 and under bfloat16
  autocast (`+bf16`), and once more with `torch.cuda.empty_cache()` after every round (`+empty`);
- `ceiling`: one model trained with batches of K×32 samples (the same work, no per-client parts).

Past 100 clients the data of client k is client (k mod 100)'s (compute is what is measured). The
one-step agreement of batched and one-by-one parameters (max relative difference) is printed per model.

Part 2, the whole sweep (`python flows/sweep.py +experiment=bench rounds=N runner.device=...`, each
in a fresh folder with its own Prefect server and MLflow store) one by one and batched, amp off and
on, per round (median of rounds 2..N of `round_seconds` and `train_seconds`), beside a bare GPU loop
of the same rounds (training, and training with evaluation). The table comes last.

    python benchmarks/gpu.py                                   # on a GPU: ~5 minutes (budget 8)
    python benchmarks/gpu.py --out /tmp/gpu.json
    python benchmarks/gpu.py --device cpu --clients 2,4 --models cnn_small --samples-per-client 64 \\
        --sweep-rounds 2 --sweeps batched                      # the suite's smoke test (CPU, seconds)

On the CPU `auto` trains one by one, so Part 2's batched sweeps use `runner.batch_clients=<K>`.
Timings on a loaded machine mean little: the load average is recorded beside them.
"""

import argparse
import functools
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from sweep_env import sweep_env
from torch import nn

from fedsweep.batched.memory import chunks, clients_that_fit, in_halves, measure
from fedsweep.batched.train import Member, train_batch_epoch
from fedsweep.config.plugins import build
from fedsweep.data.base import Split
from fedsweep.data.teacher import TeacherMNIST
from fedsweep.models.init import build_model
from fedsweep.rng import derive_seed, generator
from fedsweep.strategies.fedavg import FedAvg
from fedsweep.train import LocalConfig, train_epoch
from fedsweep.weights import Params, state_of

REPO = Path(__file__).resolve().parent.parent
SWEEPS = {  # name -> overrides of Part 2 ({k}: clients per round, for a forced batch size on the CPU)
    "one-by-one": [],
    "one-by-one+amp": ["runner.amp=true"],
    "batched": ["runner.batch_clients={batch}"],
    "batched+amp": ["runner.batch_clients={batch}", "runner.amp=true"],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--clients", default="10,100,1000", help="clients per round in Part 1, comma-separated")
    p.add_argument("--models", default="cnn_small,cnn")
    p.add_argument("--samples-per-client", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument(
        "--repeats", type=int, default=3, help="rounds timed up to 10 clients (then 2, past 100: 1)"
    )
    p.add_argument(
        "--loop-up-to", type=int, default=100, help="the hand-written loop up to this many clients"
    )
    p.add_argument("--budget-s", type=float, default=420.0, help="Part 1 skips one-by-one sizes past this")
    p.add_argument("--sweep-rounds", type=int, default=10)
    p.add_argument(
        "--sweep-size", default="", help="Part 2 smaller than the bench preset: NUM_CLIENTS,PER_ROUND,SAMPLES"
    )
    p.add_argument("--sweeps", default=",".join(SWEEPS), help="Part 2's sweeps (none: skip Part 2)")
    p.add_argument("--out", default=None, help="write every figure as JSON here")
    return p.parse_args(argv)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(
    fn: Callable[[], Any],
    device: torch.device,
    repeats: int,
    after: Callable[[], Any] = lambda: None,
    warm: bool = True,
) -> float:
    """Median seconds of `fn` over `repeats` runs, after one untimed warm-up run if `warm`."""
    if warm:
        fn()
        after()
    times = []
    for _ in range(repeats):
        sync(device)
        tick = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - tick)
        after()
    return statistics.median(times)


def model_of(name: str, device: torch.device) -> nn.Module:
    node = yaml.safe_load((REPO / "conf" / "model" / f"{name}.yaml").read_text())
    model = build_model(
        build(node, key="model"),
        input_shape=(1, 28, 28),
        num_classes=10,
        generator_seed=derive_seed(0, "init"),
    )
    return model.to(device)


def loop_round(
    model: nn.Module, params: Params, data: Split, clients: list[torch.Tensor], cfg: LocalConfig
) -> None:
    """The hand-written loop: each client from the global model, plain SGD (bare_loop.py's training)."""
    for k, idx in enumerate(clients):
        model.load_state_dict(params)
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)
        order = idx[torch.randperm(len(idx), generator=generator(0, "batches", 1, k, 0))]
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            loss = F.cross_entropy(model(data.x[batch]), data.y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def fedavg_epoch(
    model: nn.Module, params: Params, data: Split, idx: torch.Tensor, cfg: LocalConfig, k: int, **extra: Any
) -> Any:
    """Client `k`'s FedAvg epoch one by one, from the global `params`, its batches drawn as a round's."""
    return train_epoch(
        model=model,
        data=data,
        indices=idx,
        params=params,
        optimizer_state={},
        global_params=params,
        strategy=FedAvg(),
        server_state={},
        client_state={},
        cfg=cfg,
        generator=generator(0, "batches", 1, k, 0),
        **extra,
    )


def one_by_one_round(
    model: nn.Module, params: Params, data: Split, clients: list[torch.Tensor], cfg: LocalConfig
) -> None:
    for k, idx in enumerate(clients):
        fedavg_epoch(model, params, data, idx, cfg, k)


def batched_round(
    model: nn.Module, params: Params, data: Split, clients: list[torch.Tensor], cfg: LocalConfig
) -> int:
    """`train_batch_epoch` over every client as a batch job runs it under `auto`; returns OOM splits."""
    device = next(model.parameters()).device

    def train(chosen: Any) -> list:
        members = [
            Member(
                indices=clients[k],
                params=params,
                optimizer_state={},
                client_state={},
                generator=generator(0, "batches", 1, k, 0),
            )
            for k in chosen
        ]
        return train_batch_epoch(
            model=model,
            data=data,
            members=members,
            global_params=params,
            strategy=FedAvg(),
            server_state={},
            cfg=cfg,
        )

    every = list(range(len(clients)))
    fit = clients_that_fit(
        device, lambda: measure(device, lambda: train(every[:2]), 2), key=(id(model), cfg.batch_size)
    )
    splits = 0
    for chunk in chunks(every, fit):
        splits += in_halves(list(chunk), train, what="benchmark")[1]
    return splits


def ceiling_round(
    model: nn.Module, params: Params, data: Split, clients: list[torch.Tensor], cfg: LocalConfig
) -> None:
    """One model, mini-batches of K×32 samples: the same samples and steps without per-client parts."""
    model.load_state_dict(params)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    order = torch.stack([idx[torch.randperm(len(idx))] for idx in clients])  # [K, n]
    for start in range(0, order.shape[1], cfg.batch_size):
        batch = order[:, start : start + cfg.batch_size].reshape(-1)
        loss = F.cross_entropy(model(data.x[batch]), data.y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def agreement(
    model: nn.Module, params: Params, data: Split, clients: list[torch.Tensor], cfg: LocalConfig
) -> float:
    """Max relative difference of batched and one-by-one parameters after one step of 8 clients."""
    few = clients[:8]
    one = [fedavg_epoch(model, params, data, idx, cfg, k, max_batches=1) for k, idx in enumerate(few)]
    members = [
        Member(
            indices=idx,
            params=params,
            optimizer_state={},
            client_state={},
            generator=generator(0, "batches", 1, k, 0),
            max_batches=1,
        )
        for k, idx in enumerate(few)
    ]
    batched = train_batch_epoch(
        model=model,
        data=data,
        members=members,
        global_params=params,
        strategy=FedAvg(),
        server_state={},
        cfg=cfg,
    )
    return max(
        float((a.params[n] - b.params[n]).abs().max() / a.params[n].abs().max())
        for a, b in zip(one, batched, strict=True)
        for n in a.params
    )


def per_round(
    fn: Callable[..., Any],
    config: LocalConfig,
    *,
    model: nn.Module,
    params: Params,
    data: Split,
    clients: list[torch.Tensor],
    device: torch.device,
    repeats: int,
    warm: bool,
    after: Callable[[], Any] = lambda: None,
) -> float:
    """Median seconds of one round of `fn` (a `*_round` function above)."""
    return timed(lambda: fn(model, params, data, clients, config), device, repeats, after, warm=warm)


def part1(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    sizes = [int(k) for k in args.clients.split(",")]
    blocks = min(max(sizes), 100)
    data = TeacherMNIST(samples_per_client=args.samples_per_client, test_samples=16).load(
        num_clients=blocks, seed=0
    )
    train = Split(data.train.x.to(device), data.train.y.to(device))  # a cell's data moves to the GPU once
    natural = data.natural or []
    cfg = LocalConfig(lr=args.lr, batch_size=args.batch_size)
    half = LocalConfig(lr=args.lr, batch_size=args.batch_size, amp=True, amp_dtype="bfloat16")
    started, rows = time.perf_counter(), []
    empty = torch.cuda.empty_cache if device.type == "cuda" else (lambda: None)
    for name in args.models.split(","):
        model = model_of(name, device)
        params = {k: v.to(device) for k, v in state_of(model).items()}
        clients_all = [natural[k % blocks] for k in range(max(sizes))]
        gap = agreement(model, params, train, clients_all, cfg)
        print(f"{name}: batched vs one by one after one step, max relative difference {gap:.1e}", flush=True)
        for k in sizes:
            clients = clients_all[:k]
            row: dict[str, Any] = {"part": 1, "model": name, "clients": k, "agreement": gap}
            run = functools.partial(
                per_round,
                model=model,
                params=params,
                data=train,
                clients=clients,
                device=device,
                # a warm-up round at the first size only; fewer rounds as they grow long
                warm=k == sizes[0],
                repeats=args.repeats if k <= 10 else 2 if k <= 100 else 1,
            )
            if k <= args.loop_up_to:
                row["loop_s"] = run(loop_round, cfg)
            # past the time budget the slow side is not measured (None)
            row["one_by_one_s"] = (
                run(one_by_one_round, cfg) if time.perf_counter() - started < args.budget_s else None
            )
            row["batched_s"] = run(batched_round, cfg)
            row["batched_bf16_s"] = run(batched_round, half)
            row["batched_empty_cache_s"] = (
                run(batched_round, cfg, after=empty) if device.type == "cuda" else None
            )
            row["ceiling_s"] = run(ceiling_round, cfg)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def metric_medians(db: Path) -> dict[str, float]:
    """Medians over rounds 2.. (round 1 warms up) of round and train seconds; the peak GPU memory."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute(
            "SELECT key, step, value FROM metrics "
            "WHERE key IN ('round_seconds', 'train_seconds', 'gpu_mem_mb')"
        ).fetchall()
    out = {}
    for key in ("round_seconds", "train_seconds", "gpu_mem_mb"):
        values = [v for k, step, v in rows if k == key and (step > 1 or key == "gpu_mem_mb")]
        if values:
            out[key] = statistics.median(values) if key != "gpu_mem_mb" else max(values)
    return out


def part2(args: argparse.Namespace, device: torch.device, work: Path) -> list[dict[str, Any]]:
    bench = yaml.safe_load((REPO / "conf" / "experiment" / "bench.yaml").read_text())
    size: list[str] = []
    if args.sweep_size:  # the same smaller workload for the sweeps and the bare loop
        n, k, samples = (int(v) for v in args.sweep_size.split(","))
        bench.update(num_clients=n, clients_per_round=k)
        bench["dataset"] = {"samples_per_client": samples, "test_samples": 4 * samples}
        size = [
            f"num_clients={n}",
            f"clients_per_round={k}",
            f"dataset.samples_per_client={samples}",
            f"dataset.test_samples={4 * samples}",
        ]
    batch = "auto" if device.type == "cuda" else str(bench["clients_per_round"])
    rows = []
    for name in [s for s in args.sweeps.split(",") if s and s != "none"]:
        overrides = [o.format(batch=batch) for o in SWEEPS[name]]
        cwd = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
        cmd = [
            sys.executable,
            str(REPO / "flows" / "sweep.py"),
            "+experiment=bench",
            f"rounds={args.sweep_rounds}",
            f"runner.device={device}",
            "runner.progress=false",
            *size,
            *overrides,
        ]
        # Each sweep its own Prefect database and server, unless the caller names one (the test suite).
        env = {"PREFECT_HOME": str(cwd / "prefect"), "FEDSWEEP_RUNTIME_DIR": str(cwd / "run"), **sweep_env()}
        load = os.getloadavg()[0]
        tick = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - tick
        if done.returncode:
            raise SystemExit(f"the {name} sweep failed:\n{(done.stdout + done.stderr)[-3000:]}")
        row = {
            "part": 2,
            "side": f"fedsweep {name}",
            "wall_s": wall,
            "load_before": load,
            **metric_medians(cwd / "mlruns" / "mlflow.db"),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if rows:
        rows.append(bare_gpu_loop(args, device, bench))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def bare_gpu_loop(args: argparse.Namespace, device: torch.device, bench: dict[str, Any]) -> dict[str, Any]:
    """FedAvg by hand on `device` (bare_loop.py's rounds, data on the device): per-round medians."""
    k, n = bench["clients_per_round"], bench["num_clients"]
    data = TeacherMNIST(
        samples_per_client=bench["dataset"]["samples_per_client"],
        test_samples=bench["dataset"]["test_samples"],
    ).load(num_clients=n, seed=0)
    train = Split(data.train.x.to(device), data.train.y.to(device))
    test = Split(data.test.x.to(device), data.test.y.to(device))
    (name,) = [d["override /model"] for d in bench["defaults"] if "override /model" in d]
    model = model_of(name, device)
    params = {key: v.clone() for key, v in model.state_dict().items()}
    cfg = LocalConfig(lr=bench["lr"], batch_size=bench["batch_size"])
    natural = data.natural or []
    trains, rounds = [], []
    for rnd in range(1, args.sweep_rounds + 1):
        sync(device)
        tick = time.perf_counter()
        chosen = sorted(torch.randperm(n, generator=generator(0, "select", rnd))[:k].tolist())
        sums = {key: torch.zeros_like(v, dtype=torch.float64) for key, v in params.items()}
        for c in chosen:
            loop_round(model, params, train, [natural[c]], cfg)
            for key, v in model.state_dict().items():
                sums[key] += v.double() * len(natural[c])
        total = sum(len(natural[c]) for c in chosen)
        params = {key: (s / total).float() for key, s in sums.items()}
        sync(device)
        trained = time.perf_counter()
        model.load_state_dict(params)
        model.eval()
        with torch.no_grad():
            hits = sum(
                int((model(test.x[i : i + 1024]).argmax(1) == test.y[i : i + 1024]).sum())
                for i in range(0, len(test), 1024)
            )
        sync(device)
        trains.append(trained - tick)
        rounds.append(time.perf_counter() - tick)
    return {
        "part": 2,
        "side": "bare GPU loop",
        "round_seconds": statistics.median(rounds[1:] or rounds),
        "train_seconds": statistics.median(trains[1:] or trains),
        "accuracy": hits / len(test),
    }


def table(rows: list[dict[str, Any]], device: torch.device) -> str:
    def s(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}"

    def times(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}x"

    lines = [
        f"Part 1: training only, seconds per round on {device} (median)",
        "",
        "| model | clients | loop | one-by-one | batched | batched+bf16 | batched+empty_cache | ceiling K×32 "
        "| one-by-one / batched | loop / batched |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in rows if r["part"] == 1):
        speedup = r["one_by_one_s"] / r["batched_s"] if r.get("one_by_one_s") else None
        vs_loop = r["loop_s"] / r["batched_s"] if r.get("loop_s") else None
        lines.append(
            f"| {r['model']} | {r['clients']} | {s(r.get('loop_s'))} | {s(r.get('one_by_one_s'))} | "
            f"{s(r['batched_s'])} | {s(r['batched_bf16_s'])} | {s(r.get('batched_empty_cache_s'))} | "
            f"{s(r['ceiling_s'])} | {times(speedup)} | {times(vs_loop)} |"
        )
    sweep = [r for r in rows if r["part"] == 2]
    if sweep:
        bare = next(r for r in sweep if r["side"] == "bare GPU loop")
        lines += [
            "",
            f"Part 2: the bench sweep on {device}, seconds per round (median of rounds 2..)",
            "",
            "| side | round | train | bare loop's training / round | GPU MiB (peak) |",
            "|---|---|---|---|---|",
        ]
        for r in sweep:
            ratio = bare["train_seconds"] / r["round_seconds"]
            lines.append(
                f"| {r['side']} | {s(r['round_seconds'])} | {s(r.get('train_seconds'))} | {ratio:.2f}x | "
                f"{'-' if r.get('gpu_mem_mb') is None else round(r['gpu_mem_mb'])} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # as fedsweep's jobs train (runner.torch_threads=1)
    started, load = time.perf_counter(), os.getloadavg()[0]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"gpu.py: torch {torch.__version__}, {name}, load average {load:.1f}",
        flush=True,
    )
    rows = part1(args, device)
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as work:
        rows += part2(args, device, Path(work))
    elapsed = time.perf_counter() - started
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "device": str(device),
                    "torch": torch.__version__,
                    "load_before": load,
                    "elapsed_s": elapsed,
                    "rows": rows,
                },
                indent=1,
            )
        )
    print(f"\ngpu.py: {elapsed:.0f} s in all\n")
    print(table(rows, device), flush=True)


if __name__ == "__main__":
    main()
