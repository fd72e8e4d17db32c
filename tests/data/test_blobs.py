"""Blobs: a fixed, seeded pool of Gaussian clusters, independent of the number of clients."""

import pytest
import torch

from fedsweep.data.blobs import Blobs


def test_pool_is_seeded_and_independent_of_num_clients() -> None:
    # Prepare
    blobs = Blobs(train_samples=500, test_samples=100, num_features=3, num_classes=4)
    # Execute
    a, b = blobs.load(num_clients=10, seed=0), blobs.load(num_clients=1_000_000, seed=0)
    c = blobs.load(num_clients=10, seed=1)
    # Assert
    assert a.train.x.shape == (500, 3) and a.test.x.shape == (100, 3) and a.num_classes == 4
    assert a.train.x.dtype == torch.float32 and a.train.y.dtype == torch.int64 and a.natural is None
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.x, c.train.x)


def test_samples_sit_around_their_class_centre() -> None:
    # Prepare: with spread 50 the centres are far apart relative to the unit noise
    blobs = Blobs(train_samples=20_000, test_samples=10, num_features=2, num_classes=3, spread=50.0)
    # Execute
    data, centres = blobs.load(num_clients=1, seed=0), blobs.centres(0)
    # Assert: per class, the mean is the centre (to ~4 standard errors) and the variance is 1
    for cls in range(3):
        x = data.train.x[data.train.y == cls]
        assert torch.allclose(x.mean(0), centres[cls], atol=0.1)
        assert torch.allclose(x.var(0), torch.ones(2), atol=0.1)
    assert ((centres >= -50) & (centres <= 50)).all()


def test_bad_sizes_name_the_key() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="dataset.train_samples"):
        Blobs(train_samples=0)
    with pytest.raises(ValueError, match="dataset.num_classes"):
        Blobs(num_classes=1)
