"""Model weights as flat `dict[str, Tensor]`: hashing, copying and safe (de)serialisation.

Weights are stored as safetensors, which cannot carry code: loading never unpickles anything.
"""

import hashlib
import json
import struct

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

Params = dict[str, torch.Tensor]


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


def to_bytes(params: Params, metadata: dict[str, str] | None = None) -> bytes:
    """safetensors bytes; key order is recorded in the metadata so that it survives a round trip."""
    meta = dict(metadata or {})
    meta["__order__"] = "\x1f".join(params)
    return st_save({k: v.detach().to("cpu").contiguous() for k, v in params.items()}, metadata=meta)


def from_bytes(data: bytes) -> Params:
    """Parameters from safetensors bytes, in the order they were saved."""
    loaded = st_load(data)
    order = _order(data)
    return {k: loaded[k] for k in order} if order else loaded


def _order(data: bytes) -> list[str]:
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    text = header.get("__metadata__", {}).get("__order__", "")
    return text.split("\x1f") if text else []
