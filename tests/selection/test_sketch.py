"""Count sketch of a client's update: by hand, linear, seeded by the cell, distances roughly kept."""

import pytest
import torch

from fedsweep.rng import generator
from fedsweep.selection.sketch import count_sketch, update_sketch


def test_count_sketch_by_hand() -> None:
    # Prepare: the hashes the sketch draws for a 4-coordinate tensor named "w", seed 3
    gen = generator(3, "sketch", "w")
    bucket = torch.randint(0, 2, (4,), generator=gen)
    sign = torch.randint(0, 2, (4,), generator=gen) * 2 - 1
    values = torch.tensor([1.0, 2.0, 3.0, 4.0])
    expected = [sum(float(values[j] * sign[j]) for j in range(4) if bucket[j] == d) for d in range(2)]
    # Execute
    out = count_sketch({"w": values, "steps": torch.tensor([7])}, dim=2, seed=3)
    # Assert: integer tensors are left out
    assert out.dtype == torch.float32 and out.tolist() == expected


def test_linear_and_the_same_for_every_client_of_a_cell() -> None:
    # Prepare
    a = {"w": torch.randn(50, generator=generator(0, "a")), "b": torch.randn(3, generator=generator(0, "b"))}
    b = {k: torch.randn(v.shape, generator=generator(1, k)) for k, v in a.items()}
    # Execute
    sa, sb = count_sketch(a, dim=16, seed=0), count_sketch(b, dim=16, seed=0)
    both = count_sketch({k: a[k] + 2 * b[k] for k in a}, dim=16, seed=0)
    # Assert
    assert torch.allclose(both, sa + 2 * sb, atol=1e-5)
    assert torch.equal(count_sketch(a, dim=16, seed=0), sa)
    assert not torch.equal(count_sketch(a, dim=16, seed=1), sa)


def test_update_sketch_is_of_the_difference_and_json_exact() -> None:
    # Prepare
    g = {"w": torch.ones(10)}
    sent = {"w": torch.ones(10) * 1.5}
    # Execute
    out = update_sketch(sent, g, dim=8, seed=0)
    # Assert: a JSON-able list whose float32 round trip is exact
    assert out == count_sketch({"w": torch.full((10,), 0.5)}, dim=8, seed=0).tolist()
    assert torch.tensor(out).float().tolist() == out


def test_distances_are_roughly_preserved() -> None:
    # Prepare: two 10,000-coordinate updates
    x, y = torch.randn(10_000, generator=generator(0, "x")), torch.randn(10_000, generator=generator(0, "y"))
    # Execute
    d = (count_sketch({"w": x}, dim=512, seed=0) - count_sketch({"w": y}, dim=512, seed=0)).norm()
    # Assert: within 20 % (relative error ~ 1/sqrt(D) ≈ 4 %)
    assert float(d) == pytest.approx(float((x - y).norm()), rel=0.2)


def test_bad_dimension() -> None:
    with pytest.raises(ValueError, match="dimension"):
        count_sketch({"w": torch.ones(2)}, dim=0, seed=0)
