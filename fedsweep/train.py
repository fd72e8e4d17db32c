"""Local training and evaluation in plain torch: one client epoch, one evaluation pass.

`train_epoch` is a pure function of its inputs. It overwrites the reused model instance's whole
state from `params`, builds a fresh optimiser whose momentum comes from `optimizer_state`, and
draws every random number from `generator` (the shuffle, and a seed for any randomness inside the
model, e.g. dropout, run under an isolated global RNG). So the same inputs give bitwise the same
outputs on the same device, whatever the instance trained before, and a retried or resumed task
recomputes the same bytes. (On CUDA, bitwise repeatability also needs deterministic kernels,
`torch.use_deterministic_algorithms`, a process-wide switch left to the runner; on CPU, the same
number of intra-op threads.) Inputs are never modified, but they must not share storage with the
model: pass `fedsweep.weights.state_of(model)` copies, not `model.state_dict()` views, which
training would move under FedProx's feet.

Memory: the dataset is never copied; a mini-batch is `data.x[idx]`, gathered from the shared tensor.
No DataLoader, so no worker processes per client.

A non-finite loss is not an error here: it flows into `EpochOut.loss` (and the parameters) and the
caller decides what a diverged client is. `strategy.finish_client` is not called here: it runs once
after all of a client's epochs, with the total number of steps.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fedsweep.data.base import Split
from fedsweep.strategies.base import Strategy
from fedsweep.weights import Params, state_of

AMP_DTYPES = ("auto", "bfloat16", "float16")  # LocalConfig.amp_dtype


@dataclass(frozen=True, kw_only=True)
class LocalConfig:
    """Client optimiser settings (SGD)."""

    lr: float
    batch_size: int
    momentum: float = 0.0
    weight_decay: float = 0.0
    clip_norm: float = 0.0  # gradient clipping by global norm; 0 turns it off
    amp: bool = False  # mixed precision: autocast the forward pass to `amp_dtype` (`amp_dtype`)
    # auto: bfloat16 (no loss scaling) on the CPU, and on CUDA where the GPU supports it, else float16
    # with gradient scaling; bfloat16 | float16 (float16 always with a GradScaler)
    amp_dtype: str = "auto"

    def __post_init__(self) -> None:
        if not self.lr > 0.0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if not self.weight_decay >= 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not self.clip_norm >= 0.0:
            raise ValueError(f"clip_norm must be >= 0 (0 = off), got {self.clip_norm}")
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"amp_dtype must be one of {', '.join(AMP_DTYPES)}, got {self.amp_dtype!r}")


def amp_dtype(name: str, device: torch.device) -> torch.dtype:
    """The autocast dtype `LocalConfig.amp_dtype` names on `device`: `auto` is bfloat16 on the CPU and
    on a CUDA GPU that supports it (no loss scaling needed), float16 on an older GPU."""
    if name == "bfloat16":
        return torch.bfloat16
    if name == "float16":
        return torch.float16
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


@dataclass(frozen=True)
class EpochOut:
    """What one local epoch produced (CPU tensors)."""

    params: Params
    optimizer_state: Params
    loss: float
    steps: int
    num_samples: int
    # Mean of the squared per-sample losses (Oort's statistical utility is its root times the
    # samples); computed on detached logits, so the gradient and the update are untouched.
    loss_sq: float = float("nan")


class LocalSGD:
    """A client's SGD, computed as torch.optim.SGD's single-tensor path computes it: weight decay
    (d = g + wd * p), then momentum (buf = d at a parameter's first step, else buf = rho * buf + d;
    d = buf), then p = p - lr * d; a parameter without a gradient is left alone. Momentum buffers are
    kept by parameter name (`momentum_state`), put back from a copy of `state`.

    Not torch.optim.SGD itself: its construction and its step import torch._dynamo, ~1.1 s of CPU in
    every process that trains (each sweep, each worker), for nothing one-by-one training uses. On the
    CPU the result is bitwise torch.optim.SGD's (tests/test_train.py); on CUDA torch.optim.SGD uses its
    foreach kernels by default, whose rounding may differ in the last bit. `param_groups` is what
    torch.amp.GradScaler reads when it scales float16 losses (unscale_, step)."""

    def __init__(self, named: dict[str, nn.Parameter], cfg: LocalConfig, state: Params) -> None:
        self.named, self.cfg = named, cfg
        self.param_groups = [{"params": list(named.values())}]
        self.buffers: Params = {}
        if state and cfg.momentum != 0.0:
            unknown = sorted(state.keys() - named.keys())
            if unknown:
                raise KeyError(f"optimizer_state has buffers for unknown parameters: {unknown}")
            for name, buf in state.items():
                param = named[name]
                if buf.shape != param.shape:
                    raise ValueError(
                        f"optimizer_state[{name!r}] has shape {tuple(buf.shape)}, "
                        f"parameter has {tuple(param.shape)}"
                    )
                # Updated in place: a copy, so the caller's tensor is never modified.
                self.buffers[name] = buf.to(param.device, param.dtype, copy=True)

    def zero_grad(self) -> None:
        for param in self.named.values():
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        lr, momentum, weight_decay = self.cfg.lr, self.cfg.momentum, self.cfg.weight_decay
        for name, param in self.named.items():
            if param.grad is None:
                continue
            d = param.grad
            if weight_decay != 0.0:
                d = d.add(param, alpha=weight_decay)
            if momentum != 0.0:
                buf = self.buffers.get(name)
                if buf is None:
                    buf = self.buffers[name] = d.detach().clone()
                else:
                    buf.mul_(momentum).add_(d, alpha=1)
                d = buf
            param.add_(d, alpha=-lr)

    def momentum_state(self) -> Params:
        """Momentum buffers by parameter name, detached CPU copies (empty without momentum)."""
        return {
            name: self.buffers[name].detach().to("cpu", copy=True).contiguous()
            for name in self.named
            if name in self.buffers
        }


def train_epoch(
    *,
    model: nn.Module,
    data: Split,
    indices: torch.Tensor,
    params: Params,
    optimizer_state: Params,
    global_params: Params,
    strategy: Strategy,
    server_state: Params,
    client_state: Params,
    cfg: LocalConfig,
    generator: torch.Generator,
    max_batches: int | None = None,
) -> EpochOut:
    """One pass of mini-batch SGD over `indices` (or its first `max_batches` batches)."""
    if max_batches is not None and max_batches < 0:
        raise ValueError(f"max_batches must be >= 0 or None, got {max_batches}")
    device = _device_of(model)
    model.load_state_dict(params)
    model.train()
    named = dict(model.named_parameters())
    optimizer = LocalSGD(named, cfg, optimizer_state)
    # Moved once per epoch, not once per step; `.to` is a no-op on the model's own device.
    global_dev = _to(global_params, device)
    server_dev = _to(server_state, device)
    client_dev = _to(client_state, device)

    order = indices[torch.randperm(len(indices), generator=generator)]
    model_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    batches = range(0, len(order), cfg.batch_size)
    if max_batches is not None:
        batches = batches[:max_batches]

    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    loss_sq_sum = torch.zeros((), dtype=torch.float64, device=device)
    seen = 0
    # Mixed precision: the forward pass autocasts; parameters, the penalty and the update stay
    # float32. float16 needs loss scaling against underflow; bfloat16 does not.
    half = amp_dtype(cfg.amp_dtype, device)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and half == torch.float16)
    with _isolated_rng(model_seed, device):
        for start in batches:
            idx = order[start : start + cfg.batch_size]
            x = data.x[idx].to(device, non_blocking=True)
            y = data.y[idx].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=half, enabled=cfg.amp):
                logits = model(x)
                loss = F.cross_entropy(logits, y).float()
            # Per-sample losses for selection only, outside autograd: the objective above is unchanged.
            per_sample = F.cross_entropy(logits.detach().float(), y, reduction="none").double()
            loss_sq_sum += per_sample.square().sum()
            penalty = strategy.local_penalty(
                params=named, global_params=global_dev, server_state=server_dev, client_state=client_dev
            )
            objective = loss if penalty is None else loss + penalty
            optimizer.zero_grad()
            scaler.scale(objective).backward()
            scaler.unscale_(optimizer)  # type: ignore[arg-type]  # it reads param_groups only
            strategy.correct_gradients(named_params=named, server_state=server_dev, client_state=client_dev)
            if cfg.clip_norm > 0.0:
                torch.nn.utils.clip_grad_norm_(named.values(), cfg.clip_norm)
            scaler.step(optimizer)  # type: ignore[arg-type]  # param_groups and step()
            scaler.update()
            # Accumulated on the device: no host sync per step. The reported loss is the data loss
            # (cross-entropy), comparable across strategies, without the strategy's penalty.
            loss_sum += loss.detach().double() * len(idx)
            seen += len(idx)

    return EpochOut(
        params=state_of(model),
        optimizer_state=optimizer.momentum_state(),
        # An empty client trains nothing; 0.0 rather than NaN, so it does not look diverged.
        loss=float(loss_sum / seen) if seen else 0.0,
        steps=len(batches),
        num_samples=seen,
        loss_sq=float(loss_sq_sum / seen) if seen else 0.0,
    )


@torch.no_grad()
def evaluation_hits(
    *, model: nn.Module, data: Split, params: Params, batch_size: int = 1024
) -> tuple[torch.Tensor, float]:
    """(whether each sample of `data` is predicted right by `params`, as a CPU bool tensor; summed
    cross-entropy): parts of a split add up."""
    if batch_size < 1:
        raise ValueError(f"evaluate: batch_size must be >= 1, got {batch_size}")
    device = _device_of(model)
    model.load_state_dict(params)
    model.eval()
    hits = []
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    for start in range(0, len(data), batch_size):
        x = data.x[start : start + batch_size].to(device, non_blocking=True)
        y = data.y[start : start + batch_size].to(device, non_blocking=True)
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        hits.append(logits.argmax(dim=1) == y)
    return (torch.cat(hits).cpu() if hits else torch.zeros(0, dtype=torch.bool)), float(loss_sum)


def _device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameter-less model)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _to(tensors: Params, device: torch.device) -> Params:
    return {k: v.to(device) for k, v in tensors.items()}


@contextmanager
def _isolated_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Global RNG seeded from the client's generator for the block, the caller's state restored."""
    # Only models with randomness inside (dropout) read it; fedsweep's own draws all use generators.
    cuda: list[int] = []
    if device.type == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield
