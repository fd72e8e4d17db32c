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
from fedsweep.faults.base import failure_kind, retryable
from fedsweep.memory.guard import guard_from_config
from fedsweep.memory.rss import rss_mb
from fedsweep.rng import generator
from fedsweep.weights import to_bytes, weights_sha256
from flows.commit import RoundCommitter
from flows.interrupt import StopRequested, stop_requested
from tasks import track
from tasks.aggregate import aggregate_round
from tasks.context import cell_env, parallel_clients
from tasks.evaluate import evaluate_round
from tasks.train import train_client_epoch

log = logging.getLogger("fedsweep")


FAILURE_KINDS = ("transient", "permanent", "node_down", "oom", "timeout", "straggler", "invalid_update", "other")


class _Ran:
    """A task run that already finished in this thread, read like a finished PrefectFuture."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def result(self, raise_on_failure: bool = False) -> Any:
        return self.state.result(raise_on_failure=raise_on_failure)


def _next_done(pending: dict) -> Any:
    ran = next((f for f in pending if isinstance(f, _Ran)), None)
    return ran if ran is not None else next(iter(as_completed(list(pending))))


class MemoryLimitReached(RuntimeError):
    """The memory guard's stop level: the last round is committed, the sweep stops cleanly."""


def train_clients(
    cell_dir: str, round: int, epochs: dict[int, int], global_ref: dict, runner: dict, parallel: int
) -> tuple[list[dict], list[dict], int]:
    """Run each client's chain of `epochs[client]` epoch tasks, at most `parallel` chains at once.

    Returns (final references, failures, tasks reused from an earlier run's persisted results).
    """
    task = train_client_epoch.with_options(
        retries=int(runner["retries"]), retry_delay_seconds=float(runner["retry_delay_s"]),
        timeout_seconds=float(runner["task_timeout_s"]) or None,
    )
    blobs = cell_env(cell_dir).blobs
    per_client = runner["granularity"] == "client"
    # One client at a time: run the tasks in this (the flow's) thread, where torch's intra-op threads
    # train about twice as fast as in a worker thread (measured: benchmarks/README.md).
    inline = parallel == 1
    pending: dict[PrefectFuture | _Ran, tuple[int, int, dict | None]] = {}

    def submit(client: int, epoch: int, input_ref: dict | None, refresh: bool = False) -> None:
        span = epochs[client] - epoch if per_client else 1
        chosen = task.with_options(refresh_cache=True) if refresh else task
        args = (cell_dir, round, client, epoch, global_ref, input_ref, span)
        future = _Ran(chosen(*args, return_state=True)) if inline else chosen.submit(*args)
        pending[future] = (client, epoch, input_ref)

    waiting = sorted(epochs)
    for client in waiting[:parallel]:
        submit(client, 0, None)
    waiting = waiting[parallel:]
    results, failures, reused = [], [], 0
    while pending:
        future = _next_done(pending)
        client, epoch, input_ref = pending.pop(future)
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):
            failures.append(failure_record(client, outcome, runner))
            log.warning("round %d: client %d failed at epoch %d: %s", round, client, epoch, failures[-1]["message"])
        elif future.state.name == "Cached" and not steps.ref_ok(blobs, outcome):
            # A persisted result whose blob is gone or changed (moved, pruned, damaged): recompute.
            log.warning("round %d: cached result of client %d epoch %d is stale; recomputing", round, client, epoch)
            submit(client, epoch, input_ref, refresh=True)
            continue
        else:
            reused += future.state.name == "Cached"
            if outcome["epochs_done"] < epochs[client]:
                submit(client, outcome["epochs_done"], outcome)
                continue
            results.append(outcome)
        if waiting:  # a chain ended: start the next client's
            submit(waiting.pop(0), 0, None)
    return sorted(results, key=lambda r: r["client"]), sorted(failures, key=lambda f: f["client"]), reused


def failure_record(client: int, error: BaseException, runner: dict) -> dict:
    """What a failed client contributes to aggregation (as Flower's `failures`) and to the metrics."""
    kind = failure_kind(error)
    return {
        "client": client, "kind": kind if kind in FAILURE_KINDS else "other",
        "message": f"{type(error).__name__}: {error}"[:500],
        "retries": int(runner["retries"]) if retryable(error) else 0,
    }


def failure_metrics(failures: list[dict], results: list[dict]) -> dict[str, float]:
    """Failures by kind (every kind, every round: one value per step) and retries used."""
    counts = {f"failed_{kind}": 0.0 for kind in FAILURE_KINDS}
    for failure in failures:
        counts[f"failed_{failure['kind']}"] += 1
    retries = sum(r.get("attempt", 1) - 1 for r in results) + sum(f.get("retries", 0) for f in failures)
    return {**counts, "retries": float(retries)}


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
    guard = guard_from_config(cfg["runner"]["memory"])
    committer.log_missing(history)
    if history and len(history) < rounds:
        log.info("resuming cell %s after round %d of %d (%.1f s after start)", name, len(history), rounds, since_start())
    bar = tqdm(total=rounds, initial=len(history), desc=name, unit="round", disable=not cfg["runner"]["progress"])
    try:
        for rnd in range(len(history) + 1, rounds + 1):
            tick = time.perf_counter()
            if stop_requested():  # Ctrl-C or SIGTERM (flows/interrupt.py): commit, then stop
                committer.finish()
                raise StopRequested(f"stopped after round {len(history)} of {rounds}")
            memory = guard.check()
            if memory.level == "stop":
                committer.finish()  # everything up to the previous round is on disk
                raise MemoryLimitReached(memory.message)
            if memory.level != "ok":
                log.warning("%s round %d: %s", name, rnd, memory.message)
            parallel = guard.allowed_parallel(parallel_clients(cfg["runner"]), memory)
            global_ref = steps.put_global(env.blobs, round=rnd, params=params, server_state=server_state)
            available = rt.faults.available_clients(seed=int(cfg["seed"]), round=rnd, num_clients=rt.num_clients)
            selection = rt.selector.select(
                round=rnd, available=available, k=int(cfg["clients_per_round"]),
                generator=generator(cfg["seed"], "select", rnd), state=selection_state,
            )
            selection_state = selection.state
            planned = {c: steps.planned_epochs(rt, rnd, c) for c in selection.clients}
            epochs = {c: n for c, n in planned.items() if rt.policy.accept(n, int(cfg["local_epochs"]))}
            trained = time.perf_counter()
            results, failures, reused = train_clients(cell_dir, rnd, epochs, global_ref, cfg["runner"], parallel)
            trained = time.perf_counter() - trained
            failures += [
                {"client": c, "kind": "straggler", "message": f"ran {planned[c]} of {cfg['local_epochs']} epochs"}
                for c in sorted(set(planned) - set(epochs))
            ]
            state = aggregate_round(cell_dir, rnd, global_ref, results, failures, return_state=True)
            agg = state.result()
            if state.name == "Cached" and not steps.ref_ok(env.blobs, agg["global"]):  # stale: recompute
                agg = aggregate_round.with_options(refresh_cache=True)(cell_dir, rnd, global_ref, results, failures)
            failed = agg["failures"]
            decision = rt.policy.decide(len(selection.clients) - len(failed), len(selection.clients))
            if decision == "fail":
                raise rt.policy.failure(round=rnd, ok=len(selection.clients) - len(failed), selected=len(selection.clients))
            new_ref = agg["global"] if decision == "aggregate" else global_ref
            evaluated = time.perf_counter()
            evaluation = evaluate_round(cell_dir, rnd, new_ref)
            evaluated = time.perf_counter() - evaluated
            params, server_state = steps.read_global(env.blobs, new_ref)
            waited = committer.drain()
            history.append({
                "round": rnd, **evaluation,
                "train_loss": _mean_loss(results),
                "clients_selected": len(selection.clients),
                "clients_ok": len(selection.clients) - len(failed),
                "clients_failed": len(failed),
                "clients_unavailable": rt.num_clients - len(available),
                "skipped": float(decision == "skip"),
                "tasks_reused": reused,
                "parallel_clients": parallel,
                **failure_metrics(failed, results),
                "round_seconds": time.perf_counter() - tick,
                "train_seconds": trained,
                "eval_seconds": evaluated,
                "checkpoint_wait_seconds": waited,
                "rss_mb": rss_mb(),
            })
            committer.submit(rnd, new_ref, {"selection": selection_state}, {"round": rnd, "history": list(history)})
            bar.set_postfix(acc=f"{evaluation['accuracy']:.3f}", failed=len(failed))
            bar.update(1)
        committer.finish()
    except (MemoryLimitReached, StopRequested) as stop:
        # Not a crash: everything up to the last round is committed and re-running resumes.
        log.log(logging.WARNING if isinstance(stop, MemoryLimitReached) else logging.INFO, "%s: %s", name, stop)
        if run_id:
            track.finish_run(uri, run_id, "KILLED", {}, {})
        return {"cell": name, "status": "STOPPED", "rounds": len(history), "message": str(stop)}
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
