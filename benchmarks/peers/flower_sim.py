"""Flower's Simulation Engine (flwr 1.42, Ray backend) on the workload of benchmarks/bare_loop.py.

Run with the Flower virtualenv's python (benchmarks/README.md says how to make it):

    /work/venv-flwr/bin/python benchmarks/peers/flower_sim.py --rounds 20
    /work/venv-flwr/bin/python benchmarks/peers/flower_sim.py --rounds 5 --mu 0,1,0.01   # three methods

How it is set up, as Flower's documentation and its PyTorch template do it (flwr 1.42's Message API):
`flwr.simulation.run_simulation(server_app, client_app, num_supernodes=clients, backend_name="ray",
backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}})`; the ServerApp runs
`flwr.serverapp.strategy.FedAvg.start(...)` with a centralised `evaluate_fn` on the test split after
every round (no client-side evaluation, as the bare loop and fedsweep); a ClientApp's `@app.train()`
trains the client with the bare loop's `client_update` and replies with its ArrayRecord and
`num-examples`, by which FedAvg weights the average (McMahan et al. 2017, Algorithm 1).

For the identical workload two choices differ from Flower's defaults, both outside what is timed
as Flower's machinery: the clients of a round are fedsweep's (`bare_loop.select`, sent to the nodes
in the order of their ids, with the client number in the message's config, since a simulated node
holds no data of its own here), and FedProx (Li et al. 2020, Algorithm 2) is Flower's own server
side, FedAvg plus `proximal-mu` in the train config (flwr/serverapp/strategy/fedprox.py does only
that), with the client adding μ/2·‖w − w_global‖² (squared, as in the paper and in pfl-research;
the example in Flower's FedProx docstring uses the norm without the square).

Per round: the seconds between the centralised evaluations (training, aggregation, evaluation);
`loop_s` is their sum, `sim_s` adds Ray's start and stop. Prints `RESULT {json}` (workload.report).
"""

import time

import workload  # first: puts this checkout on sys.path and PYTHONPATH (also for Ray's workers)

# isort: split
import bare_loop
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.simulation import run_simulation

ARGS = workload.parse(None, __doc__.split("\n")[0])
KEY = workload.key_of(ARGS)
client_app = ClientApp()


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the client named in the config from the global arrays; reply with arrays and sample count."""
    cfg = msg.content["config"]
    params, samples = workload.train_one(
        KEY,
        msg.content["arrays"].to_torch_state_dict(),
        rnd=int(cfg["server-round"]),
        client=int(cfg["client"]),
        mu=float(cfg["proximal-mu"]),
    )
    content = RecordDict({"arrays": ArrayRecord(params), "metrics": MetricRecord({"num-examples": samples})})
    return Message(content=content, reply_to=msg)


def all_nodes(grid: Grid, timeout_s: float = 600.0) -> list[int]:
    """Every simulated node's id, in order, once all have registered (they come up one by one)."""
    deadline = time.monotonic() + timeout_s
    while len(nodes := sorted(grid.get_node_ids())) < ARGS.clients:
        if time.monotonic() > deadline:
            raise SystemExit(
                f"flower_sim: {len(nodes)} of {ARGS.clients} nodes registered after {timeout_s:.0f} s"
            )
        time.sleep(0.05)
    return nodes


class SameClients(FedAvg):
    """FedAvg whose round-r cohort is the bare loop's (fedsweep's) selection; FedProx's mu in the config."""

    def __init__(self, *, mu: float) -> None:
        super().__init__(fraction_evaluate=0.0)
        self.mu = mu

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> list[Message]:
        nodes = all_nodes(grid)
        messages = []
        for client in bare_loop.select(ARGS.seed, server_round, ARGS.clients, ARGS.clients_per_round):
            cfg = ConfigRecord(
                {**config, "server-round": server_round, "client": client, "proximal-mu": self.mu}
            )
            content = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: cfg})
            messages.append(
                Message(content=content, message_type=MessageType.TRAIN, dst_node_id=nodes[client])
            )
        return messages


def simulate(mu: float) -> dict[str, float]:
    """One Flower simulation of ARGS.rounds rounds; its figures."""
    _, test, _ = workload.data(KEY)
    model = bare_loop.build_cnn(ARGS.seed, ARGS.model)
    marks: list[float] = []
    accuracy: list[float] = []

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round > 0:  # the bare loop does not evaluate the initial model
            model.load_state_dict(arrays.to_torch_state_dict())
            accuracy.append(bare_loop.evaluate(model, test.x, test.y))
        marks.append(time.perf_counter())
        return MetricRecord({"accuracy": accuracy[-1]}) if accuracy else None

    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        SameClients(mu=mu).start(
            grid=grid,
            initial_arrays=ArrayRecord(model.state_dict()),
            num_rounds=ARGS.rounds,
            evaluate_fn=evaluate_fn,
        )

    started = time.perf_counter()
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=ARGS.clients,
        backend_name="ray",
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
    sim_s = time.perf_counter() - started
    if len(accuracy) != ARGS.rounds:
        raise SystemExit(
            f"flower_sim: {len(accuracy)} of {ARGS.rounds} rounds evaluated (see Flower's log above)"
        )
    rounds = [b - a for a, b in zip(marks, marks[1:])]
    return {
        "mu": mu,
        "rounds": ARGS.rounds,
        "loop_s": sum(rounds),
        "sim_s": sim_s,
        "round_s_median": sorted(rounds)[len(rounds) // 2],
        "final_accuracy": accuracy[-1],
    }


if __name__ == "__main__":
    workload.report("flower", [simulate(mu) for mu in workload.mus(ARGS)])
