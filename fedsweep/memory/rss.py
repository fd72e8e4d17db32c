"""Resident memory of this process and its children, for per-round logging."""

import psutil


def rss_mb() -> float:
    """RSS of this process plus its live children, in MiB."""
    proc = psutil.Process()
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:  # a child that exited meanwhile
            continue
    return total / 2**20
