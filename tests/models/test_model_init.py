"""build_model: initial weights depend only on the seed, and global RNG state is left alone."""

import functools

import torch

from fedsweep.models.cnn import CNN
from fedsweep.models.init import build_model
from fedsweep.models.mlp import MLP
from fedsweep.weights import weights_sha256

SMALL_CNN = functools.partial(CNN, channels=(4, 8), hidden=16)


def build(seed: int) -> torch.nn.Module:
    return build_model(SMALL_CNN, input_shape=(1, 28, 28), num_classes=10, generator_seed=seed)


def test_same_seed_gives_identical_weights_whatever_ran_before() -> None:
    # Prepare
    first = build(7)
    torch.rand(1000)  # global RNG moves on; the next build must not notice
    # Execute
    second = build(7)
    # Assert
    assert weights_sha256(first.state_dict()) == weights_sha256(second.state_dict())


def test_different_seeds_give_different_weights() -> None:
    # Execute
    a, b = build(0), build(1)
    # Assert
    assert weights_sha256(a.state_dict()) != weights_sha256(b.state_dict())


def test_global_rng_state_is_restored() -> None:
    # Prepare
    before = torch.get_rng_state()
    # Execute
    build(3)
    # Assert
    assert torch.equal(torch.get_rng_state(), before)


def test_factory_receives_input_shape_and_num_classes() -> None:
    # Execute
    model = build_model(MLP, input_shape=[60], num_classes=3, generator_seed=0)
    # Assert
    assert model(torch.zeros(2, 60)).shape == (2, 3)


def test_builds_in_threads_get_their_own_seeds() -> None:
    # Prepare: the weights of each seed built alone (cells of a sweep with runner.parallel_cells > 1
    # build their models in threads of one process, beside the TeacherMNIST teacher's construction)
    from concurrent.futures import ThreadPoolExecutor

    from fedsweep.data.teacher import build_teacher
    from fedsweep.rng import generator

    seeds = list(range(16)) * 4
    alone = {seed: weights_sha256(build(seed).state_dict()) for seed in set(seeds)}

    def one(seed: int) -> str:
        build_teacher(generator(seed, "teacher"))
        return weights_sha256(build(seed).state_dict())

    # Execute
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(one, seeds))
    # Assert
    assert together == [alone[seed] for seed in seeds]
