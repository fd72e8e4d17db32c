"""Resident memory of this process and its children, for per-round logging and the memory guard.

A child's pages shared with others (libraries, and the dataset the workers map from shared memory)
are counted once, in this process: a child adds only its own pages (RSS minus shared), so the
figure grows with the data and the models, not with the number of worker processes.
"""

import psutil


def process_tree_rss() -> int:
    """RSS of this process plus the unshared RSS of its live children, in bytes."""
    proc = psutil.Process()
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            info = child.memory_info()
        except psutil.Error:  # a child that exited meanwhile
            continue
        total += info.rss - info.shared
    return total


def rss_mb() -> float:
    """`process_tree_rss` in MiB."""
    return process_tree_rss() / 2**20
