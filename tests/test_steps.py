"""A round's steps over blobs (fedsweep/steps.py), without Prefect."""

import math

import pytest
import torch

from fedsweep import steps
from fedsweep.cell import build_runtime
from fedsweep.checkpoint.blobs import BlobStore
from fedsweep.checkpoint.storage import LocalStorage
from fedsweep.weights import weights_sha256


@pytest.fixture
def env(cell_config, tmp_path):
    rt = build_runtime(cell_config("local_epochs=2"))
    return rt, BlobStore(storage=LocalStorage(tmp_path / "work"))


def _train(rt, blobs, client: int, epochs: int = 2) -> dict:
    gref = steps.put_global(blobs, round=1, params=rt.initial_params, server_state={})
    ref = None
    for epoch in range(epochs):
        ref = steps.client_epoch(rt, blobs, round=1, client=client, epoch=epoch, global_ref=gref, input_ref=ref)
    return ref


def test_client_epochs_chain_and_recompute_the_same_bytes(env) -> None:
    # Prepare
    rt, blobs = env
    # Execute
    first = _train(rt, blobs, client=1)
    again = _train(rt, blobs, client=1)
    # Assert
    assert first["sha256"] == again["sha256"]
    assert first["epochs_done"] == 2 and first["num_samples"] == rt.clients[1].numel()
    assert first["steps"] == 2 * math.ceil(rt.clients[1].numel() / rt.local.batch_size)


def test_aggregate_is_sample_weighted_and_rejects_non_finite_updates(env) -> None:
    # Prepare
    rt, blobs = env
    gref = steps.put_global(blobs, round=1, params=rt.initial_params, server_state={})
    good = [_train(rt, blobs, client=c) for c in (0, 1)]
    bad = _train(rt, blobs, client=2)
    tensors, meta = blobs.get(bad["key"])
    poisoned = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in tensors.items()}
    bad = {**bad, "sha256": blobs.put(bad["key"], poisoned, meta)}
    # Execute
    ref, failures = steps.aggregate(rt, blobs, round=1, global_ref=gref, results=[*good, bad], failures=[])
    alone, _ = steps.aggregate(rt, blobs, round=1, global_ref=gref, results=good, failures=[])
    # Assert
    assert failures == [{"client": 2, "kind": "invalid_update", "message": "NaN/Inf"}]
    assert ref["sha256"] == alone["sha256"]
    params, _ = steps.read_global(blobs, ref)
    w = [g["num_samples"] for g in good]
    ones = [steps.split_prefixed(blobs.get(g["key"])[0], "opt.")[0] for g in good]
    key = next(iter(params))
    expected = (ones[0][key].double() * w[0] + ones[1][key].double() * w[1]) / sum(w)
    torch.testing.assert_close(params[key], expected.float())


def test_aggregate_without_results_keeps_the_global_model(env) -> None:
    rt, blobs = env
    gref = steps.put_global(blobs, round=1, params=rt.initial_params, server_state={})
    ref, failures = steps.aggregate(
        rt, blobs, round=1, global_ref=gref, results=[],
        failures=[{"client": 0, "kind": "X", "message": "m"}],
    )
    assert weights_sha256(steps.read_global(blobs, ref)[0]) == weights_sha256(rt.initial_params)
    assert failures == [{"client": 0, "kind": "X", "message": "m"}]


def test_evaluate_reports_accuracy_and_loss(env) -> None:
    rt, blobs = env
    gref = steps.put_global(blobs, round=1, params=rt.initial_params, server_state={})
    metrics = steps.combine_evaluations([steps.evaluate_global(rt, blobs, gref)])
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["loss"] > 0


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_an_evaluation_in_parts_adds_up_to_the_whole(env, parts) -> None:
    # Prepare
    rt, blobs = env
    gref = steps.put_global(blobs, round=1, params=rt.initial_params, server_state={})
    whole = steps.combine_evaluations([steps.evaluate_global(rt, blobs, gref)])
    # Execute
    split = [steps.evaluate_global(rt, blobs, gref, part=i, parts=parts) for i in range(parts)]
    # Assert: every test sample counted once; the same accuracy, the same loss up to rounding
    assert sum(p["count"] for p in split) == len(rt.data.test)
    combined = steps.combine_evaluations(split)
    assert combined["accuracy"] == whole["accuracy"]
    assert combined["loss"] == pytest.approx(whole["loss"], rel=1e-6)


def test_mixed_precision_is_switched_on_from_the_runner_config(cell_config) -> None:
    # Execute
    on = build_runtime(cell_config("runner.amp=true"))
    off = build_runtime(cell_config())
    # Assert
    assert on.local.amp is True and off.local.amp is False
