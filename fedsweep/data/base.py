"""The data contract.

Rules every dataset and partition follows:

- A dataset is loaded **once** into memory as tensors (`Split`: float32 features `x`, int64 labels
  `y`). Nothing is copied per client: a client is an int64 index tensor into `train`.
- Loading is deterministic: a dataset with randomness (Synthetic) draws only from generators seeded
  by its coordinates (`fedsweep.rng.generator(seed, ...)`), never from global RNG state.
- A dataset that has a natural per-device split (Synthetic, LEAF-style data) returns it as
  `natural`; others return `None`, and the `natural` partition then refuses with a clear error.
  Where each device also has its own test samples, `test_owner` gives the device of every test
  sample (int64, one per test sample), so that the `natural` partition's clients are evaluated one
  by one (fairness across clients); `None` where the test split is shared.
- Missing files raise `DatasetFilesMissing`, whose message is one line naming the path and how to
  get the files (`download=true` or copying them there). Nothing is downloaded unless
  `download=True`. `missing_files()` names them beforehand, by existence only, so that a sweep
  refuses to start (one line, exit 2) instead of failing in its first task.
- A partition returns a `ClientIndex` (fedsweep/data/clients.py): one int64 tensor of sample
  indices grouped by client plus offsets, a `Sequence` whose item c is client c's sorted int64 index
  tensor (a view, made when asked for), so a million clients cost 8 bytes each, not a million
  tensor objects; `sizes` gives every client's sample count at once. Together the clients cover
  every training sample exactly once (no sample lost, none duplicated), unless the partition says
  otherwise.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from fedsweep.data.clients import ClientIndex


class DatasetFilesMissing(FileNotFoundError):
    """Dataset files are absent; the message is one line naming the path."""


class PartitionError(ValueError):
    """A partition cannot be made for this dataset or configuration; the message says why."""


@dataclass(frozen=True)
class Split:
    """Features and labels held once in memory."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class LoadedData:
    """What a dataset's `load` returns."""

    train: Split
    test: Split
    num_classes: int
    natural: list[torch.Tensor] | None = None
    test_owner: torch.Tensor | None = None


class Dataset(ABC):
    """A dataset plug-in (`conf/dataset/*.yaml` instantiates a subclass with keyword arguments)."""

    @abstractmethod
    def load(self, *, num_clients: int, seed: int) -> LoadedData:
        """Load train and test splits as tensors; `num_clients` matters only to natural splits."""

    def missing_files(self) -> list[str]:
        """The files `load` would read that are absent (checked by name, never opened); none by default."""
        return []


class Partition(ABC):
    """A partition plug-in (`conf/partition/*.yaml`)."""

    @abstractmethod
    def split(
        self,
        *,
        labels: torch.Tensor,
        num_clients: int,
        natural: list[torch.Tensor] | None,
        generator: torch.Generator,
    ) -> ClientIndex:
        """One sorted int64 index tensor per client, as a `ClientIndex`."""
