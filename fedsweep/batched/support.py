"""Whether a cell's clients can train batched (fedsweep/batched/train.py), and why not.

Three reasons refuse a cell, checked in this order:

1. **The model keeps running statistics** (BatchNorm in training mode, or an InstanceNorm that
   tracks them, e.g. resnet18): it updates buffers in place from every mini-batch, which a vmapped
   functional loss cannot do per client.
2. **The strategy edits gradients in place** without the functional form batching needs
   (`Strategy.batch_refusal`, fedsweep/strategies/base.py).
3. **A trial step fails**: two clients of two samples each train one batched step. It catches what
   vmap refuses (a random operation other than `nn.Dropout`, `.item()` or a data-dependent branch in
   the model or in the strategy's hooks) in milliseconds, before a round relies on it.

`runner.batch_clients=N` with a refusal is a config error (one line, before anything is written:
`check_config`); `auto` trains such a cell one client at a time and says why once (INFO).
"""

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fedsweep.batched.train import Member, train_batch_epoch
from fedsweep.data.base import Split
from fedsweep.strategies.base import Strategy
from fedsweep.train import LocalConfig
from fedsweep.weights import state_of


def model_refusal(model: nn.Module) -> str | None:
    """Why `model` cannot train batched (None: it can)."""
    for name, module in model.named_modules():
        stats = isinstance(module, nn.modules.batchnorm._BatchNorm) or (
            isinstance(module, nn.modules.instancenorm._InstanceNorm) and module.track_running_stats
        )
        if stats:
            return (
                f"the model's {type(module).__name__} ({name}) updates running statistics from each "
                "mini-batch, which torch.func cannot batch per client"
            )
    return None


def refusal(*, model: nn.Module, strategy: Strategy, data: Split, cfg: LocalConfig) -> str | None:
    """Why clients of this model and strategy cannot train batched (None: they can), trial step included."""
    reason = model_refusal(model) or strategy.batch_refusal()
    if reason is not None:
        return reason
    params = state_of(model)
    server = strategy.broadcast(strategy.init_server_state(params))
    state = strategy.init_client_state(params)
    indices = torch.arange(min(2, len(data)))
    trial = [
        Member(
            indices=indices,
            params=params,
            optimizer_state={},
            client_state=state,
            generator=torch.Generator().manual_seed(c),
        )
        for c in range(2)
    ]
    small = LocalConfig(
        lr=cfg.lr,
        batch_size=2,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        clip_norm=cfg.clip_norm,
        amp=cfg.amp,
        amp_dtype=cfg.amp_dtype,
    )
    try:
        train_batch_epoch(
            model=model,
            data=data,
            members=trial,
            global_params=params,
            strategy=strategy,
            server_state=server,
            cfg=small,
        )
    except Exception as exc:  # noqa: BLE001 - whatever vmap or the hooks refuse is the reason
        line = " ".join(str(exc).split())[:300]
        return f"a trial batched step failed: {type(exc).__name__}: {line}"
    return None


def check_config(config: Mapping[str, Any]) -> None:
    """Plan time, for `runner.batch_clients=N`: ConfigError naming the key when the cell's model or
    strategy cannot batch (the model is built on the CPU; the dataset is loaded, and kept for the run)."""
    from fedsweep.cell.data import load_data  # noqa: PLC0415 - plan time only
    from fedsweep.config.errors import ConfigError  # noqa: PLC0415 - plan time only
    from fedsweep.config.plugins import build  # noqa: PLC0415 - plan time only
    from fedsweep.models.init import build_model  # noqa: PLC0415 - plan time only
    from fedsweep.rng import derive_seed  # noqa: PLC0415 - plan time only

    data = load_data(config)
    try:
        model = build_model(
            build(config["model"], key="model"),
            input_shape=tuple(data.train.x.shape[1:]),
            num_classes=data.num_classes,
            generator_seed=derive_seed(int(config["seed"]), "init"),
        )
    except (ValueError, TypeError) as exc:  # a model that does not fit the data: the model's mistake
        raise ConfigError(f"model: {' '.join(str(exc).split())}", key="model") from None
    cfg = LocalConfig(lr=float(config["lr"]), batch_size=int(config["batch_size"]))
    reason = refusal(
        model=model, strategy=build(config["strategy"], key="strategy"), data=data.train, cfg=cfg
    )
    if reason is not None:
        setting = config["runner"]["batch_clients"]
        raise ConfigError(
            f"runner.batch_clients={setting}: this cell cannot train clients batched: {reason}; "
            "use runner.batch_clients=off (or auto, which falls back to one client at a time)",
            key="runner.batch_clients",
        )
