"""Datasets (loaded once as tensors) and partitions (clients are index sets)."""
