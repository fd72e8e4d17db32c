"""Resident memory of this process and its children, for per-round logging and the memory guard."""

import psutil


def process_tree_rss() -> int:
    """RSS of this process and its live children, in bytes."""
    proc = psutil.Process()
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:  # a child that exited meanwhile
            continue
    return total


def rss_mb() -> float:
    """RSS of this process plus its live children, in MiB."""
    return process_tree_rss() / 2**20
