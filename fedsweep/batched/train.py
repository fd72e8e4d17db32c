"""Local epochs of many clients at once: `fedsweep.train.train_epoch` batched with torch.func.

Every client of a batch runs what `train_epoch` would run for it (the same shuffle from its own
generator, the same mini-batches, the same SGD with momentum, weight decay and clipping, the
strategy's local objective, the same per-sample losses), but the batch trains as one computation:
per-client parameters and buffers stacked along a new first dimension, `vmap` over `grad` of one
client's functional loss (`functional_call`), the optimiser applied to the stacked tensors. After a
step, parameters equal the one-by-one path's up to float rounding (tests/batched/: ≤ 1e-5 relative in
float32), not bitwise: rounding differs, which is why `runner.batch_clients` is part of a cell's
identity.

- **Ragged batches.** Clients with different numbers of samples or steps share the batch: every
  step's mini-batch is padded to `batch_size` with weight-0 samples, the loss is the weighted sum over
  the client's real samples divided by their count, and a client past its last step is masked (its
  parameters and momentum do not move; it reports its true number of steps).
- **Strategies** receive one client under vmap: `local_penalty` as in `train_epoch` and
  `corrected_gradients`, the functional form of `correct_gradients` (fedsweep/strategies/base.py).
- **Mixed precision** autocasts the forward pass as `train_epoch` does; float16 keeps a per-client
  loss scale (GradScaler's rule: a client whose gradients overflow skips its step and halves its
  scale).
- **Randomness.** Dropout layers draw per-client masks from the client's generator
  (fedsweep/batched/dropout.py); any other random operation in the model is refused by vmap
  (`randomness="error"`), and such a model does not batch (fedsweep/batched/support.py).
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from fedsweep.batched.dropout import step_seeds, with_seeded_dropout
from fedsweep.data.base import Split
from fedsweep.strategies.base import Strategy
from fedsweep.train import EpochOut, LocalConfig, amp_dtype
from fedsweep.weights import Params

# GradScaler's defaults (torch.amp.GradScaler): float16 loss scaling, per client here.
_SCALE, _GROWTH, _BACKOFF, _INTERVAL = 2.0**16, 2.0, 0.5, 2000


@dataclass(frozen=True, kw_only=True, eq=False)
class Member:
    """One client's epoch in a batch: what `train_epoch` takes for it beside the shared inputs."""

    indices: torch.Tensor
    params: Params
    optimizer_state: Params
    client_state: Params
    generator: torch.Generator
    max_batches: int | None = None


@dataclass(frozen=True)
class _Order:
    """A client's epoch drawn from its generator exactly as `train_epoch` draws it."""

    order: torch.Tensor
    model_seed: int
    steps: int


def _draw(member: Member, batch_size: int) -> _Order:
    if member.max_batches is not None and member.max_batches < 0:
        raise ValueError(f"max_batches must be >= 0 or None, got {member.max_batches}")
    n = len(member.indices)
    order = member.indices[torch.randperm(n, generator=member.generator)]
    model_seed = int(torch.randint(0, 2**62, (1,), generator=member.generator))
    batches = range(0, n, batch_size)
    if member.max_batches is not None:
        batches = batches[: member.max_batches]
    return _Order(order=order, model_seed=model_seed, steps=len(batches))


def _layout(orders: Sequence[_Order], batch_size: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sample indices [K, steps, batch_size], weights [K, steps, batch_size]): each client's real
    mini-batches, padded with weight-0 copies of a real sample (finite values: 0 · x stays 0)."""
    k = len(orders)
    index = torch.zeros(k, steps * batch_size, dtype=torch.int64)
    weight = torch.zeros(k, steps * batch_size, dtype=torch.float32)
    for c, o in enumerate(orders):
        used = o.order[: o.steps * batch_size]
        if len(used):
            index[c] = used[0]
            index[c, : len(used)] = used
            weight[c, : len(used)] = 1.0
    return index.view(k, steps, batch_size), weight.view(k, steps, batch_size)


def _stack(dicts: Sequence[Mapping[str, torch.Tensor]], names: Sequence[str], device: torch.device) -> Params:
    return {n: torch.stack([d[n] for d in dicts]).to(device) for n in names}


def _per_client(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A [K] tensor shaped to broadcast over a stacked [K, ...] tensor."""
    return mask.view(-1, *([1] * (like.dim() - 1)))


def train_batch_epoch(
    *,
    model: nn.Module,
    data: Split,
    members: Sequence[Member],
    global_params: Params,
    strategy: Strategy,
    server_state: Params,
    cfg: LocalConfig,
) -> list[EpochOut]:
    """One local epoch (or its first `max_batches` batches) of every member, trained together; what
    `train_epoch` returns for each, in order (CPU tensors)."""
    if not members:
        return []
    device = _device_of(model)
    fmodel, seed_names = with_seeded_dropout(model)
    fmodel.train()
    names = [n for n, _ in model.named_parameters()]
    keys = list(model.state_dict().keys())
    buffers = [k for k in keys if k not in set(names)]
    k, size = len(members), cfg.batch_size

    orders = [_draw(m, size) for m in members]
    steps = max(o.steps for o in orders)
    index, weight = _layout(orders, size, steps)
    index, weight = index.to(data.x.device), weight.to(device)
    counts = weight.sum(dim=2)  # [K, steps]: real samples per step
    step_of = torch.tensor([o.steps for o in orders], device=device)
    seeds = torch.stack([step_seeds(o.model_seed, steps) for o in orders]).to(device) if seed_names else None

    params = _stack([m.params for m in members], names, device)
    state = _stack([m.params for m in members], buffers, device)
    client = _stack([m.client_state for m in members], list(members[0].client_state), device)
    global_dev = {n: t.to(device) for n, t in global_params.items()}
    server_dev = {n: t.to(device) for n, t in server_state.items()}
    momentum, has_buf = _momentum(members, names, params, cfg.momentum)

    half = amp_dtype(cfg.amp_dtype, device)
    scaled = cfg.amp and half == torch.float16
    scale = torch.full((k,), _SCALE, device=device)
    growth = torch.zeros(k, dtype=torch.int64, device=device)
    autocast = (device.type, half, cfg.amp)
    step_fn = _client_step(fmodel, strategy, global_dev, server_dev, seed_names, autocast)

    loss_sum = torch.zeros(k, dtype=torch.float64, device=device)
    loss_sq_sum = torch.zeros(k, dtype=torch.float64, device=device)
    for t in range(steps):
        x = data.x[index[:, t]].to(device, non_blocking=True)
        y = data.y[index[:, t]].to(device, non_blocking=True)
        active = step_of > t
        seed_t = seeds[:, t] if seeds is not None else torch.zeros(k, dtype=torch.int64, device=device)
        grads, loss, loss_sq, finite = vmap(step_fn)(
            params, state, client, x, y, weight[:, t], counts[:, t].clamp(min=1.0), seed_t, scale
        )
        if cfg.clip_norm > 0.0:
            grads = _clipped(grads, cfg.clip_norm)
        moving = active & finite if scaled else active
        params, momentum, has_buf = _sgd(params, grads, momentum, has_buf, moving, cfg)
        if scaled:
            scale, growth = _rescale(scale, growth, finite, active)
        loss_sum += torch.where(active, loss.double() * counts[:, t].double(), 0.0)
        loss_sq_sum += torch.where(active, loss_sq, 0.0)

    return _outputs(members, orders, keys, params, state, momentum, has_buf, weight, loss_sum, loss_sq_sum)


def _client_step(
    fmodel: nn.Module,
    strategy: Strategy,
    global_dev: Params,
    server_dev: Params,
    seed_names: list[str],
    autocast: tuple[str, torch.dtype, bool],
) -> Callable[..., Any]:
    """One client's step as a function vmap batches: (gradients corrected by the strategy, data loss,
    sum of squared per-sample losses, whether the gradients are finite). Only the forward pass
    autocasts (`autocast`: device type, dtype, on), as in `train_epoch`."""
    device_type, half, amp = autocast
    scaled = amp and half == torch.float16

    def objective(
        p: Params,
        b: Params,
        cs: Params,
        x: torch.Tensor,
        y: torch.Tensor,
        w: torch.Tensor,
        n: torch.Tensor,
        seed: torch.Tensor,
        scale: torch.Tensor,
    ) -> tuple[torch.Tensor, tuple]:
        tensors = {**p, **b, **dict.fromkeys(seed_names, seed)}
        with torch.autocast(device_type, dtype=half, enabled=amp):
            logits = functional_call(fmodel, tensors, (x,))
            per_sample = F.cross_entropy(logits, y, reduction="none").float()
        loss = (per_sample * w).sum() / n
        # Per-sample losses for selection only: detached, so the objective is unchanged.
        loss_sq = (per_sample.detach().double().square() * w.double()).sum()
        penalty = strategy.local_penalty(
            params=p, global_params=global_dev, server_state=server_dev, client_state=cs
        )
        total = loss if penalty is None else loss + penalty
        return (total * scale if scaled else total), (loss.detach(), loss_sq)

    gradient = grad(objective, has_aux=True)

    def step(
        p: Params,
        b: Params,
        cs: Params,
        x: torch.Tensor,
        y: torch.Tensor,
        w: torch.Tensor,
        n: torch.Tensor,
        seed: torch.Tensor,
        scale: torch.Tensor,
    ) -> tuple:
        g, (loss, loss_sq) = gradient(p, b, cs, x, y, w, n, seed, scale)
        finite = torch.ones((), dtype=torch.bool, device=loss.device)
        if scaled:  # unscaled before the strategy and clipping see them, as GradScaler.unscale_
            inverse = scale.double().reciprocal().float()
            g = {name: v * inverse for name, v in g.items()}
            finite = torch.stack([torch.isfinite(v).all() for v in g.values()]).all()
        g = dict(strategy.corrected_gradients(grads=g, server_state=server_dev, client_state=cs))
        return g, loss, loss_sq, finite

    return step


def _momentum(
    members: Sequence[Member], names: list[str], params: Params, momentum: float
) -> tuple[Params, dict[str, torch.Tensor]]:
    """(stacked momentum buffers, whether each client has one per parameter [K] bool): restored
    from each member's `optimizer_state`, as `train_epoch` restores them; zeros where it has none."""
    if momentum == 0.0:
        return {}, {}
    device = next(iter(params.values())).device
    for m in members:
        unknown = sorted(m.optimizer_state.keys() - set(names))
        if unknown:
            raise KeyError(f"optimizer_state has buffers for unknown parameters: {unknown}")
    bufs, has = {}, {}
    for n in names:
        rows = []
        for m in members:
            buf = m.optimizer_state.get(n)
            if buf is not None and buf.shape != params[n].shape[1:]:
                raise ValueError(
                    f"optimizer_state[{n!r}] has shape {tuple(buf.shape)}, parameter has "
                    f"{tuple(params[n].shape[1:])}"
                )
            rows.append(torch.zeros_like(params[n][0]) if buf is None else buf.to(device, params[n].dtype))
        bufs[n] = torch.stack(rows)
        has[n] = torch.tensor([n in m.optimizer_state for m in members], device=device)
    return bufs, has


def _clipped(grads: Params, max_norm: float) -> Params:
    """Each client's gradients clipped by their global norm, as `clip_grad_norm_` clips one model's."""
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), 2, dim=1) for g in grads.values()])
    total = torch.linalg.vector_norm(norms, 2, dim=0)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    return {n: g * _per_client(coef, g) for n, g in grads.items()}


def _sgd(
    params: Params,
    grads: Params,
    momentum: Params,
    has_buf: dict[str, torch.Tensor],
    moving: torch.Tensor,
    cfg: LocalConfig,
) -> tuple[Params, Params, dict[str, torch.Tensor]]:
    """torch.optim.SGD's step (weight decay, then momentum: buf ← ρ·buf + d, or d at first), for the
    clients in `moving`; the others keep their parameters and buffers."""
    new_params, new_momentum, new_has = {}, {}, {}
    for n, p in params.items():
        d = grads[n]
        if cfg.weight_decay != 0.0:
            d = d.add(p, alpha=cfg.weight_decay)
        move = _per_client(moving, p)
        if cfg.momentum != 0.0:
            had = _per_client(has_buf[n], p)
            buf = torch.where(had, momentum[n].mul(cfg.momentum).add(d), d)
            new_momentum[n] = torch.where(move, buf, momentum[n])
            new_has[n] = has_buf[n] | moving
            d = buf
        new_params[n] = torch.where(move, p.add(d, alpha=-cfg.lr), p)
    return new_params, new_momentum, new_has


def _rescale(
    scale: torch.Tensor, growth: torch.Tensor, finite: torch.Tensor, active: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """GradScaler.update per client: halve the scale after an overflow, double it after 2000 clean steps."""
    grown = torch.where(finite, growth + 1, torch.zeros_like(growth))
    new_scale = torch.where(finite, scale, scale * _BACKOFF)
    new_scale = torch.where(grown == _INTERVAL, new_scale * _GROWTH, new_scale)
    grown = torch.where(grown == _INTERVAL, torch.zeros_like(grown), grown)
    return torch.where(active, new_scale, scale), torch.where(active, grown, growth)


def _outputs(
    members: Sequence[Member],
    orders: Sequence[_Order],
    keys: list[str],
    params: Params,
    state: Params,
    momentum: Params,
    has_buf: dict[str, torch.Tensor],
    weight: torch.Tensor,
    loss_sum: torch.Tensor,
    loss_sq_sum: torch.Tensor,
) -> list[EpochOut]:
    """Each member's `EpochOut`, on the CPU (one copy of each stacked tensor, then views)."""
    tensors = {n: t.detach().cpu() for n, t in {**params, **state}.items()}
    bufs = {n: t.detach().cpu() for n, t in momentum.items()}
    has = {n: h.cpu() for n, h in has_buf.items()}
    seen = weight.sum(dim=(1, 2)).cpu().tolist()
    losses, squares = loss_sum.cpu(), loss_sq_sum.cpu()
    outs = []
    for c, (_, order) in enumerate(zip(members, orders, strict=True)):
        n = int(seen[c])
        outs.append(
            EpochOut(
                params={key: tensors[key][c].clone() for key in keys},
                optimizer_state={name: bufs[name][c].clone() for name in bufs if bool(has[name][c])},
                # An empty client trains nothing; 0.0 rather than NaN, so it does not look diverged.
                loss=float(losses[c] / n) if n else 0.0,
                steps=order.steps,
                num_samples=n,
                loss_sq=float(squares[c] / n) if n else 0.0,
            )
        )
    return outs


def _device_of(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")
