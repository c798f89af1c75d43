"""Where the runs of a sweep (or a comparison) execute, how they report progress, how they stop.

Three executors: in the calling process (:class:`Inline`), a local process pool
(:class:`Pool`), a Dask cluster (:class:`DaskCluster`). Each trains a run with
:func:`train_task`, which resumes from the run folder's checkpoint when one is there.

Stopping a pool: the terminal sends Ctrl-C's SIGINT to every process of the foreground group,
workers included, and the client then sends SIGTERM to every worker it still sees (so that a
client stopped by ``kill`` stops its workers too). A worker therefore treats the *first*
signal, whoever sends it, as "finish the current update, write the checkpoint, return", and
ignores a SIGTERM after it; only a second SIGINT (Ctrl-C pressed again) stops it at once.

Progress: pool workers put small messages on a queue the client drains while it waits;
in-process runs call the client's callbacks directly; Dask runs report only when they end.
"""

from __future__ import annotations

import functools
import os
import queue as queue_module
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterator

from hnntrain.io.resolve import build_config
from hnntrain.spec.config import ConfigError

ProgressHook = Callable[[str, int, int, int, float], None]
"""``progress(key, epoch, done, total, loss)``: ``done`` of ``total`` samples of ``epoch`` (0-based)."""
EpochHook = Callable[[str, dict], None]
"""``on_epoch(key, record)``: the epoch record of result.json, after each epoch of run ``key``."""

_REPORT_SECONDS = 0.5
"""A pool worker reports a run's progress at most this often (epoch ends always)."""


@functools.lru_cache(maxsize=2)
def _datasets(data_dir: str | None):
    from hnntrain.engine.run import load_datasets

    return load_datasets(build_config({"data.dir": data_dir} if data_dir else {}))


def check_data(runs) -> None:
    """Load every dataset the runs name, here and now: a missing or broken dataset is then one
    error before anything starts, not a failed run per worker (in-process runs reuse it)."""
    for data_dir in sorted({run.values.get("data.dir") or "" for run in runs}):
        _datasets(data_dir or None)


class _WorkerState:
    """The signals a pool worker received and its progress queue (one per worker process)."""

    signals: list[int] = []
    queue: Any = None


def _on_worker_signal(signum, frame) -> None:
    _WorkerState.signals.append(signum)
    if _WorkerState.signals.count(signal.SIGINT) > 1:  # Ctrl-C pressed twice: stop now
        raise KeyboardInterrupt


def _worker_init(progress_queue) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(1)
    _WorkerState.queue = progress_queue
    progress_queue.cancel_join_thread()  # exiting never waits on undelivered progress messages
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_worker_signal)


def _stop_requested() -> bool:
    return bool(_WorkerState.signals)


def _queue_hooks(key: str) -> tuple[Callable, Callable]:
    """Progress callbacks of a pool worker: throttled messages on the client's queue."""
    import time

    last = [0.0]

    def progress(epoch: int, done: int, total: int, loss: float) -> None:
        now = time.monotonic()
        if now - last[0] >= _REPORT_SECONDS or done == total:
            last[0] = now
            _WorkerState.queue.put(("progress", key, (epoch, done, total, loss)))

    def on_epoch(record: dict) -> None:
        _WorkerState.queue.put(("epoch", key, record))

    return progress, on_epoch


def train_task(values: dict[str, Any], run_dir: str, key: str = "",
               progress: ProgressHook | None = None, on_epoch: EpochHook | None = None) -> dict:
    """Train one run in this process and return its result; resumes from ``run_dir``'s
    checkpoint when an earlier attempt left one. In a pool worker, progress goes to the
    client's queue and the worker's signals stop the run (see the module docstring)."""
    from hnntrain.engine.run import run

    cfg = build_config(values)
    stop = None
    run_progress = run_epoch = None
    if _WorkerState.queue is not None:
        if _stop_requested():  # the sweep is stopping: do not start another run
            raise KeyboardInterrupt
        stop = _stop_requested
        run_progress, run_epoch = _queue_hooks(key)
    elif progress is not None or on_epoch is not None:
        run_progress = functools.partial(progress, key) if progress else None
        run_epoch = functools.partial(on_epoch, key) if on_epoch else None
    return run(cfg, run_dir, resume=True, datasets=_datasets(cfg.data.dir), progress=run_progress,
               on_epoch=run_epoch, stop=stop)


class Inline:
    """Runs tasks in the calling process, one at a time, as they are asked for."""

    local = True

    def __init__(self):
        self._queue: list[tuple[Future, Callable, tuple]] = []

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        self._queue.append((future, fn, args))
        return future

    def completed(self, futures, poll: Callable[[], None]) -> Iterator[Future]:
        for future, fn, args in self._queue:
            future.set_running_or_notify_cancel()
            try:
                future.set_result(fn(*args))
            except KeyboardInterrupt:
                raise
            except BaseException as err:  # noqa: BLE001 - reported as a failed run
                future.set_exception(err)
            yield future

    def drain(self, report: Callable[[str, str, Any], None]) -> None:
        """In-process runs report through their callbacks directly."""

    def stop(self) -> None:
        self._queue.clear()


class Pool:
    """A local process pool. Workers are spawned (not forked: torch's thread pools do not
    survive a fork) and each uses one thread: at batch 1 one thread per run is fastest, and
    processes, not threads, are what scale a sweep on a small machine."""

    local = False

    def __init__(self, workers: int):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._queue = context.Queue()
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                                         initargs=(self._queue,))

    def submit(self, fn, *args) -> Future:
        return self._pool.submit(fn, *args)

    def completed(self, futures, poll: Callable[[], None]) -> Iterator[Future]:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            poll()
            yield from done

    def drain(self, report: Callable[[str, str, Any], None]) -> None:
        while True:
            try:
                kind, key, payload = self._queue.get_nowait()
            except (queue_module.Empty, OSError, ValueError):
                return
            report(kind, key, payload)

    def _processes(self) -> list:
        return [p for p in list(getattr(self._pool, "_processes", {}).values()) if p.is_alive()]

    def stop(self) -> None:
        """Ask every worker to stop after its current update (SIGTERM; see the module
        docstring) and wait until each has written its checkpoint and exited. Ctrl-C while
        waiting kills them."""
        for process in self._processes():
            process.terminate()
        try:
            self._pool.shutdown(wait=True, cancel_futures=True)
        except KeyboardInterrupt:
            for process in self._processes():
                process.kill()
            raise


class DaskCluster:
    """A Dask cluster: an existing scheduler, or a LocalCluster of ``workers`` processes."""

    local = False

    def __init__(self, scheduler: str, workers: int):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("--scheduler", "Dask is not installed; pip install 'hnntrain[dask]' "
                                              "(or distributed), or run without --scheduler") from None
        self._cluster = None
        if scheduler == "local":
            self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None, env={"OMP_WAIT_POLICY": "PASSIVE"})
            self.client = Client(self._cluster)
        else:
            try:
                self.client = Client(scheduler, timeout="30s")
            except OSError as err:
                raise ConfigError("--scheduler", f"cannot reach the Dask scheduler at {scheduler!r} ({err}); "
                                                 "check the address, e.g. tcp://host:8786") from None

    def submit(self, fn, *args):
        # the key makes a resubmitted run (same config) the same task on the cluster
        return self.client.submit(fn, *args, key=f"hnntrain-run-{Path(args[1]).name}", pure=False, retries=1)

    def completed(self, futures, poll: Callable[[], None]) -> Iterator:
        from distributed import as_completed as dask_completed

        return dask_completed(list(futures))

    def drain(self, report: Callable[[str, str, Any], None]) -> None:
        """Dask runs report when they end only."""

    def stop(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(scheduler: str | None, workers: int, runs: int):
    """Dask when a scheduler is named, this process for one worker or one run, else a pool."""
    if scheduler:
        return DaskCluster(scheduler, workers)
    if workers == 1 or runs == 1:
        return Inline()
    return Pool(min(workers, runs))


def is_lost_worker(err: BaseException) -> bool:
    """Dask's KilledWorker (a worker died running the task) is lost work, not a failed run."""
    return type(err).__name__ in ("KilledWorker", "CommClosedError", "FutureCancelledError", "CancelledError")
