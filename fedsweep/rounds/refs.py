"""The small references a round passes between its tasks instead of tensors (JSON: they are task
parameters, persisted task results and parts of cache keys)."""

from typing import NotRequired, TypedDict

from fedsweep.checkpoint.blobs import BlobRef

# Where a round starts: the global model (with what the strategy broadcasts) and the server state.
RoundStart = TypedDict("RoundStart", {"global": BlobRef, "server": BlobRef})


class ClientRef(BlobRef):
    """A client's result after one of its tasks: the blob of its parameters (and optimiser state)
    and what aggregation, selection and the metrics read of it."""

    client: int
    epochs_done: int  # the client's tasks done this round (epochs, or chunks of local steps)
    attempt: int  # the attempt that produced it (1: the first try)
    steps: int  # local steps so far this round
    num_samples: int
    loss: float
    loss_sq: float
    previous_client_state: BlobRef | None
    # After the client's last task only:
    client_state: NotRequired[BlobRef | None]
    valid: NotRequired[bool]  # the update is finite
    sketch: NotRequired[list[float]]  # for selectors that compare updates (fedsweep/selection/sketch.py)
