"""The fault contract: seeded draws, interruptible sleeps, retryability, composition, validation."""

import ctypes
import threading
import time

import pytest
import torch
from sweep_cli import slowdown  # upper bounds on wall-clock time scale with the machine's load

from fedsweep.failures import (
    NodeDown,
    PermanentFailure,
    SimulatedOOM,
    TransientFailure,
    failure_kind,
    retryable,
)
from fedsweep.faults.base import (
    ClientCtx,
    ClientRound,
    Fault,
    FaultPlan,
    as_plan,
    bernoulli,
    interruptible_sleep,
    uniform,
    validate_faults,
)
from fedsweep.faults.malicious import Malicious
from fedsweep.faults.permanent import Permanent
from fedsweep.faults.schedule import Schedule
from fedsweep.faults.stragglers import Stragglers
from fedsweep.faults.transient import Transient
from fedsweep.weights import Params


class AddOne(Fault):
    """Adds 1 to every tensor: a non-linear partner to test the order of `after_training`."""

    def after_training(self, ctx: ClientRound, params: Params, global_params: Params) -> Params:
        return {k: v + 1 for k, v in params.items()}


def raise_in_thread(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    """What Prefect's thread timeout does: raise asynchronously in a running thread."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type))


def test_draws_depend_only_on_coordinates() -> None:
    # Execute
    a, b, other = (
        uniform(0, "fault", "x", 3, 7),
        uniform(0, "fault", "x", 3, 7),
        uniform(1, "fault", "x", 3, 7),
    )
    # Assert
    assert a == b and a != other and 0.0 <= a < 1.0
    assert bernoulli(1.0, "anything") and not bernoulli(0.0, "anything")


def test_draws_leave_global_rng_alone() -> None:
    # Prepare
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    # Execute
    bernoulli(0.5, 0, "fault", "x", 1, 2)
    # Assert
    assert torch.equal(torch.rand(3), expected)


def test_client_round_at_keeps_coordinates() -> None:
    # Prepare
    cr = ClientRound(seed=1, round=2, client=3, local_epochs=4)
    # Execute
    ctx = cr.at(epoch=1, attempt=2)
    # Assert
    assert ctx == ClientCtx(seed=1, round=2, client=3, local_epochs=4, epoch=1, attempt=2)


def test_retryable_and_kinds() -> None:
    # Prepare
    cases = [
        (TransientFailure("x"), True, "transient"),
        (SimulatedOOM("x"), True, "oom"),
        (TimeoutError("x"), True, "timeout"),
        (RuntimeError("x"), True, "other"),
        (PermanentFailure("x"), False, "permanent"),
        (NodeDown("x"), False, "node_down"),
        (KeyboardInterrupt(), False, "other"),
    ]
    # Execute / Assert
    for exc, expected, kind in cases:
        assert retryable(exc) is expected, exc
        assert failure_kind(exc) == kind
    assert isinstance(SimulatedOOM("x"), MemoryError)


def test_interruptible_sleep_lasts_at_least_seconds() -> None:
    # Execute
    start = time.monotonic()
    interruptible_sleep(0.12, step=0.05)
    # Assert
    assert time.monotonic() - start >= 0.12


def test_interruptible_sleep_ends_within_a_step_of_an_async_exception() -> None:
    # Prepare
    caught: list[float] = []

    def target() -> None:
        start = time.monotonic()
        try:
            interruptible_sleep(5.0, step=0.05)
        except TimeoutError:
            caught.append(time.monotonic() - start)

    thread = threading.Thread(target=target)
    thread.start()
    time.sleep(0.1)
    # Execute
    raise_in_thread(thread, TimeoutError)
    thread.join(2.0 * slowdown())
    # Assert
    assert not thread.is_alive() and caught and caught[0] < 0.5 * slowdown()


def test_empty_plan_injects_nothing() -> None:
    # Prepare
    plan, cr = FaultPlan(faults=[]), ClientRound(seed=0, round=1, client=0, local_epochs=5)
    params = {"w": torch.ones(2)}
    # Execute / Assert
    assert plan == FaultPlan()
    assert plan.available(seed=0, round=1, client=0)
    plan.before_epoch(cr.at(epoch=0))
    assert plan.epochs_to_run(cr) == 5
    assert plan.after_training(cr, params, params) is params


def test_plan_before_epoch_runs_in_order() -> None:
    # Prepare
    ctx = ClientCtx(seed=0, round=1, client=0, local_epochs=1)
    first_transient = FaultPlan(faults=[Transient(p=1.0), Permanent(clients=[0])])
    first_permanent = FaultPlan(faults=[Permanent(clients=[0]), Transient(p=1.0)])
    # Execute / Assert
    with pytest.raises(TransientFailure):
        first_transient.before_epoch(ctx)
    with pytest.raises(PermanentFailure):
        first_permanent.before_epoch(ctx)


def test_plan_after_training_chains_in_order() -> None:
    # Prepare: global 0, w = 1; AddOne then ×2 gives 4, ×2 then AddOne gives 3
    cr = ClientRound(seed=0, round=1, client=0, local_epochs=1)
    w, g = {"w": torch.tensor([1.0])}, {"w": torch.tensor([0.0])}
    double = Malicious(scale=2.0, clients=[0])
    # Execute
    add_then_double = FaultPlan(faults=[AddOne(), double]).after_training(cr, w, g)
    double_then_add = FaultPlan(faults=[double, AddOne()]).after_training(cr, w, g)
    # Assert
    assert add_then_double["w"].item() == 4.0 and double_then_add["w"].item() == 3.0


def test_plan_availability_and_epochs_combine() -> None:
    # Prepare
    plan = FaultPlan(faults=[Schedule(clients=[1], fail_at=2, recover_at=3), Stragglers(fraction=1.0)])
    cr = ClientRound(seed=0, round=2, client=0, local_epochs=20)
    # Execute
    available = plan.available_clients(seed=0, round=2, num_clients=3)
    epochs = plan.epochs_to_run(cr)
    # Assert
    assert available == [0, 2]
    assert epochs == Stragglers(fraction=1.0).epochs_to_run(cr) and 1 <= epochs <= 20


def test_hydra_style_list_of_structured_configs_becomes_faults() -> None:
    # Prepare: without `_convert_`, Hydra hands a list of dataclasses back as DictConfigs
    from omegaconf import OmegaConf

    listed = OmegaConf.create([Transient(p=0.5)], flags={"allow_objects": True})
    # Execute
    plan = FaultPlan(faults=listed)
    # Assert
    assert plan.faults == (Transient(p=0.5),)


def test_as_plan_wraps_a_single_fault() -> None:
    # Execute / Assert
    assert as_plan(Transient(p=0.5)) == FaultPlan(faults=(Transient(p=0.5),))
    assert as_plan(FaultPlan()) == FaultPlan()


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (
            {
                "_target_": "fedsweep.faults.base.FaultPlan",
                "faults": [
                    {"_target_": "fedsweep.faults.transient.Transient", "p": 0.1},
                    {"_target_": "fedsweep.faults.transient.Transient", "p": 1.5},
                ],
            },
            "faults.faults[1].p must be in [0, 1], got 1.5",
        ),
        (
            {"_target_": "fedsweep.faults.transient.Transient", "q": 0.1},
            "unknown key faults.q; Transient takes: p, clients",
        ),
        (
            {"_target_": "fedsweep.faults.schedule.Schedule", "clients": [0]},
            "missing key faults.fail_at (Schedule requires it)",
        ),
        (
            {"_target_": "fedsweep.faults.schedule.Schedule", "clients": [0], "fail_at": 3, "recover_at": 3},
            "faults.recover_at must be a round > fail_at (3)",
        ),
        (
            {"_target_": "fedsweep.faults.permanent.Permanent", "clients": [9]},
            "faults.clients: client 9 does not exist (num_clients=4)",
        ),
        ({"_target_": "fedsweep.faults.nope.Nope"}, "faults._target_: cannot import"),
        ({"_target_": "fedsweep.rounds.policy.AggregationPolicy"}, "is not a fault model"),
        ({"_target_": "fedsweep.faults.base.FaultPlan", "faults": 3}, "faults.faults must be a list"),
        ([1, 2], "faults must be a mapping"),
    ],
)
def test_validate_faults_names_the_key(cfg: object, message: str) -> None:
    # Execute / Assert
    with pytest.raises(ValueError) as info:
        validate_faults(cfg, num_clients=4)
    assert message in str(info.value)


def test_validate_faults_builds_plans() -> None:
    # Prepare
    cfg = {"_target_": "fedsweep.faults.transient.Transient", "p": 0.2, "clients": [2, 1]}
    # Execute / Assert
    assert validate_faults(cfg, num_clients=4) == FaultPlan(faults=(Transient(p=0.2, clients=(1, 2)),))
    assert validate_faults({}, num_clients=4) == FaultPlan()


def test_plan_builds_raw_specs_and_names_the_index() -> None:
    # Prepare: what Hydra hands over with `_recursive_: false`
    ok = [{"_target_": "fedsweep.faults.transient.Transient", "p": 0.3}]
    bad = [*ok, {"_target_": "fedsweep.faults.transient.Transient", "p": 1.5}]
    # Execute / Assert
    assert FaultPlan(faults=ok) == FaultPlan(faults=(Transient(p=0.3),))
    with pytest.raises(ValueError, match=r"^faults\[1\]\.p must be in \[0, 1\], got 1.5$"):
        FaultPlan(faults=bad)


def test_check_config_hook_checks_client_ids_against_num_clients() -> None:
    # Prepare
    config = {
        "num_clients": 2,
        "faults": {"_target_": "fedsweep.faults.schedule.Schedule", "clients": [3], "fail_at": 1},
    }
    # Execute / Assert
    with pytest.raises(ValueError, match=r"faults\.clients: client 3 does not exist \(num_clients=2\)"):
        Schedule.check_config(config, key="faults")
