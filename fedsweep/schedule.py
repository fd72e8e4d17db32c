"""What round r does, as pure functions: a client's learning rate and local work in tasks, and
whether the round evaluates the global model.

**Learning rate.** Step decay by round (`lr_schedule: {milestones, gamma}`), as torch's
`MultiStepLR` stepped once per round: round r (1-based) trains with lr · gamma^k, k the number of
milestones m < r, so milestone m decays the lr from round m + 1 on. No milestones: a constant lr
(and bitwise the same training as before schedules existed).

**Local work.** A client's round is a chain of tasks (one task = one kill at most lost):
- `local_epochs: E`: E tasks, each a full pass over the client's data (`max_batches` None).
- `local_steps: τ`: τ mini-batch steps, cycling through the client's data in *epoch-sized chunks*:
  chunk e is a fresh shuffle (generator(seed, "batches", round, client, e), as epoch e's) of which
  the first min(B, τ − e·B) batches run, B = ceil(n / batch_size) the batches of one pass. So
  ceil(τ / B) tasks, the last one cut at τ, and exactly τ steps in all (for a client with data).
  A straggler's partial work (faults) counts in the same unit as the knob: x of E epochs, or x of
  τ steps. A client without data runs one empty chunk (0 steps).

**Evaluation** (`evaluate_every: N`): in the rounds that are multiples of N, and always in the last
round of the run, so that a finished cell's final accuracy is its final model's (docs/evaluation.md).
"""

import math


def lr_at(lr: float, *, round: int, milestones: list[int], gamma: float) -> float:
    """The client lr of round `round` (1-based) under step decay at `milestones`."""
    passed = sum(1 for m in milestones if m < round)
    return lr * gamma**passed if passed else lr


def batches_per_pass(num_samples: int, batch_size: int) -> int:
    """B: mini-batches in one pass over a client's data (the last one may be short)."""
    return math.ceil(num_samples / batch_size)


def chunks_for(steps: int, *, num_samples: int, batch_size: int) -> int:
    """Tasks (epoch-sized chunks) that `steps` mini-batch steps take; at least one."""
    per_pass = batches_per_pass(num_samples, batch_size)
    return max(1, math.ceil(steps / per_pass)) if per_pass else 1


def steps_in_chunk(chunk: int, *, steps: int, num_samples: int, batch_size: int) -> int:
    """Mini-batch steps of chunk `chunk` (0-based) of a client's `steps` in all."""
    per_pass = batches_per_pass(num_samples, batch_size)
    return max(0, min(per_pass, steps - chunk * per_pass))


def evaluates(round: int, *, every: int, rounds: int) -> bool:
    """Whether round `round` evaluates the global model: every `every` rounds, and always the last
    round of the run (`rounds`)."""
    return round % every == 0 or round >= rounds
