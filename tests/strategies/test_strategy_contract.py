"""The base contract carries what SCAFFOLD-like methods need, through `train_epoch`."""

import torch

from fedsweep.data.base import Split
from fedsweep.models.init import build_model
from fedsweep.models.logreg import LogisticRegression
from fedsweep.strategies.base import ClientResult, Params, Strategy
from fedsweep.train import LocalConfig, train_epoch
from fedsweep.weights import state_of


class ControlVariates(Strategy):
    """SCAFFOLD's shape: server c, client c_i, gradient correction g + c − c_i, state updated after."""

    def __init__(self) -> None:
        self.calls = 0

    def init_server_state(self, params: Params) -> Params:
        return {k: torch.zeros_like(v) for k, v in params.items() if v.is_floating_point()}

    def init_client_state(self, params: Params) -> Params:
        return self.init_server_state(params)

    def correct_gradients(self, *, named_params, server_state, client_state) -> None:  # noqa: ANN001
        self.calls += 1
        for name, p in named_params.items():
            p.grad.add_(server_state[name] - client_state[name])

    def finish_client(  # noqa: ANN001
        self, *, params, global_params, server_state, client_state, steps, lr
    ) -> Params:
        return {k: client_state[k] - server_state[k] + (global_params[k] - params[k]) / (steps * lr)
                for k in client_state}


def setup() -> tuple[torch.nn.Module, Split, Params]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=gen)
    model = build_model(LogisticRegression, input_shape=(3,), num_classes=2, generator_seed=0)
    return model, Split(x=x, y=(x[:, 0] > 0).long()), state_of(model)


def test_gradient_correction_is_applied_at_every_step() -> None:
    # Prepare: c − c_i = −∇ would freeze the model; here c − c_i = +1 on every weight drives it.
    model, data, params = setup()
    strategy = ControlVariates()
    server = {k: torch.ones_like(v) for k, v in strategy.init_server_state(params).items()}
    client = strategy.init_client_state(params)
    # Execute
    out = train_epoch(model=model, data=data, indices=torch.arange(40), params=params, optimizer_state={},
                      global_params=params, strategy=strategy, server_state=server, client_state=client,
                      cfg=LocalConfig(lr=0.1, batch_size=10), generator=torch.Generator().manual_seed(0))
    new_client = strategy.finish_client(params=out.params, global_params=params, server_state=server,
                                        client_state=client, steps=out.steps, lr=0.1)
    # Assert
    assert strategy.calls == out.steps == 4
    assert set(new_client) == {"linear.weight", "linear.bias"}
    result = ClientResult(client=0, num_samples=40, params=out.params, loss=out.loss, epochs_done=1,
                          epochs_planned=1, client_state=new_client, previous_client_state=client)
    assert result.previous_client_state is client


def test_base_defaults_do_nothing() -> None:
    # Prepare
    strategy = Strategy()
    params = {"w": torch.ones(2)}
    # Execute / Assert
    assert strategy.init_server_state(params) == {} and strategy.init_client_state(params) == {}
    penalty = strategy.local_penalty(params=params, global_params=params, server_state={}, client_state={})
    assert penalty is None
    state = {"c": torch.zeros(1)}
    assert strategy.finish_client(params=params, global_params=params, server_state={}, client_state=state,
                                  steps=1, lr=0.1) is state
