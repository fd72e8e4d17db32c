"""A strategy with SCAFFOLD-shaped state and a selector that learns from feedback, for testing the
contracts through the real round loop.

Each client's state counts the rounds it finished; the server state keeps every client's count,
and stays on the server. Every hook checks what the contract promises and raises when it is broken,
so a runner that re-initialised client state, skipped `finish_client`, lost a client's state across
an outage or a resume, or sent the server state to clients fails the cell.
"""

import torch

from fedsweep.failures import Failure
from fedsweep.selection.base import Selection
from fedsweep.selection.uniform import Uniform
from fedsweep.strategies.base import Aggregated, ClientResults, RoundContext
from fedsweep.strategies.fedavg import FedAvg
from fedsweep.weights import Params


class ContractBroken(AssertionError):
    """The runner did not keep the strategy contract."""


class Counting(FedAvg):
    """FedAvg on the parameters, plus a visit count per client in client and server state."""

    def init_client_state(self, params: Params) -> Params:
        return {"visits": torch.zeros(1, dtype=torch.int64), "steps": torch.zeros(1, dtype=torch.int64)}

    def correct_gradients(self, *, named_params, server_state, client_state) -> None:
        if "visits" in server_state:
            raise ContractBroken("the server state was sent to a client")
        if "visits" not in client_state:
            raise ContractBroken("a client trained without its state")

    def finish_client(self, *, params, global_params, server_state, client_state, steps, lr) -> Params:
        return {"visits": client_state["visits"] + 1, "steps": client_state["steps"] + steps}

    def aggregate(
        self,
        *,
        global_params: Params,
        results: ClientResults,
        failures: list[Failure],
        server_state: Params,
        context: RoundContext,
    ) -> Aggregated:
        visits = server_state.get("visits", torch.zeros(context.num_clients, dtype=torch.int64)).clone()
        for result in results:
            before, after = result.previous_client_state, result.client_state
            if int(after["visits"]) != int(before["visits"]) + 1:
                raise ContractBroken(
                    f"client {result.client}: visits {int(before['visits'])} -> {int(after['visits'])}"
                )
            if int(after["steps"]) - int(before["steps"]) != result.steps:
                raise ContractBroken(f"client {result.client}: finish_client saw another step count")
            if int(before["visits"]) != int(visits[result.client]):
                raise ContractBroken(f"client {result.client} came back with another state")
            visits[result.client] = after["visits"]
        out = super().aggregate(
            global_params=global_params,
            results=results,
            failures=failures,
            server_state=server_state,
            context=context,
        )
        return Aggregated(params=out.params, server_state={"visits": visits})


class CountingSelector(Uniform):
    """Uniform selection that learns, in its checkpointed state, how often each client trained or failed."""

    def __init__(self, *, num_clients: int) -> None:
        super().__init__()
        self.num_clients = num_clients

    def select(self, *, round, available, k, generator, state, population, probes=None):
        chosen = super().select(
            round=round, available=available, k=k, generator=generator, state=state, population=population
        )
        return Selection(clients=chosen.clients, state=state)

    def observe(self, *, round, feedback, state):
        counts = {k: v.clone() for k, v in state.items()} or {
            "ok": torch.zeros(self.num_clients, dtype=torch.int64),
            "failed": torch.zeros(self.num_clients, dtype=torch.int64),
            "steps": torch.zeros(self.num_clients, dtype=torch.int64),
        }
        for item in feedback:
            counts["failed" if item.failure else "ok"][item.client] += 1
            counts["steps"][item.client] += item.steps
        return counts
