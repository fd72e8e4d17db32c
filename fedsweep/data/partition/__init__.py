"""Partitions: one sorted int64 index tensor per client, covering the training set (see data/base.py)."""
