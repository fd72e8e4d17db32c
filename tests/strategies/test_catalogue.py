"""Every strategy option: an empty round keeps the model and the server state; failures are only
data; integer buffers keep their dtype; the server state is not broadcast (but SCAFFOLD's c)."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from test_strategy_conf import CONF, load_option

from fedsweep.failures import Failure
from fedsweep.strategies.base import ClientResult, ListResults, RoundContext, Strategy

GLOBAL = {
    "w": torch.tensor([[0.5, -1.0], [2.0, 0.0]]),
    "b": torch.tensor([0.1]),
    "num_batches_tracked": torch.tensor(7, dtype=torch.int64),
}
CONTEXT = RoundContext(round=1, selected=tuple(range(7)), num_clients=10)
OPTIONS = sorted(CONF.glob("*.yaml"))


def client(c: int, strategy: Strategy | None = None, server_state: dict | None = None) -> ClientResult:
    """Client c's round as the runner hands it over: with its state before and after (stateful methods)."""
    gen = torch.Generator().manual_seed(c)
    params = {
        k: v + 0.1 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v + c
        for k, v in GLOBAL.items()
    }
    before = strategy.init_client_state(GLOBAL) if strategy else {}
    after = (
        strategy.finish_client(
            params=params,
            global_params=GLOBAL,
            server_state=strategy.broadcast(server_state),
            client_state=before,
            steps=3,
            lr=0.1,
        )
        if strategy
        else {}
    )
    return ClientResult(
        client=c,
        num_samples=10 + c,
        loss=1.0 + 0.1 * c,
        steps=3,
        epochs_done=1,
        epochs_planned=1,
        params=params,
        client_state=after,
        previous_client_state=before,
    )


def build(path: Path) -> Strategy:
    return instantiate(load_option(path))


@pytest.mark.parametrize("path", OPTIONS, ids=lambda p: p.stem)
def test_an_empty_round_keeps_the_model_and_the_state(path: Path) -> None:
    # Prepare
    strategy = build(path)
    state = strategy.init_server_state(GLOBAL)
    failures = [Failure(client=c, kind="timeout", message="no answer") for c in range(3)]
    # Execute
    out = strategy.aggregate(
        global_params=GLOBAL, results=ListResults([]), failures=failures, server_state=state, context=CONTEXT
    )
    # Assert
    assert list(out.params) == list(GLOBAL)
    assert all(torch.equal(out.params[k], v) and out.params[k].dtype == v.dtype for k, v in GLOBAL.items())
    assert out.server_state.keys() == state.keys()
    assert all(torch.equal(out.server_state[k], v) for k, v in state.items())


@pytest.mark.parametrize("path", OPTIONS, ids=lambda p: p.stem)
def test_a_round_moves_the_model_keeps_dtypes_and_ignores_failures(path: Path) -> None:
    # Prepare
    strategy = build(path)
    state = strategy.init_server_state(GLOBAL)
    results = ListResults([client(c, strategy, state) for c in range(7)])
    kwargs = {"global_params": GLOBAL, "results": results, "server_state": state, "context": CONTEXT}
    # Execute
    out = strategy.aggregate(failures=[], **kwargs)
    again = strategy.aggregate(failures=[Failure(client=9, kind="nan", message="nan")], **kwargs)
    # Assert
    assert {k: (v.dtype, v.shape) for k, v in out.params.items()} == {
        k: (v.dtype, v.shape) for k, v in GLOBAL.items()
    }
    assert not torch.equal(out.params["w"], GLOBAL["w"])
    assert all(torch.isfinite(v).all() for v in out.params.values())
    assert 7 <= out.params["num_batches_tracked"].item() <= 13
    assert all(torch.equal(out.params[k], again.params[k]) for k in GLOBAL)
    sent = strategy.broadcast(out.server_state)
    # Only SCAFFOLD sends server state (its control variate c, which the clients' correction needs).
    assert sent.keys() <= out.server_state.keys() and (path.stem == "scaffold" or sent == {})
