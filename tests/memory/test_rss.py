"""process_tree_rss: a child's own memory counts, memory it shares with this process does not twice.

Each case runs in a fresh interpreter, so that the process tree holds only what the case starts (the
test session's own children, e.g. a Prefect server, would move the figures).
"""

import subprocess
import sys
import textwrap

MB = 2**20


def _growth_mb(body: str) -> float:
    """Run `body` (which defines `work()`, maybe `cleanup()`) in a fresh interpreter; the growth of
    process_tree_rss across `work()`, in MB."""
    script = (
        textwrap.dedent("""
        from fedsweep.memory.rss import process_tree_rss
    """)
        + textwrap.dedent(body)
        + textwrap.dedent("""
        before = process_tree_rss()
        work()
        print("GROWTH", (process_tree_rss() - before) / 2**20, flush=True)
        globals().get("cleanup", lambda: None)()
    """)
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return float(out.stdout.split("GROWTH")[-1])


def test_a_childs_own_memory_is_counted() -> None:
    # Execute: a child that touches 300 MB of its own
    growth = _growth_mb("""
        import subprocess, sys, time
        def work():
            child = subprocess.Popen([sys.executable, "-c",
                                      "import sys, time; b = bytearray(300 * 2**20); "
                                      "print(1, flush=True); time.sleep(60)"],
                                     stdout=subprocess.PIPE)
            child.stdout.readline()
            time.sleep(0.5)
            global cleanup
            cleanup = child.kill
    """)
    # Assert
    assert growth > 250


def test_data_shared_with_workers_is_not_counted_once_per_worker() -> None:
    # Execute: 200 MB in this process, then read by two worker processes through shared memory
    growth = _growth_mb("""
        import torch
        from fedsweep.execution.workers import WorkerPool
        from tests.memory.test_rss import touch
        data = torch.ones(50 * 2**20)
        pool = WorkerPool(2, torch_threads=1)
        def work():
            for _ in range(4):
                assert pool.call(touch, data) == float(50 * 2**20)
    """)
    # Assert: far less than one more copy per worker (the old sum of RSS grew by ~420 MB here)
    assert growth < 100


def touch(tensor) -> float:
    return float(tensor.sum())  # reads every page of the shared tensor
