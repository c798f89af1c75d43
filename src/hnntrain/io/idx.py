"""IDX datasets (MNIST layout): parsing and writing IDX files, and loading a directory of them
as tensors.

IDX format: two zero bytes, a type-code byte, a dimension-count byte, then each dimension as
a big-endian uint32, then the payload in big-endian order. Files may be gzip-compressed.
Fetching MNIST itself is :mod:`hnntrain.io.data`.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

GZIP_MAGIC = b"\x1f\x8b"

ENV_VAR = "HNNTRAIN_DATA"
"""Environment variable naming a directory of MNIST-layout IDX files."""

# IDX type code -> dtype of the payload as stored (big-endian).
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# (kind, itemsize) -> type code, so write_idx accepts arrays in either byte order.
_IDX_CODES: dict[tuple[str, int], int] = {(dt.kind, dt.itemsize): code for code, dt in _IDX_DTYPES.items()}

_SPLIT_PREFIXES = {"train": "train", "test": "t10k", "t10k": "t10k"}


class DataError(ValueError):
    """A dataset file or directory is missing or malformed, or MNIST could not be fetched."""


# --------------------------------------------------------------------------------------------
# IDX reading and writing
# --------------------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw or gzip, detected by magic bytes) into a native-endian array.

    Raises :class:`DataError` naming the file for anything that is not a well-formed IDX file,
    including trailing bytes beyond what the header promises.
    """
    path = Path(path)
    blob = _read_bytes(path)
    if blob[:2] == GZIP_MAGIC:
        blob = _gunzip(blob, path)
    return _parse_idx(blob, path)


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file, atomically; gzip it if ``compress`` (default: name ends .gz)."""
    path = Path(path)
    array = np.asarray(array)
    code = _IDX_CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        supported = ", ".join(str(_IDX_DTYPES[c].newbyteorder("=")) for c in _IDX_DTYPES)
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use one of {supported}")
    if array.ndim > 255 or any(d >= 2**32 for d in array.shape):
        raise ValueError(f"IDX cannot store shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    blob = header + np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        blob = gzip.compress(blob)
    with atomic_writer(path) as out:
        out.write(blob)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check the path or fetch the dataset again") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an IDX file; pass the file itself") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror}); check its permissions") from None


def _gunzip(blob: bytes, path: Path) -> bytes:
    try:
        return gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip data ({exc}); delete it and fetch it again") from None


def _parse_idx(blob: bytes, path: Path) -> np.ndarray:
    if len(blob) < 4:
        raise DataError(f"{path}: only {len(blob)} bytes, too short for an IDX header; fetch it again")
    zero_a, zero_b, type_code, ndim = blob[:4]
    if zero_a or zero_b:
        raise DataError(
            f"{path}: not an IDX file (starts {blob[:4].hex(' ')}, expected 00 00 <type> <ndim>); "
            "check that this is the right file"
        )
    dtype = _IDX_DTYPES.get(type_code)
    if dtype is None:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise DataError(f"{path}: unknown IDX type code 0x{type_code:02X} (known: {known}); file is corrupt")
    header_size = 4 + 4 * ndim
    if len(blob) < header_size:
        raise DataError(f"{path}: truncated in its {ndim}-dimension header; delete it and fetch it again")
    shape = tuple(int(d) for d in np.frombuffer(blob, dtype=">u4", count=ndim, offset=4))
    count = math.prod(shape)
    expected, actual = count * dtype.itemsize, len(blob) - header_size
    if actual < expected:
        raise DataError(
            f"{path}: truncated: header promises {expected} data bytes for shape {shape} "
            f"but only {actual} are present; delete it and fetch it again"
        )
    if actual > expected:
        raise DataError(
            f"{path}: has {actual - expected} extra bytes after the {expected} data bytes its "
            f"header promises for shape {shape}; the file is corrupt, fetch it again"
        )
    payload = np.frombuffer(blob, dtype=dtype, count=count, offset=header_size)
    # astype copies: the result is writable (torch.from_numpy wants that) and native-endian.
    return payload.astype(dtype.newbyteorder("=")).reshape(shape)


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Dataset:
    """Flattened images and their class labels.

    ``images``: float32, shape (N, rows*cols), values in [0, 1].
    ``labels``: int64, shape (N,).
    ``image_shape``: (rows, cols) before flattening, when known.
    """

    images: torch.Tensor
    labels: torch.Tensor
    image_shape: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 2 or self.labels.ndim != 1:
            raise ValueError(
                f"Dataset wants images (N, features) and labels (N,), got "
                f"{tuple(self.images.shape)} and {tuple(self.labels.shape)}"
            )
        if self.images.shape[0] != self.labels.shape[0]:
            raise ValueError(f"Dataset has {self.images.shape[0]} images but {self.labels.shape[0]} labels")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_features(self) -> int:
        """Inputs per sample (rows*cols)."""
        return int(self.images.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of classes: largest label + 1 (labels are 0-based); 0 for an empty set."""
        return int(self.labels.max()) + 1 if len(self) else 0


def load_idx_dir(
    directory: str | os.PathLike[str], split: str = "train", *, n_classes: int | None = None
) -> Dataset:
    """Load one split ("train" or "test") of an MNIST-layout IDX dataset from ``directory``.

    Looks for ``{train,t10k}-{images-idx3,labels-idx1}-ubyte``, also the dotted variant
    (``train-images.idx3-ubyte``) and either with ``.gz``, so Fashion-MNIST and other
    MNIST-like sets load unchanged. Pixels must be unsigned bytes; they are scaled by 1/255.
    Labels must be non-negative and, when ``n_classes`` is given, below it.
    """
    directory = Path(directory)
    images_path, labels_path = _find_split_files(directory, split)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    _check_images(images, images_path)
    _check_labels(labels, labels_path, n_classes)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{directory}: {images_path.name} has {images.shape[0]} images but {labels_path.name} "
            f"has {labels.shape[0]} labels; they come from different datasets or splits, fetch them again"
        )
    pixels = torch.from_numpy(images.reshape(images.shape[0], -1)).to(torch.float32).div_(255.0)
    return Dataset(
        images=pixels,
        labels=torch.from_numpy(labels.astype(np.int64, copy=False)),
        image_shape=(int(images.shape[1]), int(images.shape[2])),
    )


def _name_variants(canonical: str) -> list[str]:
    """Accepted spellings of an MNIST file name, in order of preference."""
    dotted = canonical.replace("-idx", ".idx", 1)
    return [canonical, dotted, canonical + ".gz", dotted + ".gz"]


def resolve_file(directory: Path, canonical: str) -> Path | None:
    for name in _name_variants(canonical):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _find_split_files(directory: Path, split: str) -> tuple[Path, Path]:
    prefix = _SPLIT_PREFIXES.get(split)
    if prefix is None:
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'")
    if not directory.is_dir():
        raise DataError(
            f"{directory}: data directory does not exist; check the path (data.dir / --data-dir), or "
            f"fetch MNIST into it with: hnntrain data fetch --data-dir {directory}"
        )
    found = []
    for canonical in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"):
        path = resolve_file(directory, canonical)
        if path is None:
            tried = ", ".join(_name_variants(canonical))
            raise DataError(
                f"{directory}: no {split} file found (looked for {tried}); place the MNIST-layout "
                f"IDX files there, or pass --data-dir DIR or set {ENV_VAR}=DIR"
            )
        found.append(path)
    return found[0], found[1]


def _check_images(images: np.ndarray, path: Path) -> None:
    if images.ndim != 3:
        raise DataError(
            f"{path}: expected 3-D images (count, rows, cols), got shape {images.shape}; "
            "is this an images file?"
        )
    if images.dtype != np.uint8:
        raise DataError(f"{path}: expected unsigned-byte pixels (IDX type 0x08), got {images.dtype}")


def _check_labels(labels: np.ndarray, path: Path, n_classes: int | None) -> None:
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(
            f"{path}: expected 1-D integer labels, got shape {labels.shape} of {labels.dtype}; "
            "is this a labels file?"
        )
    if labels.size == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise DataError(f"{path}: label {low} is negative; labels must be class indices 0..C-1")
    if n_classes is not None and high >= n_classes:
        raise DataError(f"{path}: label {high} out of range for {n_classes} classes; check the dataset")


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Write to a temp file beside ``path`` and move it into place only if the block succeeds."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp_name, 0o644)  # mkstemp makes 0600; data files should be shareable
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
