"""Weights serialisation and hashing (fedsweep/weights.py)."""

import hashlib

import torch

from fedsweep.weights import from_bytes, meta_of, to_bytes, weights_sha256


def _params() -> dict[str, torch.Tensor]:
    return {"z.weight": torch.arange(6.0).reshape(2, 3), "a.bias": torch.tensor([1, 2], dtype=torch.int64)}


def test_bytes_are_identical_for_identical_inputs_whatever_the_meta_size() -> None:
    # Prepare: several meta keys (safetensors' header map has no stable order of its own)
    meta = {f"k{i}": i for i in range(20)}
    # Execute
    digests = {hashlib.sha256(to_bytes(_params(), meta)).hexdigest() for _ in range(20)}
    # Assert
    assert len(digests) == 1


def test_round_trip_keeps_values_dtypes_key_order_and_meta() -> None:
    data = to_bytes(_params(), {"loss": 0.5})
    back = from_bytes(data)
    assert list(back) == ["z.weight", "a.bias"]
    assert all(torch.equal(back[k], v) and back[k].dtype == v.dtype for k, v in _params().items())
    assert meta_of(data) == {"loss": 0.5}


def test_weights_sha256_is_over_tensor_bytes_in_key_order() -> None:
    # Prepare
    params = _params()
    expected = hashlib.sha256()
    for v in params.values():
        expected.update(v.contiguous().numpy().tobytes())
    # Execute / Assert
    assert weights_sha256(params) == expected.hexdigest()
    assert weights_sha256(dict(reversed(list(params.items())))) != expected.hexdigest()
