"""The strategy contract (after Flower's `Strategy`: failures are data passed to `aggregate`).

A strategy is the server's method and the part of the client's local objective it owns. The round
loop (flows/experiment.py) calls it; it never calls back into the loop.

Rules:

- **Pure.** Every method is a function of its arguments; a strategy object holds only its
  hyper-parameters (set by keyword-only constructor arguments from `conf/strategy/*.yaml`). Anything
  that changes across rounds is *state*, returned and passed back in, so it can be checkpointed and
  a resumed run continues bitwise.
- **State** is two kinds of `dict[str, Tensor]`:
  `server_state` (e.g. SCAFFOLD's global control variate, a server optimiser's moments), created by
  `init_server_state` and returned updated by `aggregate`; and per-client `client_state` (e.g.
  SCAFFOLD's c_i), created by `init_client_state`, read by `local_penalty`/`correct_gradients`
  during local training and returned updated by `finish_client`. The runner persists both.
- **Who calls what.** Per client and round the runner calls `init_client_state` (first
  participation only), then the local epochs (`fedsweep.train.train_epoch`, which calls
  `local_penalty` and `correct_gradients` at every step, with every state dict moved to the model's
  device), then `finish_client` once with the total number of local steps. The `ClientResult` it
  hands to `aggregate` carries both the state the client started from (`previous_client_state`)
  and the one `finish_client` returned (`client_state`), so that a server update that needs the
  change of a client's state (SCAFFOLD's c ← c + |S|/N · mean(c_i⁺ − c_i)) needs no hidden memory.
- **Experiment-wide sizes** a method needs (SCAFFOLD's N, the total number of clients) are
  hyper-parameters, interpolated in its yaml (`num_clients: ${num_clients}`).
- **Local objective.** `local_penalty` adds a term to the client's loss (FedProx's proximal term);
  `correct_gradients` may edit gradients in place after `backward()` (SCAFFOLD's c - c_i). Both
  default to doing nothing.
- **Aggregation** receives the global parameters of the round, an iterable of `ClientResult` (in
  client-id order, read lazily so that only a running sum lives in memory) and the list of
  `ClientFailure`s. It must consume `results` once. It returns the new global parameters and server
  state. When `results` is empty it must return the global parameters unchanged.
"""

from abc import ABC
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ClientResult:
    """A client's successful local training in one round."""

    client: int
    num_samples: int
    params: Params
    loss: float
    epochs_done: int
    epochs_planned: int
    client_state: Params = field(default_factory=dict)
    previous_client_state: Params = field(default_factory=dict)


@dataclass(frozen=True)
class ClientFailure:
    """A selected client that returned no usable update this round."""

    client: int
    kind: str
    message: str


@dataclass(frozen=True)
class Aggregated:
    """What `aggregate` returns."""

    params: Params
    server_state: Params


class Strategy(ABC):
    """Base class; subclasses override what their method changes."""

    def init_server_state(self, params: Params) -> Params:
        """Server state before round 1."""
        return {}

    def init_client_state(self, params: Params) -> Params:
        """A client's state before its first participation."""
        return {}

    def local_penalty(
        self,
        *,
        params: dict[str, torch.Tensor],
        global_params: Params,
        server_state: Params,
        client_state: Params,
    ) -> torch.Tensor | None:
        """A term added to the local loss (params are the live, differentiable ones)."""
        return None

    def correct_gradients(
        self,
        *,
        named_params: dict[str, torch.nn.Parameter],
        server_state: Params,
        client_state: Params,
    ) -> None:
        """Edit `.grad` in place after backward(); default: leave gradients alone."""

    def finish_client(
        self,
        *,
        params: Params,
        global_params: Params,
        server_state: Params,
        client_state: Params,
        steps: int,
        lr: float,
    ) -> Params:
        """The client's new state after local training."""
        return client_state

    def aggregate(
        self,
        *,
        global_params: Params,
        results: Iterable[ClientResult],
        failures: list[ClientFailure],
        server_state: Params,
    ) -> Aggregated:
        """New global parameters from the successful clients."""
        raise NotImplementedError
