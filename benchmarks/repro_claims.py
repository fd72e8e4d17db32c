"""The reproductions benchmarks/repro.py runs: for each, its preset (conf/experiment/repro/NAME.yaml,
whose comment gives the source, the settings and what differs), the overrides of its reduced version
(the smallest setting that still shows its reduced claims; tests/flows/test_repro_reduced.py runs
it), and its claims (fedsweep/compare/claims.py) with what the source reports. A claim marked
`reduced=False` needs the full size: the reduced run reports it, the test suite does not require it.
"""

from dataclasses import dataclass, field

from fedsweep.compare.claims import Claim, Figure


@dataclass(frozen=True)
class Checked:
    """A claim and whether its reduced version must hold too."""

    claim: Claim
    reduced: bool = True


@dataclass(frozen=True)
class Reproduction:
    name: str  # conf/experiment/repro/<name>.yaml
    title: str
    source: str  # paper, figure or table, code and commit
    sweep: str  # the preset's sweep_name
    baseline: str  # the method label compare's paired table is against
    target: float  # accuracy target of compare's rounds-to-target column
    reduced: tuple[str, ...]  # overrides of the reduced version
    checks: tuple[Checked, ...] = field(default=())

    @property
    def claims(self) -> list[Claim]:
        return [c.claim for c in self.checks]

    def sweep_name(self, *, reduced: bool) -> str:
        return f"{self.sweep}-reduced" if reduced else self.sweep


TAIL5, TAIL10 = Figure(tail=5), Figure(tail=10)  # accuracy over the last 5 or 10 rounds
REPRODUCTIONS: dict[str, Reproduction] = {}


def _add(repro: Reproduction) -> None:
    REPRODUCTIONS[repro.name] = repro


_add(
    Reproduction(
        name="fedprox_stragglers",
        title="FedProx under systems heterogeneity (Li et al. 2020, Figure 1)",
        source=(
            'Li, Sahu, Zaheer, Sanjabi, Talwalkar & Smith, "Federated Optimization in Heterogeneous '
            'Networks", '
            "MLSys 2020, https://arxiv.org/abs/1812.06127, Figure 1 (Synthetic(1,1), 90 % stragglers); "
            "code "
            "github.com/litian96/FedProx. Preset: conf/experiment/repro/fedprox_stragglers.yaml."
        ),
        sweep="repro-fedprox",
        baseline="drop",
        target=0.6,
        reduced=("rounds=15", "local_epochs=10", "dataset.max_samples_per_device=100", "grid.seed=[0,1,2]"),
        checks=(
            Checked(
                Claim(
                    text="FedProx μ = 0 aggregating partial work ahead of FedAvg dropping the stragglers",
                    expected="Fig. 1, 90 % stragglers: dropping them (FedAvg) trains worst; FedProx "
                    "improves "
                    "absolute test accuracy by 22 % on average in highly heterogeneous settings (abstract)",
                    figure=TAIL10,
                    a="mu0",
                    b="drop",
                    above=0.0,
                )
            ),
            Checked(
                Claim(
                    text="FedProx μ = 1 ahead of FedAvg dropping the stragglers",
                    expected="Fig. 1: μ = 1 with partial work converges best",
                    figure=TAIL10,
                    a="mu1",
                    b="drop",
                    above=0.0,
                )
            ),
            Checked(
                Claim(
                    text="FedProx μ = 1 ahead of μ = 0 (both with partial work)",
                    expected="Fig. 1: the proximal term stabilises training under 90 % stragglers "
                    "(training "
                    "loss lower and steadier with μ = 1)",
                    figure=TAIL10,
                    a="mu1",
                    b="mu0",
                    above=0.0,
                ),
                reduced=False,
            ),
        ),
    )
)

_add(
    Reproduction(
        name="powd_paper",
        title="Power-of-choice in the paper's own setting (Cho, Wang & Joshi 2022, FMNIST, lr 0.005)",
        source=(
            'Cho, Wang & Joshi, "Towards Understanding Biased Client Selection in Federated Learning", '
            "AISTATS "
            "2022, https://arxiv.org/abs/2010.01243, FMNIST α = 2 (its Figure 4(a) curves); the authors' "
            "code "
            "(supplement `1776-supp/code/dnn`, kept in github.com/peng-ju/Power-of-Choice at 8c857a2 under "
            "image_classification/deprecated/original_implementation). Preset: "
            "conf/experiment/repro/powd_paper.yaml."
        ),
        sweep="repro-powd-paper",
        baseline="rand",
        target=0.7,
        reduced=(
            "rounds=15",
            "grid.seed=[0,1,2]",
            "~grid.method.powd6",
            "~grid.method.powd9",
        ),
        checks=(
            Checked(
                Claim(
                    text="pow-d (d = 15) ahead of random selection in test accuracy",
                    expected="the paper's FMNIST curves show pow-d above random through training; re-run "
                    "at the "
                    "stated lr 0.005, the advantage is under a point in the authors' code, the ReScience "
                    "reproduction's and fedsweep's (the curves with a gap used lr 0.0005: powd_rescience)",
                    figure=TAIL10,
                    a="powd15",
                    b="rand",
                    above=0.0,
                ),
                reduced=False,
            ),
            Checked(
                Claim(
                    text="at lr 0.005 pow-d's advantage is under a point",
                    expected="independent re-runs of the authors' code, the ReScience reproduction's and "
                    "fedsweep's",
                    figure=TAIL10,
                    a="powd15",
                    b="rand",
                    below=0.01,
                ),
                reduced=False,
            ),
            Checked(
                Claim(
                    text="at lr 0.005 the curves do not separate early: pow-d's advantage is under 5 points",
                    expected="the ReScience curves at lr 0.0005 are 8.4 points apart at round 25 (0.333 "
                    "against "
                    "0.417, logs/fmnist_fig4a); the re-runs at lr 0.005 find no such early gap",
                    figure=TAIL10,
                    a="powd15",
                    b="rand",
                    below=0.05,
                )
            ),
        ),
    )
)

_add(
    Reproduction(
        name="powd_rescience",
        title="Power-of-choice as the ReScience reproduction ran it (lr 0.0005, weight decay 1e-3, 400 "
        "rounds)",
        source=(
            "The ReScience reproduction of Cho, Wang & Joshi 2022, github.com/peng-ju/Power-of-Choice at "
            "8c857a2: "
            "image_classification/configs/fig4a.json (lr 0.0005, batch 64, 30 local steps, α = 2, 400 "
            "rounds, "
            "decay at rounds 150 and 300), FedAvg.py (weight decay 1e-3), logs/fmnist_fig4a/ (one seed). "
            "Preset: conf/experiment/repro/powd_rescience.yaml."
        ),
        sweep="repro-powd-rescience",
        baseline="rand",
        target=0.6,
        # Reduced, the claim does not show: at 60 rounds of lr 0.0005 pow-d led random by 0.055 +- 0.15
        # over 3 seeds (inconclusive); the gap the ReScience logs show builds over 400 rounds.
        reduced=(
            "rounds=60",
            "grid.seed=[0,1,2]",
            "~grid.method.powd6",
            "~grid.method.powd9",
        ),
        checks=(
            Checked(
                Claim(
                    text="pow-d (d = 15) ahead of random selection in test accuracy",
                    expected="logs/fmnist_fig4a (one seed), test accuracy at round 400: random 0.685, "
                    "pow-d 0.733 "
                    "(d = 15; +4.8 points); at round 25: 0.333 against 0.417",
                    figure=TAIL10,
                    a="powd15",
                    b="rand",
                    above=0.0,
                ),
                reduced=False,
            ),
            Checked(
                Claim(
                    text="pow-d (d = 6) ahead of random selection in test accuracy",
                    expected="logs/fmnist_fig4a (one seed), round 400: random 0.685, pow-d (d = 6) 0.726 "
                    "(+4.1 points)",
                    figure=TAIL10,
                    a="powd6",
                    b="rand",
                    above=0.0,
                ),
                reduced=False,
            ),
        ),
    )
)

_add(
    Reproduction(
        name="scaffold_drift",
        title="SCAFFOLD against FedAvg under client drift (Karimireddy et al. 2020)",
        source=(
            'Karimireddy, Kale, Mohri, Reddi, Stich & Suresh, "SCAFFOLD: Stochastic Controlled Averaging '
            "for "
            'Federated Learning", ICML 2020, https://arxiv.org/abs/1910.06378, Section 7 and Table 3 '
            "(EMNIST, "
            "logistic regression, 0 % similarity, 1 to 10 local epochs of 5 steps, 20 % of clients a "
            "round, "
            "global step 1). Preset: conf/experiment/repro/scaffold_drift.yaml."
        ),
        sweep="repro-scaffold",
        baseline="fedavg_e10",
        target=0.6,
        reduced=("rounds=30", "batch_size=200", "grid.seed=[0,1,2]", "~grid.method.scaffold_e1"),
        checks=(
            Checked(
                Claim(
                    text="SCAFFOLD ahead of FedAvg with 10 epochs of local work on label-sorted clients",
                    expected="Table 3, 0 % similarity: SCAFFOLD needs the fewest rounds to 0.5 accuracy at "
                    "every "
                    "number of epochs",
                    figure=TAIL10,
                    a="scaffold_e10",
                    b="fedavg_e10",
                    above=0.0,
                )
            ),
            Checked(
                Claim(
                    text="SCAFFOLD gains from more local work (10 epochs against 1)",
                    expected="Table 3, 0 % similarity: SCAFFOLD needs fewer rounds as epochs grow",
                    figure=TAIL10,
                    a="scaffold_e10",
                    b="scaffold_e1",
                    above=0.0,
                ),
                reduced=False,
            ),
            Checked(
                Claim(
                    text="FedAvg does not gain from more local work (10 epochs against 1, within a point)",
                    expected="Table 3, 0 % similarity: FedAvg needs as many or more rounds as epochs grow "
                    "(client drift)",
                    figure=TAIL10,
                    a="fedavg_e10",
                    b="fedavg_e1",
                    below=0.01,
                )
            ),
        ),
    )
)

_add(
    Reproduction(
        name="fedopt",
        title="Adaptive server optimisers against FedAvg (Reddi et al. 2021)",
        source=(
            'Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar & McMahan, "Adaptive Federated '
            'Optimization", '
            "ICLR 2021, https://arxiv.org/abs/2003.00295, Algorithm 2 and Table 2 (tuned learning rates). "
            "None "
            "of the paper's datasets is offline here; the task is Synthetic(1,1) with logistic regression, "
            "the "
            "closest to its Stack Overflow logistic regression (a convex model over badly scaled "
            "features). "
            "Preset: conf/experiment/repro/fedopt.yaml."
        ),
        sweep="repro-fedopt",
        baseline="fedavg",
        target=0.7,
        reduced=("rounds=15", "grid.seed=[0,1,2]"),
        checks=(
            Checked(
                Claim(
                    text="FedAdam ahead of FedAvg",
                    expected="Table 2: FedAdam and FedYogi ahead of FedAvg on CIFAR-10, CIFAR-100 and "
                    "Stack Overflow "
                    "(the logistic regression by tens of points), within about a point on EMNIST and "
                    "Shakespeare",
                    figure=TAIL5,
                    a="fedadam",
                    b="fedavg",
                    above=0.0,
                )
            ),
            Checked(
                Claim(
                    text="FedYogi ahead of FedAvg",
                    expected="Table 2, as for FedAdam",
                    figure=TAIL5,
                    a="fedyogi",
                    b="fedavg",
                    above=0.0,
                )
            ),
        ),
    )
)

_add(
    Reproduction(
        name="qffl",
        title="q-FFL: fairer accuracy across clients (Li, Sanjabi, Beirami & Smith 2020)",
        source=(
            'Li, Sanjabi, Beirami & Smith, "Fair Resource Allocation in Federated Learning", ICLR 2020, '
            "https://arxiv.org/abs/1905.10497, Table 1 (Synthetic, q = 1 against q = 0) and Algorithm 1 "
            "(q-FedSGD); code github.com/litian96/fair_flearn at f097971. Preset: "
            "conf/experiment/repro/qffl.yaml."
        ),
        sweep="repro-qffl",
        baseline="q0",
        target=0.7,
        # Reduced, none of the claims shows: with 10 clients the worst 10 % is one client, and 3 seeds
        # of 60 rounds gave intervals of +-0.4 (q = 5 no better). The reduced run checks that the
        # reproduction runs and is judged; the claims need the full size (benchmarks/results/).
        reduced=("rounds=60", "num_clients=10", "clients_per_round=5", "lr=0.02", "grid.seed=[0,1,2]"),
        checks=(
            Checked(
                Claim(
                    text="q = 1 raises the accuracy of the worst 10 % of clients",
                    expected="Table 1, Synthetic: worst 10 % 18.8 % (q = 0) against 31.1 % (q = 1)",
                    figure=Figure(metric="client_accuracy_worst10", tail=10),
                    a="q1",
                    b="q0",
                    above=0.0,
                ),
                reduced=False,
            ),
            Checked(
                Claim(
                    text="q = 1 lowers the spread of client accuracy",
                    expected="Table 1, Synthetic: variance 724 (q = 0) against 472 (q = 1), in %²",
                    figure=Figure(metric="client_accuracy_std", tail=10),
                    a="q1",
                    b="q0",
                    below=0.0,
                ),
                reduced=False,
            ),
            Checked(
                Claim(
                    text="at a similar mean client accuracy (at most 2 points lower)",
                    expected="Table 1, Synthetic: average 80.8 % (q = 0) against 79.0 % (q = 1)",
                    figure=Figure(metric="client_accuracy_mean", tail=10),
                    a="q1",
                    b="q0",
                    above=-0.02,
                ),
                reduced=False,
            ),
        ),
    )
)

_add(
    Reproduction(
        name="oort",
        title="Oort against random selection in time to accuracy (Lai et al. 2021)",
        source=(
            'Lai, Zhu, Madhyastha & Chowdhury, "Oort: Efficient Federated Learning via Guided Participant '
            'Selection", OSDI 2021, https://arxiv.org/abs/2010.06081, Section 7.2 (time to accuracy over '
            "random "
            "selection on FEMNIST, OpenImage, Reddit, StackOverflow, Speech); code "
            "github.com/SymbioticLab/Oort. "
            "Preset: conf/experiment/repro/oort.yaml."
        ),
        sweep="repro-oort",
        baseline="random",
        target=0.8,
        reduced=("rounds=15", "grid.seed=[0,1,2]"),
        checks=(
            Checked(
                Claim(
                    text="Oort reaches 75 % test accuracy in less simulated time than random selection",
                    expected="abstract and §7.2: 1.2× to 14.1× faster than random to the target accuracy",
                    figure=Figure(target=0.75, clock="sim_clock_s", smooth=3),
                    a="oort",
                    b="random",
                    kind="ratio",
                    above=1.0,
                )
            ),
            Checked(
                Claim(
                    text="Oort reaches 80 % test accuracy in less simulated time than random selection, "
                    "by more than the paper's smallest factor",
                    expected="abstract and §7.2: 1.2× to 14.1× faster than random to the target accuracy",
                    figure=Figure(target=0.8, clock="sim_clock_s", smooth=3),
                    a="oort",
                    b="random",
                    kind="ratio",
                    above=1.2,
                ),
                reduced=False,
            ),
            Checked(
                Claim(
                    text="Oort's final accuracy not below random selection's",
                    expected="abstract: final accuracy 1.3 to 9.8 points higher",
                    figure=TAIL10,
                    a="oort",
                    b="random",
                    above=0.0,
                ),
                reduced=False,
            ),
        ),
    )
)
