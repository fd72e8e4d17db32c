"""Power-of-choice's probe step (`steps.probe_loss`) and the selector's weights in `steps.aggregate`,
over a cell's stores, without Prefect."""

import pytest
import torch
import torch.nn.functional as F

from fedsweep import steps
from fedsweep.rng import generator


@pytest.fixture
def env(cell_config, make_env):
    return make_env(cell_config("num_clients=4", "local_epochs=1"))


def _start(env) -> dict:
    rt = env.runtime
    return steps.start_round(
        env, round=3, params=rt.initial_params, server_state=rt.strategy.init_server_state(rt.initial_params)
    )


def _loss_by_hand(env, indices: torch.Tensor) -> float:
    rt = env.runtime
    model = rt.thread_model()
    model.load_state_dict(rt.initial_params)
    model.eval()
    with torch.no_grad():
        return float(F.cross_entropy(model(rt.data.train.x[indices]), rt.data.train.y[indices]).double())


def test_the_probe_is_the_mean_training_loss_at_the_global_model(env) -> None:
    # Prepare
    start, indices = _start(env), env.runtime.clients[2]
    # Execute
    loss = steps.probe_loss(env, start["global"], round=3, client=2, samples=None)
    everything = steps.probe_loss(env, start["global"], round=3, client=2, samples=len(indices) + 5)
    # Assert
    assert loss == pytest.approx(_loss_by_hand(env, indices), rel=1e-6)
    assert everything == loss


def test_a_probe_on_b_samples_draws_them_from_the_probe_generator(env) -> None:
    # Prepare
    start, indices = _start(env), env.runtime.clients[1]
    seed = env.runtime.settings.knobs.seed
    drawn = indices[torch.randperm(len(indices), generator=generator(seed, "probe", 3, 1))[:5]]
    # Execute
    loss = steps.probe_loss(env, start["global"], round=3, client=1, samples=5)
    again = steps.probe_loss(env, start["global"], round=3, client=1, samples=5)
    other_round = steps.probe_loss(env, start["global"], round=4, client=1, samples=5)
    # Assert
    assert loss == again == pytest.approx(_loss_by_hand(env, drawn), rel=1e-6)
    assert other_round != loss


def test_aggregate_uses_the_selectors_weights(env) -> None:
    # Prepare: clients 0 and 1 trained; the selector weighs client 0 three times client 1
    start = _start(env)
    refs = [
        steps.client_epoch(
            env,
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
    params = [steps.split_prefixed(env.blobs.get(r["key"])[0], "opt.")[0] for r in refs]
    # Execute
    weighted = steps.aggregate(
        env,
        round=3,
        start=start,
        results=refs,
        failures=[],
        selected=[0, 1],
        keep=False,
        weights={0: 3.0, 1: 1.0},
    )
    out = steps.read_global(env.blobs, weighted["global"])[0]
    default = steps.aggregate(
        env, round=3, start=start, results=refs, failures=[], selected=[0, 1], keep=False
    )
    # Assert
    for name, value in out.items():
        expected = (3.0 * params[0][name].double() + params[1][name].double()) / 4.0
        torch.testing.assert_close(value, expected.to(value.dtype))
    assert weighted["global"]["sha256"] != default["global"]["sha256"]
