"""Synthetic(α, β): determinism, shapes, the FedProx generative statistics, natural coverage."""

import pytest
import torch

from fedsweep.data.synthetic import (
    Synthetic,
    draw_device_model,
    draw_device_samples,
    feature_variances,
)
from fedsweep.rng import generator


def test_same_seed_same_tensors_other_seed_different() -> None:
    # Prepare
    data = Synthetic(alpha=0.5, beta=0.5)
    # Execute
    a = data.load(num_clients=5, seed=0)
    b = data.load(num_clients=5, seed=0)
    c = data.load(num_clients=5, seed=1)
    # Assert
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.y, b.train.y)
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.test.y, b.test.y)
    assert a.train.x.shape != c.train.x.shape or not torch.equal(a.train.x, c.train.x)


def test_shapes_dtypes_and_classes() -> None:
    # Execute
    data = Synthetic().load(num_clients=30, seed=0)
    # Assert
    assert data.num_classes == 10
    assert data.train.x.dtype == torch.float32 and data.train.y.dtype == torch.int64
    assert data.train.x.shape == (len(data.train), 60)
    assert data.test.x.shape == (len(data.test), 60)
    assert int(data.train.y.min()) >= 0 and int(data.train.y.max()) <= 9
    assert torch.unique(data.train.y).numel() >= 5


def test_natural_covers_train_exactly_once_and_counts_follow_reference() -> None:
    # Prepare
    dataset = Synthetic(test_fraction=0.2, max_samples_per_device=1000)
    # Execute
    data = dataset.load(num_clients=40, seed=3)
    # Assert
    assert data.natural is not None and len(data.natural) == 40
    assert all(p.dtype == torch.int64 and torch.equal(p, torch.sort(p).values) for p in data.natural)
    assert torch.equal(torch.sort(torch.cat(data.natural)).values, torch.arange(len(data.train)))
    totals = [len(dataset.device(seed=3, k=k)[1]) for k in range(40)]
    assert min(totals) >= 50 and max(totals) <= 1000
    assert len(data.train) + len(data.test) == sum(totals)
    assert [len(p) for p in data.natural] == [int(t * 0.8) for t in totals]
    # Assert: each device's test samples are its own, in device order
    assert data.test_owner is not None and data.test_owner.dtype == torch.int64
    assert torch.bincount(data.test_owner, minlength=40).tolist() == [t - int(t * 0.8) for t in totals]
    assert torch.equal(data.test_owner, torch.sort(data.test_owner).values)
    device = dataset.device(seed=3, k=7)[0]
    assert torch.equal(data.test.x[data.test_owner == 7], device[int(len(device) * 0.8) :].float())


def test_device_data_does_not_depend_on_num_clients() -> None:
    # Prepare
    dataset = Synthetic(alpha=1, beta=1)
    # Execute
    small = dataset.load(num_clients=3, seed=7)
    large = dataset.load(num_clients=12, seed=7)
    # Assert
    for k in range(3):
        assert torch.equal(small.train.x[small.natural[k]], large.train.x[large.natural[k]])
        assert torch.equal(small.train.y[small.natural[k]], large.train.y[large.natural[k]])


def test_integer_and_float_hyperparameters_name_the_same_data() -> None:
    # Execute
    a = Synthetic(alpha=1, beta=0).load(num_clients=2, seed=0)
    b = Synthetic(alpha=1.0, beta=0.0).load(num_clients=2, seed=0)
    # Assert
    assert torch.equal(a.train.x, b.train.x)


def test_feature_noise_variance_follows_j_to_the_minus_1_2() -> None:
    # Prepare
    gen = generator(0, "test-synthetic-variance")
    w, b, v = draw_device_model(gen, alpha=1.0, beta=1.0, num_features=60, num_classes=10)
    # Execute
    x, y = draw_device_samples(gen, w=w, b=b, v=v, num_samples=20_000)
    var = (x - v).var(dim=0)
    # Assert: the variance estimate's relative standard error is sqrt(2/20000) = 1 %.
    assert torch.allclose(var, feature_variances(60), rtol=0.05)
    assert torch.allclose(x.mean(dim=0), v, atol=0.03)
    assert torch.equal(y, (x @ w + b).softmax(dim=1).argmax(dim=1))


@pytest.mark.parametrize("alpha, beta", [(0.0, 0.0), (0.5, 0.5), (1.0, 1.0)])
def test_device_priors_have_std_alpha_and_beta(alpha: float, beta: float) -> None:
    # Prepare
    models = [
        draw_device_model(generator(1, "prior", k), alpha=alpha, beta=beta, num_features=60, num_classes=10)
        for k in range(2000)
    ]
    # Execute: each device's mean of W (600 draws of N(u_k, 1)) and of v (60 of N(B_k, 1)).
    w_means = torch.stack([w.mean() for w, _, _ in models])
    v_means = torch.stack([v.mean() for _, _, v in models])
    # Assert: Var = α² + 1/600 and β² + 1/60; tolerance ~5 standard errors of a 2000-sample std.
    assert float(w_means.std()) == pytest.approx((alpha**2 + 1 / 600) ** 0.5, rel=0.08)
    assert float(v_means.std()) == pytest.approx((beta**2 + 1 / 60) ** 0.5, rel=0.08)


def test_larger_alpha_gives_more_heterogeneous_label_distributions() -> None:
    # Prepare
    def label_spread(alpha: float) -> float:
        data = Synthetic(alpha=alpha, beta=0.0).load(num_clients=30, seed=0)
        hists = torch.stack([torch.bincount(data.train.y[p], minlength=10).float() for p in data.natural])
        hists = hists / hists.sum(dim=1, keepdim=True)
        return float((hists - hists.mean(dim=0)).abs().sum(dim=1).mean())

    # Execute / Assert
    assert label_spread(0.0) < label_spread(1.0)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"alpha": -1}, "dataset.alpha"),
        ({"test_fraction": 1.0}, "dataset.test_fraction"),
        ({"max_samples_per_device": 1}, "dataset.max_samples_per_device"),
    ],
)
def test_bad_arguments_name_the_key(kwargs: dict, key: str) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match=key):
        Synthetic(**kwargs)
