"""The checkpoint task: commit a round (model, server and selection state, metric history)."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from fedsweep import steps
from fedsweep.weights import Params
from tasks.context import cell_env


@task(cache_policy=NO_CACHE, name="checkpoint", task_run_name="r{round}-checkpoint")
def commit_round(cell_dir: str, round: int, global_ref: dict, extra: dict[str, Params], meta: dict) -> int:
    """Write round `round`'s checkpoint (manifest last), then drop intermediate blobs up to it."""
    env = cell_env(cell_dir)
    params, server_state = steps.read_global(env.blobs, global_ref)
    tensors = {"model": params, "server_state": server_state, **{k: v for k, v in extra.items() if v}}
    env.checkpoints.save(round=round, tensors=tensors, meta=meta)
    # Only after the commit: until then a resumed run still needs the round's client results.
    # Earlier rounds too: their own commit may have failed and been superseded by this one.
    steps.prune_rounds(env.blobs, up_to=round)
    return round
