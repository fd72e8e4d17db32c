"""Fixtures for the checkpoint tests: both storage backends, a clean memory filesystem, sample state."""

import uuid
from collections.abc import Callable, Iterator

import pytest
import torch
from fsspec.implementations.memory import MemoryFileSystem

from fedsweep.checkpoint.storage import FsspecStorage, LocalStorage, Storage
from fedsweep.weights import Params


@pytest.fixture(autouse=True)
def clean_memory_fs() -> Iterator[None]:
    # MemoryFileSystem keeps its files in class attributes: shared by every test in the process.
    MemoryFileSystem.store.clear()
    MemoryFileSystem.pseudo_dirs[:] = [""]
    yield
    MemoryFileSystem.store.clear()
    MemoryFileSystem.pseudo_dirs[:] = [""]


@pytest.fixture(params=["local", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "ckpt")
    return FsspecStorage(f"memory://ckpt-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def make_state() -> Callable[[int], dict[str, Params]]:
    """Tensor groups like the runner saves: model, server state, per-client state; mixed dtypes."""

    def make(seed: int) -> dict[str, Params]:
        g = torch.Generator().manual_seed(seed)
        return {
            "model": {
                "conv.weight": torch.randn(4, 3, 3, 3, generator=g),
                "conv.bias": torch.randn(4, generator=g).half(),
                "bn.num_batches_tracked": torch.tensor(seed, dtype=torch.int64),
                "fc.weight": torch.randn(2, 8, generator=g).to(torch.bfloat16),
                "mask": torch.rand(5, generator=g) > 0.5,
                "empty": torch.zeros(0, 3),
            },
            "server_state": {"c": torch.randn(3, generator=g, dtype=torch.float64)},
            "client_state/0": {"c_i": torch.randn(3, generator=g)},
        }

    return make
