"""The IDX file format of MNIST and Fashion-MNIST, read plain or gzipped, never written.

LeCun et al., http://yann.lecun.com/exdb/mnist/ ("FILE FORMATS FOR THE MNIST DATABASE"); Xiao et
al., Fashion-MNIST, https://arxiv.org/abs/1708.07747, uses the same files. A file is:

    2 zero bytes | type code (0x08 = unsigned byte) | number of dimensions d
    d big-endian uint32 sizes | the values, row-major

Datasets are distributed gzipped (`train-images-idx3-ubyte.gz`, Debian's `dataset-fashion-mnist`
package installs them so under /usr/share/datasets/fashion-mnist/), while torchvision's readers
want them uncompressed under `<root>/<Class>/raw/`. `find_idx_files` accepts both the flat folder
and torchvision's layout, `.gz` or plain; `read_idx` decompresses in memory, so the user's dataset
folder is only ever read. Only unsigned-byte files exist for these datasets, so only type 0x08 is
read; anything else, a truncated or undecompressable file, is `IdxError` with the file's path.
"""

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

UBYTE = 0x08
SUFFIXES = ("", ".gz")  # plain first: torchvision's download leaves both, plain is faster


class IdxError(ValueError):
    """A file is not a readable unsigned-byte IDX file; the message names it and says why."""


def read_idx(path: Path) -> np.ndarray:
    """The uint8 array stored in an IDX file (gzipped if its name ends in .gz)."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise IdxError(f"{path}: cannot be read ({err})") from None
    if len(data) < 4 or data[0] or data[1] or data[2] != UBYTE:
        raise IdxError(f"{path}: not an unsigned-byte IDX file (bad header)")
    ndim = data[3]
    start = 4 + 4 * ndim
    if ndim == 0 or len(data) < start:
        raise IdxError(f"{path}: not an unsigned-byte IDX file (bad header)")
    shape = struct.unpack(f">{ndim}I", data[4:start])
    if len(data) - start != math.prod(shape):
        raise IdxError(f"{path}: {len(data) - start} bytes of values for shape {shape}: truncated or corrupt")
    # A copy: torch cannot share a read-only buffer (bytes) without a warning.
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(shape).copy()


def find_idx_files(folders: list[Path], names: list[str]) -> tuple[dict[str, Path], Path]:
    """Each of `names` found in one of `folders` (plain or .gz) and the folder they were looked for in.

    The folder is the first that holds any of the names (so a half-copied torchvision layout is
    reported as such), or else the first folder; the dict lacks the names that are not there.
    """

    def found_in(folder: Path) -> dict[str, Path]:
        hits = {}
        for name in names:
            for suffix in SUFFIXES:
                if (folder / f"{name}{suffix}").is_file():
                    hits[name] = folder / f"{name}{suffix}"
                    break
        return hits

    for folder in folders:
        hits = found_in(folder)
        if hits:
            return hits, folder
    return {}, folders[0]
