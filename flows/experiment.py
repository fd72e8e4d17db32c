"""One cell: the FL round loop, as a Prefect flow.

Each round is select -> one task per client per local epoch -> aggregate -> evaluate -> checkpoint
-> track. Tasks exchange small references, never tensors; client-epoch, aggregation and evaluation
results are persisted under content keys, so a re-run finds what a killed run finished.
"""

import logging
import time
from typing import Any

import psutil
import yaml
from prefect import flow
from prefect.futures import PrefectFuture, as_completed
from tqdm import tqdm

from fedsweep import steps
from fedsweep.memory.rss import rss_mb
from fedsweep.rng import generator
from fedsweep.weights import to_bytes, weights_sha256
from flows.commit import RoundCommitter
from tasks import track
from tasks.aggregate import aggregate_round
from tasks.context import cell_env
from tasks.evaluate import evaluate_round
from tasks.train import train_client_epoch

log = logging.getLogger("fedsweep")


def train_clients(
    cell_dir: str, round: int, clients: list[int], epochs: int, global_ref: dict, runner: dict
) -> tuple[list[dict], list[dict]]:
    """Run each client's chain of epoch tasks; returns (final references, failures)."""
    task = train_client_epoch.with_options(
        retries=int(runner["retries"]), retry_delay_seconds=float(runner["retry_delay_s"]),
        timeout_seconds=float(runner["task_timeout_s"]) or None,
    )

    def submit(client: int, epoch: int, input_ref: dict | None) -> PrefectFuture:
        return task.submit(cell_dir, round, client, epoch, global_ref, input_ref)

    pending = {submit(c, 0, None): (c, 0) for c in clients}
    results, failures = [], []
    while pending:
        future = next(iter(as_completed(list(pending))))
        client, epoch = pending.pop(future)
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):
            failures.append({"client": client, "kind": type(outcome).__name__, "message": str(outcome)[:500]})
            log.warning("round %d: client %d failed at epoch %d: %s: %s", round, client, epoch,
                        type(outcome).__name__, outcome)
        elif epoch + 1 < epochs:
            pending[submit(client, epoch + 1, outcome)] = (client, epoch + 1)
        else:
            results.append(outcome)
    return sorted(results, key=lambda r: r["client"]), sorted(failures, key=lambda f: f["client"])


@flow(name="cell", log_prints=False)
def run_cell(cell: dict[str, Any], tracking: dict[str, Any]) -> dict[str, Any]:
    """Run (or resume) one cell; returns its summary row."""
    started = time.perf_counter()
    cfg, cell_dir, name = cell["config"], cell["dir"], cell["name"]
    env = cell_env(cell_dir)
    rt, rounds = env.runtime, int(cfg["rounds"])
    uri = tracking.get("uri")
    run_id, logged, run_status = (None, 0, None)
    if uri:
        run_id, logged, run_status = track.open_cell_run(
            uri, tracking["experiment_id"], tracking["parent_run_id"], name, cell["key"], cell["params"]
        )
    latest = env.checkpoints.load_latest()
    if latest is None:
        params = rt.initial_params
        server_state = rt.strategy.init_server_state(params)
        selection_state: dict = {}
        history: list[dict[str, float]] = []
    else:
        params, server_state = latest.tensors["model"], latest.tensors.get("server_state", {})
        selection_state = latest.tensors.get("selection", {})
        history = latest.meta["history"]
    committer = RoundCommitter(cell_dir=cell_dir, uri=uri, run_id=run_id, logged=logged, cfg=cfg)
    committer.log_missing(history)
    if history and len(history) < rounds:
        log.warning("%s: resuming after round %d (%.1f s after start)", name, len(history), since_start())
    bar = tqdm(total=rounds, initial=len(history), desc=name, unit="round", disable=not cfg["runner"]["progress"])
    try:
        for rnd in range(len(history) + 1, rounds + 1):
            tick = time.perf_counter()
            global_ref = steps.put_global(env.blobs, round=rnd, params=params, server_state=server_state)
            selection = rt.selector.select(
                round=rnd, available=list(range(rt.num_clients)), k=int(cfg["clients_per_round"]),
                generator=generator(cfg["seed"], "select", rnd), state=selection_state,
            )
            selection_state = selection.state
            results, failures = train_clients(
                cell_dir, rnd, selection.clients, int(cfg["local_epochs"]), global_ref, cfg["runner"]
            )
            agg = aggregate_round(cell_dir, rnd, global_ref, results, failures)
            evaluation = evaluate_round(cell_dir, rnd, agg["global"])
            params, server_state = steps.read_global(env.blobs, agg["global"])
            failed = agg["failures"]
            history.append({
                "round": rnd, **evaluation,
                "train_loss": _mean_loss(results),
                "clients_selected": len(selection.clients),
                "clients_ok": len(selection.clients) - len(failed),
                "clients_failed": len(failed),
                "round_seconds": time.perf_counter() - tick,
                "checkpoint_wait_seconds": committer.wait_seconds,
                "rss_mb": rss_mb(),
            })
            committer.submit(rnd, agg["global"], {"selection": selection_state}, {"round": rnd, "history": list(history)})
            bar.set_postfix(acc=f"{evaluation['accuracy']:.3f}", failed=len(failed))
            bar.update(1)
        committer.finish()
    except BaseException:
        if run_id:
            track.finish_run(uri, run_id, "FAILED", {}, {})
        raise
    finally:
        bar.close()
    sha = weights_sha256(params)
    if run_id and run_status != "FINISHED":
        files = {
            "config.yaml": yaml.safe_dump(cfg, sort_keys=False).encode(),
            "model/final.safetensors": to_bytes(params),
        }
        track.finish_run(uri, run_id, "FINISHED", {"final_weights_sha256": sha}, files)
    accuracies = [h["accuracy"] for h in history]
    return {
        "cell": name, "status": "FINISHED", "final_accuracy": accuracies[-1] if accuracies else float("nan"),
        "best_accuracy": max(accuracies, default=float("nan")), "rounds": len(history),
        "wall_s": time.perf_counter() - started,
        "clients_failed": int(sum(h["clients_failed"] for h in history)), "final_weights_sha256": sha,
    }


def since_start() -> float:
    """Seconds since this process started (restart latency, for the log and the benchmark)."""
    return time.time() - psutil.Process().create_time()


def _mean_loss(results: list[dict]) -> float:
    total = sum(r["num_samples"] for r in results)
    return sum(r["loss"] * r["num_samples"] for r in results) / total if total else float("nan")
