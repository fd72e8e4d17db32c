"""TeacherMNIST: shapes, determinism, balanced labels, client blocks independent of num_clients."""

import torch

from fedsweep.data.teacher import TeacherMNIST, build_teacher
from fedsweep.rng import generator


def test_shapes_dtypes_and_natural_blocks() -> None:
    # Execute
    data = TeacherMNIST(samples_per_client=50, test_samples=40).load(num_clients=4, seed=0)
    # Assert
    assert data.train.x.shape == (200, 1, 28, 28) and data.test.x.shape == (40, 1, 28, 28)
    assert data.train.x.dtype == torch.float32 and data.train.y.dtype == torch.int64
    assert data.train.x.is_contiguous()
    assert data.num_classes == 10
    assert [p.tolist() for p in data.natural] == [list(range(k * 50, (k + 1) * 50)) for k in range(4)]
    assert abs(float(data.train.x.std()) - 1.0) < 0.1


def test_same_seed_same_data_other_seed_different() -> None:
    # Prepare
    dataset = TeacherMNIST(samples_per_client=30, test_samples=30)
    # Execute
    a = dataset.load(num_clients=2, seed=0)
    b = dataset.load(num_clients=2, seed=0)
    c = dataset.load(num_clients=2, seed=1)
    # Assert
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.y, b.train.y)
    assert torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.x, c.train.x)


def test_client_block_does_not_depend_on_num_clients() -> None:
    # Prepare
    dataset = TeacherMNIST(samples_per_client=20, test_samples=10)
    # Execute
    small = dataset.load(num_clients=2, seed=5)
    large = dataset.load(num_clients=5, seed=5)
    # Assert
    assert torch.equal(small.train.x, large.train.x[:40])
    assert torch.equal(small.train.y, large.train.y[:40])


def test_labels_are_balanced() -> None:
    # Execute
    data = TeacherMNIST(samples_per_client=1000, test_samples=1000).load(num_clients=3, seed=0)
    # Assert: every class holds at least 3 % of the samples.
    for y in (data.train.y, data.test.y):
        assert int(torch.bincount(y, minlength=10).min()) >= 0.03 * len(y)


def test_teacher_weights_come_only_from_the_generator() -> None:
    # Prepare
    torch.manual_seed(123)
    a = build_teacher(generator(0, "teacher"))
    torch.manual_seed(456)
    b = build_teacher(generator(0, "teacher"))
    # Assert
    assert all(
        torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
