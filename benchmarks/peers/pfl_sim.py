"""apple/pfl-research (pfl 0.6.0, PyTorch) on the workload of benchmarks/bare_loop.py.

Run with the pfl virtualenv's python (benchmarks/README.md says how to make it):

    /work/venv-pfl/bin/python benchmarks/peers/pfl_sim.py --rounds 20
    /work/venv-pfl/bin/python benchmarks/peers/pfl_sim.py --rounds 5 --mu 0,1,0.01   # three methods

Set up as pfl-research's own benchmarks/image_classification/pytorch/train.py does: a `PyTorchModel`
with `torch.optim.SGD` as local optimiser and a central SGD of learning rate 1.0 (so the server
step is minus the weighted mean of the clients' deltas: FedAvg, McMahan et al. 2017, Algorithm 1),
`WeightByDatapoints` (sample-weighted mean), a `SimulatedBackend` (one process, clients one after
another), `FederatedAveraging` (or pfl's `FedProx` with `FedProxParams(mu=...)`, whose proximal term
is μ/2·‖w − w_global‖², Li et al. 2020, Algorithm 2) and a `CentralEvaluationCallback` on the test
split every round; no validation cohort.

For the identical workload: the user sampler yields fedsweep's selection (`bare_loop.select`) as
(round, client) pairs, and a client's dataset is its samples in the order of its round's shuffle
(`fedsweep.rng.generator(seed, "batches", round, client, 0)`); pfl iterates a user's data in order,
so with one local epoch the batches are exactly the bare loop's (with more epochs every epoch would
repeat the first one's order). Per round: the seconds between the ends of central iterations
(training, aggregation, evaluation). Prints `RESULT {json}` (workload.report).
"""

import time

import workload  # first: puts this checkout on sys.path

# isort: split
import bare_loop
import torch
import torch.nn.functional as F
from pfl.aggregate.simulate import SimulatedBackend
from pfl.aggregate.weighting import WeightByDatapoints
from pfl.algorithm import FederatedAveraging, FedProx, FedProxParams, NNAlgorithmParams
from pfl.callback.base import TrainingProcessCallback
from pfl.callback.central_evaluation import CentralEvaluationCallback  # pfl 0.6.0: not re-exported
from pfl.data.dataset import Dataset
from pfl.data.federated_dataset import FederatedDataset
from pfl.hyperparam import NNEvalHyperParams, NNTrainHyperParams
from pfl.metrics import Metrics, Weighted, get_overall_value
from pfl.model.pytorch import PyTorchModel
from torch import nn

from fedsweep.rng import generator

ARGS = workload.parse(None, __doc__.split("\n")[0])
KEY = workload.key_of(ARGS)


class Net(nn.Module):
    """The bare loop's CNN with the `loss` and `metrics` methods pfl's PyTorchModel requires."""

    def __init__(self) -> None:
        super().__init__()
        self.body = bare_loop.build_cnn(ARGS.seed, ARGS.model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def loss(self, x: torch.Tensor, y: torch.Tensor, eval: bool = False) -> torch.Tensor:
        self.eval() if eval else self.train()
        return F.cross_entropy(self(x), y)

    @torch.no_grad()
    def metrics(self, x: torch.Tensor, y: torch.Tensor, eval: bool = True) -> dict[str, Weighted]:
        self.eval()
        logits = self(x)
        return {
            "loss": Weighted(float(F.cross_entropy(logits, y, reduction="sum")), len(y)),
            "accuracy": Weighted(float((logits.argmax(1) == y).sum()), len(y)),
        }


class RoundClock(TrainingProcessCallback):
    """Marks the end of every central iteration and keeps the central test accuracy."""

    def __init__(self) -> None:
        self.marks = [time.perf_counter()]
        self.accuracy: list[float] = []

    def after_central_iteration(
        self, aggregate_metrics: Metrics, model: PyTorchModel, *, central_iteration: int
    ) -> tuple[bool, Metrics]:
        self.marks.append(time.perf_counter())
        self.accuracy += [
            get_overall_value(v)
            for n, v in aggregate_metrics
            if "central" in str(n).lower() and str(n).endswith("accuracy")
        ]
        return False, Metrics()


def client_dataset(user: tuple[int, int]) -> Dataset:
    """Client `c`'s samples in round `r`'s shuffled order (the bare loop's batches for one epoch)."""
    rnd, client = user
    train, _, parts = workload.data(KEY)
    idx = parts[client]
    order = torch.randperm(len(idx), generator=generator(ARGS.seed, "batches", rnd, client, 0))
    return Dataset(raw_data=[train.x[idx][order], train.y[idx][order]], user_id=user)


def simulate(mu: float) -> dict[str, float]:
    """One pfl simulation of ARGS.rounds central iterations; its figures."""
    _, test, _ = workload.data(KEY)
    cohorts = iter(
        [
            (r, c)
            for r in range(1, ARGS.rounds + 1)
            for c in bare_loop.select(ARGS.seed, r, ARGS.clients, ARGS.clients_per_round)
        ]
    )
    users = FederatedDataset(client_dataset, lambda: next(cohorts))
    net = Net()
    model = PyTorchModel(
        model=net,
        local_optimizer_create=torch.optim.SGD,
        central_optimizer=torch.optim.SGD(net.parameters(), lr=1.0),
    )
    backend = SimulatedBackend(training_data=users, val_data=users, postprocessors=[WeightByDatapoints()])
    common = {
        "central_num_iterations": ARGS.rounds,
        "evaluation_frequency": 1,
        "train_cohort_size": ARGS.clients_per_round,
        "val_cohort_size": 0,
    }
    algorithm, params = (
        (FedProx(), FedProxParams(**common, mu=mu))
        if mu > 0
        else (FederatedAveraging(), NNAlgorithmParams(**common))
    )
    clock = RoundClock()
    central = CentralEvaluationCallback(
        Dataset(raw_data=[test.x, test.y]), model_eval_params=NNEvalHyperParams(local_batch_size=1024)
    )
    started = time.perf_counter()
    algorithm.run(
        algorithm_params=params,
        backend=backend,
        model=model,
        model_train_params=NNTrainHyperParams(
            local_learning_rate=ARGS.lr, local_num_epochs=ARGS.local_epochs, local_batch_size=ARGS.batch_size
        ),
        model_eval_params=NNEvalHyperParams(local_batch_size=1024),
        callbacks=[central, clock],
    )
    sim_s = time.perf_counter() - started
    if len(clock.accuracy) != ARGS.rounds:
        raise SystemExit(f"pfl_sim: {len(clock.accuracy)} of {ARGS.rounds} rounds evaluated")
    rounds = [b - a for a, b in zip(clock.marks, clock.marks[1:])]
    # pfl's last evaluation is of the final model only from 2 rounds on (it skips iteration 0), so the
    # final accuracy is measured here, untimed, with the bare loop's evaluate.
    final = bare_loop.evaluate(net.body, test.x, test.y)
    return {
        "mu": mu,
        "rounds": ARGS.rounds,
        "loop_s": sim_s,
        "sim_s": sim_s,
        "round_s_median": sorted(rounds)[len(rounds) // 2],
        "final_accuracy": final,
    }


if __name__ == "__main__":
    workload.report("pfl", [simulate(mu) for mu in workload.mus(ARGS)])
