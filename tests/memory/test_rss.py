"""process_tree_rss: a child's own memory counts, memory it shares with this process does not twice."""

import subprocess
import sys
import time

import torch

from fedsweep.memory.rss import process_tree_rss
from fedsweep.workers import WorkerPool

MB = 2**20


def _settle(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_childs_own_memory_is_counted() -> None:
    # Prepare
    before = process_tree_rss()
    # Execute: a child that touches 300 MB of its own
    child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(300 * 2**20); time.sleep(60)"])
    try:
        # Assert
        assert _settle(lambda: process_tree_rss() - before > 250 * MB)
    finally:
        child.kill()
        child.wait()


def touch(tensor: torch.Tensor) -> float:
    return float(tensor.sum())  # reads every page of the shared tensor


def test_data_shared_with_workers_is_not_counted_once_per_worker() -> None:
    # Prepare: 200 MB in this process, then mapped by two workers
    data = torch.ones(50 * MB)  # 200 MB of float32
    pool = WorkerPool(2, torch_threads=1)
    try:
        baseline = process_tree_rss()
        # Execute
        for _ in range(4):
            assert pool.call(touch, data) == float(50 * MB)
        # Assert: far less than one more copy per worker
        assert process_tree_rss() - baseline < 100 * MB
    finally:
        pool.close()
