"""Model weights as flat `dict[str, Tensor]`: hashing and safe (de)serialisation.

Weights are stored as safetensors, which cannot carry code: loading never unpickles anything.
Bytes are deterministic: the same tensors and meta always give the same bytes (and sha256), which
is what lets a recomputed result be recognised as the same. safetensors keeps header metadata in a
hash map whose order varies between calls, so everything fedsweep stores there (key order, small
JSON meta) goes into a single entry.
"""

import hashlib
import json
import struct
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

Params = dict[str, torch.Tensor]
_HEADER_KEY = "fedsweep"


def state_of(model: torch.nn.Module) -> Params:
    """A detached CPU copy of the model's state_dict, in key order."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def weights_sha256(params: Params) -> str:
    """sha256 over the tensors' contiguous bytes, in key order (the `final_weights_sha256` tag)."""
    digest = hashlib.sha256()
    for value in params.values():
        tensor = value.detach().to("cpu").contiguous()
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def to_bytes(params: Params, meta: dict[str, Any] | None = None) -> bytes:
    """safetensors bytes recording key order and a small JSON-able `meta`."""
    header = json.dumps({"order": list(params), "meta": meta or {}}, sort_keys=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in params.items()}
    return st_save(tensors, metadata={_HEADER_KEY: header})


def from_bytes(data: bytes) -> Params:
    """Parameters from safetensors bytes, in the order they were saved."""
    loaded = st_load(data)
    order = _header(data).get("order")
    return {k: loaded[k] for k in order} if order else loaded


def meta_of(data: bytes) -> dict[str, Any]:
    """The `meta` stored by `to_bytes` ({} for foreign files)."""
    return _header(data).get("meta", {})


def _header(data: bytes) -> dict[str, Any]:
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    return json.loads(header.get("__metadata__", {}).get(_HEADER_KEY, "{}"))
