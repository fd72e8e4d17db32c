"""Oort: guided participant selection (Lai, Zhu, Madhyastha, Chowdhury, Krishnan, "Oort: Efficient
Federated Learning via Guided Participant Selection", OSDI 2021, arXiv 2010.06081), Algorithm 1, §4.

A client's utility is its statistical utility times its system utility (§4.2–4.3):

    U_i    = |B_i| · sqrt(1/|B_i| · Σ_{k∈B_i} loss(k)²)          from its last round's per-sample losses
    Util_i = (min(U_i, clip) − U_min) / (U_max − U_min)            clipped at the `clip_bound` quantile
             + sqrt(staleness_factor · log R / L_i)                 R: this round, L_i: its last round
    Util_i ·= (T / t_i)^α   when t_i > T                            t_i: its round seconds, T: preferred

Each round ε ← max(ε · decay, ε_min); ⌊k·ε⌋ slots explore clients never tried (the largest first,
by samples × the same speed penalty, sampled ∝ that among the `sample_window`·n best) and the rest
exploit the tried ones: those with Util ≥ `cut_off_util` × the cut-off client's Util (at least
10 × as many as needed when there are), sampled without replacement ∝ Util. The pacer compares the
exploited utility of the last two windows of `pacer_step` rounds: flat (within 10 %) relaxes T by
`pacer_delta` percentile points of the clients' durations, a jump (≥ 5×) tightens it.

The paper's two code bases differ; we follow FedScale (SymbioticLab/FedScale,
thirdparty/oort/oort.py and fedscale/cloud/config_parser.py), the maintained one, except where noted:

    setting                        Oort artifact (SymbioticLab/Oort)   FedScale      here
    exploration ε / decay / min    0.9 / 0.95 / 0.2                    0.9/0.98/0.3  0.9 / 0.98 / 0.3
    T (round_threshold, %-ile)     10                                  30            30
    clip_bound                     0.98                                0.9           0.95 (the paper's)
    cut_off_util                   0.7, no pool minimum                0.05, ≥ 10×   0.05, ≥ 10×
    explore / exploit split        exploit ⌊k(1−ε)⌋                   explore ⌊kε⌋  explore ⌊kε⌋
    U_i's losses                   EMA (0.2) of batch means, epoch 1   last batch    last local epoch
    α (round_penalty), pacer       2, step 20 rounds, Δ 5              same          same

Our choices where neither fits a simulator: the min/max of the normalisation range over tried
clients only (FedScale mixes in the untried clients' sample counts); a slot the exploration cannot
fill (nothing left untried) goes to exploitation (the artifact does so by setting ε = 0; FedScale
returns fewer clients); a client that failed counts as tried with utility 0 (FedScale leaves it
untried, to be explored again), and the normalised utility is clamped at 0 (FedScale takes |Util|,
which ranks a zero utility, below the range's minimum, above the best client); |B_i| is the
client's sample count; t_i is the client's last reported simulated seconds, else the system model's
expected seconds (FedScale registers the trace's estimate, then the measured duration); without a
system model there is no penalty (T = ∞).
The optional blacklist drops clients trained more than `blacklist_rounds` times (at most
`blacklist_max_len` of all clients); the round is then topped up uniformly from them if needed.
"""

import math

import torch

from fedsweep.params import ParamError, count, non_negative, positive
from fedsweep.selection.base import ClientFeedback, Population, Selection, Selector
from fedsweep.selection.draw import check_round, descending, largest, uniform_sample, weighted_sample


def _fraction(field: str, value: float, *, low_open: bool = False) -> float:
    x = non_negative("Oort", field, value)
    if x > 1.0 or (low_open and x == 0.0):
        raise ParamError("Oort", field, f"must be in {'(' if low_open else '['}0, 1] (got {value!r})")
    return x


def statistical_utility(num_samples: torch.Tensor, loss_sq: torch.Tensor) -> torch.Tensor:
    """|B_i| · sqrt(mean of the squared per-sample losses) (Oort §4.2)."""
    return num_samples.to(torch.float64) * loss_sq.to(torch.float64).clamp_min(0).sqrt()


def preferred_duration(durations: torch.Tensor, threshold: float) -> float:
    """T: the durations' value at percentile `threshold` (FedScale's indexing); ∞ at 100 or none known."""
    known = durations[torch.isfinite(durations)]
    if threshold >= 100.0 or known.numel() == 0:
        return math.inf
    return float(torch.kthvalue(known, min(int(len(known) * threshold / 100.0), len(known) - 1) + 1).values)


def speed_penalty(durations: torch.Tensor, preferred: float, alpha: float) -> torch.Tensor:
    """(T / t_i)^α where t_i > T, else 1 (unknown t_i: 1)."""
    slow = torch.isfinite(durations) & (durations > preferred)
    ratio = preferred / durations.clamp_min(1e-4)
    return torch.where(slow, ratio.pow(alpha), torch.ones_like(durations))


class Oort(Selector):
    """Oort's training selector; aggregation weights: by sample count (the default)."""

    def __init__(
        self,
        *,
        exploration_factor: float = 0.9,
        exploration_decay: float = 0.98,
        exploration_min: float = 0.3,
        staleness_factor: float = 0.1,
        round_penalty: float = 2.0,
        round_threshold: float = 30.0,
        pacer_step: int = 20,
        pacer_delta: float = 5.0,
        clip_bound: float = 0.95,
        cut_off_util: float = 0.05,
        sample_window: float = 5.0,
        blacklist_rounds: int | None = None,
        blacklist_max_len: float = 0.3,
    ) -> None:
        super().__init__()
        self.exploration_factor = _fraction("exploration_factor", exploration_factor)
        self.exploration_decay = _fraction("exploration_decay", exploration_decay)
        self.exploration_min = _fraction("exploration_min", exploration_min)
        self.staleness_factor = non_negative("Oort", "staleness_factor", staleness_factor)
        self.round_penalty = non_negative("Oort", "round_penalty", round_penalty)
        self.round_threshold = non_negative("Oort", "round_threshold", round_threshold)
        if self.round_threshold > 100.0:
            raise ParamError(
                "Oort", "round_threshold", f"must be a percentile in [0, 100] (got {round_threshold!r})"
            )
        self.pacer_step = count("Oort", "pacer_step", pacer_step, least=1)
        self.pacer_delta = non_negative("Oort", "pacer_delta", pacer_delta)
        self.clip_bound = _fraction("clip_bound", clip_bound, low_open=True)
        self.cut_off_util = non_negative("Oort", "cut_off_util", cut_off_util)
        self.sample_window = positive("Oort", "sample_window", sample_window)
        if self.sample_window < 1.0:
            raise ParamError("Oort", "sample_window", f"must be >= 1 (got {sample_window!r})")
        self.blacklist_rounds = (
            None if blacklist_rounds is None else count("Oort", "blacklist_rounds", blacklist_rounds, least=0)
        )
        self.blacklist_max_len = _fraction("blacklist_max_len", blacklist_max_len)

    def initial_state(self, num_clients: int) -> dict[str, torch.Tensor]:
        """Per client: utility, last round trained (0: never), last seconds (nan), times tried;
        global: ε, T's percentile, the pacer's exploited utility per round (a ring of 2 windows),
        the last round's exploited clients."""
        return {
            "utility": torch.zeros(num_clients, dtype=torch.float64),
            "last_round": torch.zeros(num_clients, dtype=torch.int64),
            "duration": torch.full((num_clients,), math.nan, dtype=torch.float64),
            "count": torch.zeros(num_clients, dtype=torch.int64),
            "epsilon": torch.tensor(self.exploration_factor, dtype=torch.float64),
            "threshold": torch.tensor(self.round_threshold, dtype=torch.float64),
            "pacer": torch.zeros(2 * self.pacer_step, dtype=torch.float64),
            "exploited": torch.zeros(0, dtype=torch.int64),
        }

    def _pace(self, st: dict[str, torch.Tensor], rnd: int) -> None:
        """FedScale's pacer: record last round's exploited utility, move T's percentile every step."""
        picked = st["exploited"]
        ran = picked[st["last_round"][picked] == rnd - 1]
        st["pacer"][rnd % len(st["pacer"])] = float(st["utility"][ran].sum()) / (len(ran) + 1e-4)
        w = self.pacer_step
        if rnd < 2 * w or rnd % w:
            return
        rounds = torch.arange(rnd - 2 * w + 1, rnd + 1) % len(st["pacer"])
        last, current = float(st["pacer"][rounds[:w]].sum()), float(st["pacer"][rounds[w:]].sum())
        threshold = float(st["threshold"])
        if abs(current - last) <= last * 0.1:
            threshold = min(100.0, threshold + self.pacer_delta)
        elif abs(current - last) >= last * 5:
            threshold = max(self.pacer_delta, threshold - self.pacer_delta)
        st["threshold"] = torch.tensor(threshold, dtype=torch.float64)

    def _blacklisted(self, st: dict[str, torch.Tensor]) -> torch.Tensor:
        """bool [num_clients]: clients tried more than `blacklist_rounds` times, most-tried first, capped."""
        black = torch.zeros_like(st["count"], dtype=torch.bool)
        if self.blacklist_rounds is None:
            return black
        over = torch.nonzero(st["count"] > self.blacklist_rounds).flatten()
        over = over[descending(st["count"][over])][: int(self.blacklist_max_len * len(black))]
        black[over] = True
        return black

    def _exploit_scores(
        self, st: dict[str, torch.Tensor], tried: torch.Tensor, rnd: int, penalty: torch.Tensor
    ) -> torch.Tensor:
        """Util of the tried clients `tried` (Algorithm 1's exploitation utility, FedScale's arithmetic)."""
        reward = st["utility"][tried]
        positive_ = reward[reward > 0]
        if positive_.numel():  # order statistics by selection, not a sort: O(tried)
            rank = min(int(len(positive_) * self.clip_bound), len(positive_) - 1)
            clip = float(torch.kthvalue(positive_, rank + 1).values)
            low, high = float(positive_.min()) * 0.999, float(positive_.max())
        else:
            clip, low, high = 0.0, 0.0, 0.0
        spread = max(high - low, 1e-4)
        stale = (self.staleness_factor * math.log(rnd) / st["last_round"][tried].to(torch.float64)).sqrt()
        return ((reward.clamp_max(clip) - low) / spread).clamp_min(0.0).add(stale).mul(penalty)

    def select(
        self,
        *,
        round: int,
        available: torch.Tensor,
        k: int,
        generator: torch.Generator,
        state: dict[str, torch.Tensor],
        population: Population,
        probes: dict[int, float] | None = None,
    ) -> Selection:
        """Exploit tried clients by Util, explore untried ones, min(k, len(available)) in all."""
        check_round(available, k, "Oort")
        st = {name: t.clone() for name, t in (state or self.initial_state(population.num_clients)).items()}
        self._pace(st, round)
        known = st["duration"]
        if population.expected_seconds is not None:
            known = torch.where(torch.isnan(known), population.expected_seconds.to(torch.float64), known)
        preferred = preferred_duration(known, float(st["threshold"]))
        penalty = speed_penalty(known, preferred, self.round_penalty)
        black = self._blacklisted(st)
        avail = available
        usable, rest = avail[~black[avail]], avail[black[avail]]
        tried, untried = usable[st["count"][usable] > 0], usable[st["count"][usable] == 0]
        epsilon = max(float(st["epsilon"]) * self.exploration_decay, self.exploration_min)
        st["epsilon"] = torch.tensor(epsilon, dtype=torch.float64)
        k_usable = min(k, len(usable))
        n_exploit = min(k_usable - min(int(k * epsilon), len(untried)), len(tried))
        n_explore = min(len(untried), k_usable - n_exploit)
        exploit = tried[:0]
        if n_exploit:
            scores = self._exploit_scores(st, tried, round, penalty[tried])
            # The head of descending(scores), found by selection (draw.largest): the cut-off client is
            # the (n_exploit + 1)-th largest score (the last one when fewer).
            nth = min(n_exploit, len(scores) - 1)
            cut = float(torch.kthvalue(scores, len(scores) - nth).values) * self.cut_off_util
            pool = largest(scores, max(int((scores >= cut).sum()), min(len(scores), 10 * n_exploit + 1)))
            exploit = tried[pool[weighted_sample(scores[pool], n_exploit, generator)]]
        explore = untried[:0]
        if n_explore:
            prior = population.num_samples[untried].to(torch.float64) * penalty[untried]
            window = largest(prior, min(int(self.sample_window * n_explore), len(untried)))
            explore = untried[window[weighted_sample(prior[window], n_explore, generator)]]
        top_up = rest[uniform_sample(len(rest), min(k, len(avail)) - n_exploit - n_explore, generator)]
        st["exploited"] = torch.sort(exploit).values
        chosen = torch.cat([exploit, explore, top_up]).tolist()
        return Selection(clients=sorted(int(c) for c in chosen), state=st)

    def observe(
        self, *, round: int, feedback: list[ClientFeedback], state: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Record each selected client's utility, round and seconds (a failure: utility 0)."""
        if not feedback:
            return state
        st = {name: t.clone() for name, t in state.items()}
        ids = torch.tensor([f.client for f in feedback], dtype=torch.int64)
        ok = [f.failure is None for f in feedback]
        # The mean loss stands in for the root-mean-square where a result predates `loss_sq`.
        rms_sq = torch.tensor(
            [f.loss_sq if math.isfinite(f.loss_sq) else f.loss**2 for f in feedback], dtype=torch.float64
        )
        samples = torch.tensor([f.num_samples for f in feedback], dtype=torch.int64)
        utility = torch.where(
            torch.tensor(ok), statistical_utility(samples, rms_sq), torch.zeros(len(ids), dtype=torch.float64)
        )
        st["utility"][ids] = torch.nan_to_num(utility, nan=0.0)
        st["last_round"][ids] = round
        st["count"][ids] += 1
        seconds = torch.tensor([f.seconds for f in feedback], dtype=torch.float64)
        st["duration"][ids] = torch.where(torch.isfinite(seconds), seconds, st["duration"][ids])
        return st

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(ε={self.exploration_factor}, α={self.round_penalty}, "
            f"T%={self.round_threshold})"
        )
