"""The checkpoint task: commit a round (model, server state, metric history) and prune its blobs."""

from prefect import task
from prefect.cache_policies import NO_CACHE

from fedsweep import steps
from tasks.context import cell_env


@task(cache_policy=NO_CACHE, name="checkpoint", task_run_name="r{round}-checkpoint")
def commit_round(cell_dir: str, round: int, global_ref: dict, meta: dict) -> int:
    """Write round `round`'s checkpoint (manifest last), then drop the round's intermediate blobs."""
    env = cell_env(cell_dir)
    params, server_state = steps.read_global(env.blobs, global_ref)
    env.checkpoints.save(round=round, tensors={"model": params, "server_state": server_state}, meta=meta)
    # Only after the commit: until then a resumed run still needs the round's client results.
    env.blobs.prune(steps.round_prefix(round))
    return round
