"""A round's work over a cell's stores (fedsweep/rounds/), without Prefect."""

import math

import pytest
import torch

from fedsweep.cell.cell import build_parts
from fedsweep.rounds.aggregate import aggregate
from fedsweep.rounds.blobs import read_global, split_prefixed, start_round
from fedsweep.rounds.evaluate import client_accuracy, combine_evaluations, evaluate_global
from fedsweep.rounds.work import client_task, is_finite
from fedsweep.train import evaluation_hits
from fedsweep.weights import weights_sha256


@pytest.fixture
def cell(cell_config, make_cell):
    return make_cell(cell_config("local_epochs=2"))


def _start(cell) -> dict:
    return start_round(
        cell,
        round=1,
        params=cell.methods.initial_params,
        server_state=cell.methods.strategy.init_server_state(cell.methods.initial_params),
    )


def _train(cell, start: dict, client: int, epochs: int = 2) -> dict:
    ref = None
    for epoch in range(epochs):
        ref = client_task(
            cell,
            round=1,
            client=client,
            epoch=epoch,
            epochs=epochs,
            global_ref=start["global"],
            input_ref=ref,
            state_ref=None,
        )
    return ref


def test_client_epochs_chain_and_recompute_the_same_bytes(cell) -> None:
    # Prepare
    start = _start(cell)
    # Execute
    first = _train(cell, start, client=1)
    again = _train(cell, start, client=1)
    # Assert
    assert first["sha256"] == again["sha256"]
    assert first["epochs_done"] == 2 and first["num_samples"] == cell.data.clients[1].numel()
    assert first["steps"] == 2 * math.ceil(cell.data.clients[1].numel() / cell.methods.local.batch_size)
    assert first["valid"] is True and first["client_state"] is None  # FedAvg keeps no client state


def test_only_the_last_epoch_finishes_the_client(cell) -> None:
    start = _start(cell)
    first = client_task(
        cell, round=1, client=0, epoch=0, epochs=2, global_ref=start["global"], input_ref=None, state_ref=None
    )
    assert "valid" not in first and "client_state" not in first


def test_aggregate_is_sample_weighted(cell) -> None:
    # Prepare
    start = _start(cell)
    good = [_train(cell, start, client=c) for c in (0, 1)]
    # Execute
    out = aggregate(cell, round=1, start=start, results=good, failures=[], selected=[0, 1], keep=False)
    # Assert: the next round's start, the clients' sample-weighted mean
    assert out["global"]["key"] == "round-000002/global"
    params, _ = read_global(cell.stores.blobs, out["global"])
    w = [g["num_samples"] for g in good]
    ones = [split_prefixed(cell.stores.blobs.get(g["key"])[0], "opt.")[0] for g in good]
    key = next(iter(params))
    expected = (ones[0][key].double() * w[0] + ones[1][key].double() * w[1]) / sum(w)
    torch.testing.assert_close(params[key], expected.float())


def test_a_non_finite_update_is_marked_invalid(cell_config, make_cell) -> None:
    # Prepare: a fault that turns every client's update into NaN
    cell = make_cell(cell_config("faults=corrupt", "faults.p=1.0"), where="corrupt")
    start = _start(cell)
    # Execute
    ref = _train(cell, start, client=2, epochs=1)
    # Assert: marked at the source; the loop reports it as an invalid update
    assert ref["valid"] is False
    params, _ = split_prefixed(cell.stores.blobs.get(ref["key"])[0], "opt.")
    assert not is_finite(params)


@pytest.mark.parametrize("keep", [True, False])
def test_a_kept_or_empty_round_keeps_the_global_model(cell, keep) -> None:
    start = _start(cell)
    results = [_train(cell, start, client=0)] if keep else []
    out = aggregate(
        cell,
        round=1,
        start=start,
        results=results,
        selected=[0],
        failures=[{"client": 0, "kind": "X", "message": "m"}],
        keep=keep,
    )
    assert weights_sha256(read_global(cell.stores.blobs, out["global"])[0]) == weights_sha256(
        cell.methods.initial_params
    )


def test_evaluate_reports_accuracy_and_loss(cell) -> None:
    start = _start(cell)
    metrics = combine_evaluations([evaluate_global(cell, start["global"])])
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["loss"] > 0


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_an_evaluation_in_parts_adds_up_to_the_whole(cell, parts) -> None:
    # Prepare
    start = _start(cell)
    whole = combine_evaluations([evaluate_global(cell, start["global"])])
    # Execute
    split = [evaluate_global(cell, start["global"], part=i, parts=parts) for i in range(parts)]
    # Assert: every test sample counted once; the same accuracy, the same loss up to rounding
    assert sum(p["count"] for p in split) == len(cell.data.data.test)
    combined = combine_evaluations(split)
    assert combined["accuracy"] == whole["accuracy"]
    assert combined["loss"] == pytest.approx(whole["loss"], rel=1e-6)


def test_mixed_precision_is_switched_on_from_the_runner_config(cell_config) -> None:
    # Execute
    _, _, on, _ = build_parts(cell_config("runner.amp=true"))
    _, _, off, _ = build_parts(cell_config())
    # Assert
    assert on.local.amp is True and off.local.amp is False


def test_client_accuracy_by_hand() -> None:
    # Execute
    four = client_accuracy([1.0, 0.5, 0.0, 0.5])
    twenty = client_accuracy([0.1, 0.2] + [1.0] * 18)
    # Assert: mean, population std, mean of the worst ceil(10 %) clients (at least one)
    assert four["client_accuracy_mean"] == 0.5
    assert four["client_accuracy_std"] == pytest.approx(math.sqrt((0.25 + 0 + 0.25 + 0) / 4))
    assert four["client_accuracy_worst10"] == 0.0
    assert twenty["client_accuracy_worst10"] == pytest.approx(0.15)
    assert client_accuracy([]) == {}


def test_clients_with_their_own_test_samples_are_evaluated_one_by_one(cell_config, make_cell) -> None:
    # Prepare: Synthetic's natural split (each device keeps its own test samples)
    cell = make_cell(cell_config("partition=natural", "num_clients=6"))
    start = _start(cell)
    # Execute: the evaluation in parts, as the executor splits it
    metrics = combine_evaluations([evaluate_global(cell, start["global"], part=i, parts=4) for i in range(4)])
    # Assert: the figures of a direct evaluation of each client's own test samples
    params, _ = read_global(cell.stores.blobs, start["global"])
    hits, _ = evaluation_hits(model=cell.methods.thread_model(), data=cell.data.data.test, params=params)
    accuracies = [float(hits[cell.data.test_owner == c].double().mean()) for c in range(6)]
    expected = client_accuracy(accuracies)
    assert set(expected) <= set(metrics)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-12), key
    assert metrics["client_accuracy_worst10"] == min(accuracies)


def test_a_shared_test_split_reports_no_accuracy_across_clients(cell_config, make_cell) -> None:
    # Prepare: Synthetic cut by an iid partition: clients are not the devices that own test samples
    cell = make_cell(cell_config("partition=iid"))
    # Execute
    metrics = combine_evaluations([evaluate_global(cell, _start(cell)["global"])])
    # Assert
    assert cell.data.test_owner is None and "client_accuracy_mean" not in metrics
