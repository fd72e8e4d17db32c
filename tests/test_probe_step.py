"""Power-of-choice's probe step (`probe_loss`) and the selector's weights in `aggregate`,
over a cell's stores, without Prefect."""

import pytest
import torch
import torch.nn.functional as F

from fedsweep.rng import generator
from fedsweep.rounds.aggregate import aggregate
from fedsweep.rounds.blobs import read_global, split_prefixed, start_round
from fedsweep.rounds.evaluate import probe_loss
from fedsweep.rounds.work import client_task


@pytest.fixture
def cell(cell_config, make_cell):
    return make_cell(cell_config("num_clients=4", "local_epochs=1"))


def _start(cell) -> dict:
    return start_round(
        cell,
        round=3,
        params=cell.methods.initial_params,
        server_state=cell.methods.strategy.init_server_state(cell.methods.initial_params),
    )


def _loss_by_hand(cell, indices: torch.Tensor) -> float:
    model = cell.methods.thread_model()
    model.load_state_dict(cell.methods.initial_params)
    model.eval()
    with torch.no_grad():
        return float(
            F.cross_entropy(model(cell.data.data.train.x[indices]), cell.data.data.train.y[indices]).double()
        )


def test_the_probe_is_the_mean_training_loss_at_the_global_model(cell) -> None:
    # Prepare
    start, indices = _start(cell), cell.data.clients[2]
    # Execute
    loss = probe_loss(cell, start["global"], round=3, client=2, samples=None)
    everything = probe_loss(cell, start["global"], round=3, client=2, samples=len(indices) + 5)
    # Assert
    assert loss == pytest.approx(_loss_by_hand(cell, indices), rel=1e-6)
    assert everything == loss


def test_a_probe_on_b_samples_draws_them_from_the_probe_generator(cell) -> None:
    # Prepare
    start, indices = _start(cell), cell.data.clients[1]
    seed = cell.settings.knobs.seed
    drawn = indices[torch.randperm(len(indices), generator=generator(seed, "probe", 3, 1))[:5]]
    # Execute
    loss = probe_loss(cell, start["global"], round=3, client=1, samples=5)
    again = probe_loss(cell, start["global"], round=3, client=1, samples=5)
    other_round = probe_loss(cell, start["global"], round=4, client=1, samples=5)
    # Assert
    assert loss == again == pytest.approx(_loss_by_hand(cell, drawn), rel=1e-6)
    assert other_round != loss


def test_aggregate_uses_the_selectors_weights(cell) -> None:
    # Prepare: clients 0 and 1 trained; the selector weighs client 0 three times client 1
    start = _start(cell)
    refs = [
        client_task(
            cell,
            round=3,
            client=c,
            epoch=0,
            epochs=1,
            global_ref=start["global"],
            input_ref=None,
            state_ref=None,
        )
        for c in (0, 1)
    ]
    params = [split_prefixed(cell.stores.blobs.get(r["key"])[0], "opt.")[0] for r in refs]
    # Execute
    weighted = aggregate(
        cell,
        round=3,
        start=start,
        results=refs,
        failures=[],
        selected=[0, 1],
        keep=False,
        weights={0: 3.0, 1: 1.0},
    )
    out = read_global(cell.stores.blobs, weighted["global"])[0]
    default = aggregate(cell, round=3, start=start, results=refs, failures=[], selected=[0, 1], keep=False)
    # Assert
    for name, value in out.items():
        expected = (3.0 * params[0][name].double() + params[1][name].double()) / 4.0
        torch.testing.assert_close(value, expected.to(value.dtype))
    assert weighted["global"]["sha256"] != default["global"]["sha256"]
