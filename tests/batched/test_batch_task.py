"""A batch job over a cell's stores (fedsweep/rounds/batch.py), without Prefect: members' results as
one by one writes them, each fault kind on its member only, GPU out-of-memory halving, grouping."""

import logging
import time

import pytest
import torch

from fedsweep.config.errors import ConfigError
from fedsweep.rounds import batch
from fedsweep.rounds.batch import AUTO, MemberTask, batch_task, batching, groups
from fedsweep.rounds.blobs import split_prefixed, start_round
from fedsweep.rounds.work import client_task

BASE = ("num_clients=6", "clients_per_round=6", "local_epochs=2", "runner.batch_clients=3")


def _start(cell) -> dict:
    params = cell.methods.initial_params
    return start_round(
        cell, round=1, params=params, server_state=cell.methods.strategy.init_server_state(params)
    )


def _member(
    cell, client: int, *, epoch: int = 0, span: int = 1, input_ref=None, attempt: int = 1
) -> MemberTask:
    params = cell.methods.initial_params
    state = cell.stores.client_states.put(
        client=client, round=1, state=cell.methods.strategy.init_client_state(params), initial=True
    )
    return MemberTask(
        client=client, epoch=epoch, epochs=2, span=span, input_ref=input_ref, state_ref=state, attempt=attempt
    )


def _params(cell, ref) -> dict:
    return split_prefixed(cell.stores.blobs.get(ref["key"])[0], "opt.")[0]


@pytest.mark.parametrize("strategy", ["fedavg", "scaffold", "feddyn"])
def test_members_end_as_their_one_by_one_chains_do(cell_config, make_cell, strategy: str) -> None:
    # Prepare: three clients, both epochs in one job (granularity=client)
    config = cell_config(*BASE, f"strategy={strategy}")
    cell, alone = make_cell(config), make_cell(config, where="alone")  # the same cell, two stores
    start, alone_start = _start(cell), _start(alone)
    members = [_member(cell, c, span=2) for c in (0, 1, 2)]
    # Execute
    answer = batch_task(cell, round=1, global_ref=start["global"], members=members, seconds_left=None)
    one = {}
    for m in members:
        ref, state = None, _member(alone, m["client"])["state_ref"]
        for epoch in (0, 1):
            ref = client_task(
                alone,
                round=1,
                client=m["client"],
                epoch=epoch,
                epochs=2,
                global_ref=alone_start["global"],
                input_ref=ref,
                state_ref=state,
            )
        one[m["client"]] = ref
    # Assert: the same shape of reference, the same steps, parameters and client state within rounding
    assert sorted(answer["done"]) == ["0", "1", "2"] and answer["failed"] == {} and answer["splits"] == 0
    for c, ref in one.items():
        got = answer["done"][str(c)]
        assert {k: got[k] for k in ("epochs_done", "steps", "num_samples", "valid", "attempt")} == {
            k: ref[k] for k in ("epochs_done", "steps", "num_samples", "valid", "attempt")
        }
        assert got["loss"] == pytest.approx(ref["loss"], rel=1e-5)
        a, b = _params(alone, ref), _params(cell, got)
        assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a)
        if strategy != "fedavg":
            sa, sb = (
                alone.stores.client_states.get(ref["client_state"]),
                cell.stores.client_states.get(got["client_state"]),
            )
            assert all(torch.allclose(sa[k], sb[k], rtol=1e-4, atol=1e-6) for k in sa)


def test_a_job_recomputes_the_same_bytes(cell_config, make_cell) -> None:
    cell = make_cell(cell_config(*BASE))
    start = _start(cell)
    members = [_member(cell, c) for c in (3, 4, 5)]
    first = batch_task(cell, round=1, global_ref=start["global"], members=members, seconds_left=None)
    again = batch_task(cell, round=1, global_ref=start["global"], members=members, seconds_left=None)
    assert first == again


@pytest.mark.parametrize(
    ("fault", "kind", "retryable"),
    [
        (("faults=transient", "faults.p=1.0", "faults.clients=[1]"), "transient", True),
        (("faults=permanent", "faults.clients=[1]", "faults.fraction=0"), "permanent", False),
        (("faults=oom", "faults.p=1.0", "faults.clients=[1]"), "oom", True),
        (
            (
                "faults=hang",
                "faults.p=1.0",
                "faults.seconds=30",
                "faults.clients=[1]",
                "runner.task_timeout_s=2",
            ),
            "timeout",
            True,
        ),
    ],
)
def test_a_failing_member_leaves_the_batch_and_the_others_train(
    cell_config, make_cell, fault, kind, retryable
) -> None:
    # Prepare
    cell = make_cell(cell_config(*BASE, *fault))
    start = _start(cell)
    began = time.monotonic()
    # Execute
    answer = batch_task(
        cell,
        round=1,
        global_ref=start["global"],
        members=[_member(cell, c) for c in (0, 1, 2)],
        seconds_left=None,
    )
    # Assert: no sleep through the hang; client 1 failed with its kind, 0 and 2 trained
    assert time.monotonic() - began < 20
    assert sorted(answer["done"]) == ["0", "2"]
    assert answer["failed"]["1"]["kind"] == kind and answer["failed"]["1"]["retryable"] is retryable


def test_a_member_hanging_past_the_deadline_is_cut(cell_config, make_cell) -> None:
    # Prepare: client 1 hangs 30 s with 5 s left
    cell = make_cell(
        cell_config(*BASE, "faults=hang", "faults.p=1.0", "faults.seconds=30", "faults.clients=[1]")
    )
    start = _start(cell)
    began = time.monotonic()
    answer = batch_task(
        cell,
        round=1,
        global_ref=start["global"],
        members=[_member(cell, c) for c in (0, 1)],
        seconds_left=5.0,
    )
    assert time.monotonic() - began < 5
    assert answer["failed"]["1"]["kind"] == "deadline" and sorted(answer["done"]) == ["0"]


def test_corrupt_and_malicious_apply_to_their_member_only(cell_config, make_cell) -> None:
    # Prepare: the same batch without faults, with client 2's update corrupt, with client 0 malicious
    cells = {
        "plain": make_cell(cell_config(*BASE), where="plain"),
        "corrupt": make_cell(
            cell_config(*BASE, "faults=corrupt", "faults.p=1.0", "faults.clients=[2]"), where="c"
        ),
        "malicious": make_cell(
            cell_config(*BASE, "faults=malicious", "faults.clients=[0]", "faults.fraction=0"), where="m"
        ),
    }
    # Execute
    answers = {}
    for name, cell in cells.items():
        members = [_member(cell, c, span=2) for c in (0, 2)]
        answers[name] = batch_task(
            cell, round=1, global_ref=_start(cell)["global"], members=members, seconds_left=None
        )
    # Assert
    sent = {
        name: {c: _params(cells[name], ref) for c, ref in a["done"].items()} for name, a in answers.items()
    }
    assert (
        answers["corrupt"]["done"]["0"]["valid"] is True and answers["corrupt"]["done"]["2"]["valid"] is False
    )
    assert answers["malicious"]["done"]["0"]["valid"] is True
    assert answers["malicious"]["done"]["2"]["sha256"] == answers["plain"]["done"]["2"]["sha256"]
    key = next(iter(sent["plain"]["0"]))
    assert not torch.equal(sent["malicious"]["0"][key], sent["plain"]["0"][key])


def test_out_of_gpu_memory_halves_the_batch_without_a_retry(cell_config, make_cell, monkeypatch) -> None:
    # Prepare: a trainer that runs out of memory with more than one client in a batch
    cell = make_cell(cell_config(*BASE))
    start = _start(cell)
    members = [_member(cell, c) for c in (0, 1, 2)]
    whole = batch_task(cell, round=1, global_ref=start["global"], members=members, seconds_left=None)
    real = batch.train_batch_epoch

    def small_gpu(**kwargs):
        if len(kwargs["members"]) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real(**kwargs)

    monkeypatch.setattr(batch, "train_batch_epoch", small_gpu)
    # Execute
    split = batch_task(cell, round=1, global_ref=start["global"], members=members, seconds_left=None)
    # Assert: [0] [1, 2] -> [1] [2]: two splits, every member done at its first attempt, within rounding
    assert split["splits"] == 2 and sorted(split["done"]) == ["0", "1", "2"] and split["failed"] == {}
    for c in ("0", "1", "2"):
        assert split["done"][c]["attempt"] == 1
        a, b = _params(cell, whole["done"][c]), _params(cell, split["done"][c])
        assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a)


def test_groups_are_consecutive_runs_of_clients() -> None:
    assert groups([5, 1, 3, 9, 7], 2, slots=4) == [[1, 3], [5, 7], [9]]
    assert groups(list(range(10)), AUTO, slots=1) == [list(range(10))]
    assert groups(list(range(7)), AUTO, slots=3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert groups([4, 2], AUTO, slots=8) == [[2], [4]]
    assert groups([], 3, slots=2) == []


def test_which_cells_batch(cell_config, make_cell) -> None:
    assert batching(make_cell(cell_config(), where="off")) is None
    assert batching(make_cell(cell_config("runner.batch_clients=auto"), where="auto")) is None  # the CPU
    assert batching(make_cell(cell_config("runner.batch_clients=4"), where="four")) == 4


def test_a_cell_that_cannot_batch_is_refused_when_run_directly(cell_config, make_cell, monkeypatch) -> None:
    monkeypatch.setattr(batch, "refusal", lambda **_: "the model keeps running statistics")
    cell = make_cell(cell_config("runner.batch_clients=2", "seed=7"), where="refused")
    with pytest.raises(ConfigError, match="runner.batch_clients=2: the model keeps running statistics"):
        batching(cell)


def test_auto_on_a_gpu_falls_back_to_one_by_one_with_an_info_line(
    cell_config, make_cell, monkeypatch, caplog
) -> None:
    # Prepare: a cell that believes it is on CUDA, whose model cannot batch
    cell = make_cell(cell_config("runner.batch_clients=auto", "seed=11"), where="gpu")
    object.__setattr__(cell.methods, "device", torch.device("cuda"))
    monkeypatch.setattr(batch, "refusal", lambda **_: "the model keeps running statistics")
    # Execute
    with caplog.at_level(logging.INFO, logger="fedsweep"):
        limit = batching(cell)
        again = batching(cell)
    # Assert: one by one, said once
    assert limit is None and again is None
    said = [r.getMessage() for r in caplog.records if "one client at a time" in r.getMessage()]
    assert said == [
        f"cell {cell.name} trains one client at a time (runner.batch_clients=auto): "
        "the model keeps running statistics"
    ]


def test_auto_on_a_gpu_batches_as_many_as_fit(cell_config, make_cell) -> None:
    cell = make_cell(cell_config("runner.batch_clients=auto", "seed=12"), where="gpu-ok")
    object.__setattr__(cell.methods, "device", torch.device("cuda"))
    assert batching(cell) == AUTO
