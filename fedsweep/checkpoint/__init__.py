"""Persisting state without ever losing or trusting it blindly: atomic storage, manifest-committed
round checkpoints (last-K, sha256-verified, never unpickled), verified intermediate blobs, and a
background writer with back-pressure. See each module's docstring for its rules.
"""
