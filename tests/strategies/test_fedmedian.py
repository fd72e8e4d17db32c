"""FedMedian: the coordinate-wise median on hand-computed cases."""

import torch

from fedsweep.strategies.base import ClientResult, ListResults, RoundContext
from fedsweep.strategies.fedmedian import FedMedian
from fedsweep.strategies.robust import coordinate_median

CONTEXT = RoundContext(round=1, selected=(0, 1, 2, 3), num_clients=4)


def result(c: int, w: list[float], n: int = 0, samples: int = 1) -> ClientResult:
    return ClientResult(
        client=c,
        num_samples=samples,
        loss=0.0,
        steps=1,
        epochs_done=1,
        epochs_planned=1,
        params={"w": torch.tensor(w), "n": torch.tensor(n, dtype=torch.int64)},
    )


def test_median_of_three_updates() -> None:
    # Prepare: per coordinate, median(1, 2, 100) = 2, median(10, 20, -5) = 10; counts median(3, 5, 100) = 5.
    # Sample counts do not weigh in (the 1000-sample outlier is still outvoted).
    results = ListResults(
        [result(0, [1.0, 10.0], 3), result(1, [2.0, 20.0], 5), result(2, [100.0, -5.0], 100, 1000)]
    )
    glob = {"w": torch.zeros(2), "n": torch.tensor(0, dtype=torch.int64)}
    # Execute
    out = FedMedian().aggregate(
        global_params=glob, results=results, failures=[], server_state={}, context=CONTEXT
    )
    # Assert
    assert torch.equal(out.params["w"], torch.tensor([2.0, 10.0]))
    assert out.params["n"].item() == 5 and out.params["n"].dtype == torch.int64


def test_an_even_count_takes_the_mean_of_the_middle_two() -> None:
    # Prepare: sorted (1, 2, 3, 10) -> (2 + 3) / 2
    stacked = torch.tensor([[3.0], [10.0], [1.0], [2.0]], dtype=torch.float64)
    # Execute / Assert
    assert coordinate_median(stacked).item() == 2.5


def test_chunked_coordinates_give_the_same_median(monkeypatch) -> None:
    # Prepare: 5 clients, a 7 × 3 tensor, chunks of 4 coordinates (the last one short)
    import fedsweep.strategies.robust as robust

    gen = torch.Generator().manual_seed(0)
    models = [{"w": torch.randn(7, 3, generator=gen)} for _ in range(5)]
    results = ListResults(
        [
            ClientResult(
                client=c, num_samples=1, loss=0.0, steps=1, epochs_done=1, epochs_planned=1, params=p
            )
            for c, p in enumerate(models)
        ]
    )
    glob = {"w": torch.zeros(7, 3)}
    whole = FedMedian().aggregate(
        global_params=glob, results=results, failures=[], server_state={}, context=CONTEXT
    )
    # Execute
    monkeypatch.setattr(robust, "CHUNK", 4)
    chunked = FedMedian().aggregate(
        global_params=glob, results=results, failures=[], server_state={}, context=CONTEXT
    )
    # Assert
    assert torch.equal(chunked.params["w"], whole.params["w"])
    assert torch.equal(whole.params["w"], torch.stack([m["w"] for m in models]).median(dim=0).values)
