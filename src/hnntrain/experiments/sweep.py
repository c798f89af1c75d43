"""Sweeps: a grid over config fields, run locally or on a Dask cluster, committed to a store.

A sweep file is TOML::

    [sweep]
    name = "nl-scan"                     # optional; default: the file name
    seeds = 3                            # optional; replicas per run (train.replicas)

    [base]                               # every run: "dotted.key" = value
    "device.preset" = "abrupt-ltd"
    "train.samples" = 20000

    [grid]                               # the runs are the product of these lists
    "scheme" = ["sgd", "crus", "crus:accumulate=true"]   # scheme specs, as in `compare`
    "device.nl_ltd" = [1, 2, 4, 6, 8]

Seeds are packed into ensembles: the replicas of a run train in lockstep in
one process, so ``seeds = 3`` costs far less than three runs. A run is one resolved config; its
identity in the store is the config hash, so a restarted sweep skips what is stored, and the
numbers of a run depend on its config only, never on the executor, the worker or the order.

Executors: in-process (``workers = 1``), a local process pool (``workers > 1``, the default
uses every core), or a Dask cluster (``scheduler`` = an address like ``tcp://host:8786``, or
``local`` for a ``LocalCluster`` of ``workers`` processes on this machine). Only the client
writes the store, one transaction per finished run; workers write checkpoints under
``runs_dir/<config hash>/``, so a run that was in flight when a sweep stopped continues from
its last checkpoint when the sweep is started again.
"""

from __future__ import annotations

import functools
import itertools
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from hnntrain.experiments.store import ResultStore
from hnntrain.io.resolve import build_config, flatten
from hnntrain.spec.config import ConfigError

SCHEME_KEY = "scheme"
"""Grid key whose values are scheme specs (``name`` or ``name:option=value,...``)."""


@dataclass(frozen=True)
class SweepRun:
    """One planned run: its grid values, the full dotted config and the config hash."""

    index: int
    point: dict[str, Any]
    values: dict[str, Any]
    config_hash: str

    @property
    def label(self) -> str:
        return " ".join(f"{k}={_show(v)}" for k, v in self.point.items()) or "base"


@dataclass(frozen=True)
class Sweep:
    name: str
    base: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    source: str = "<memory>"

    def runs(self) -> list[SweepRun]:
        """Every run of the grid, validated, in grid order; points that resolve to the same
        config (for example an option a scheme ignores) appear once."""
        from hnntrain.experiments.compare import parse_scheme_spec
        from hnntrain.spec.config import config_hash

        runs: list[SweepRun] = []
        seen: set[str] = set()
        keys = list(self.grid)
        for combo in itertools.product(*(self.grid[k] for k in keys)):
            point = dict(zip(keys, combo))
            values = dict(self.base)
            try:
                for key, value in point.items():
                    values.update(parse_scheme_spec(str(value)) if key == SCHEME_KEY else {key: value})
                cfg = build_config(values)
            except ConfigError as err:
                where = ", ".join(f"{k}={_show(v)}" for k, v in point.items())
                raise ConfigError(f"{self.source}: run ({where}) {err.key}", str(err).split(": ", 1)[-1]) from None
            digest = config_hash(cfg)
            if digest not in seen:
                seen.add(digest)
                runs.append(SweepRun(len(runs), point, values, digest))
        return runs


def _show(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file; errors name the file and the table or key."""
    from hnntrain.io.resolve import tomllib

    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), "sweep file not found; pass a .toml file with [base] and [grid] tables")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(path), f"not valid TOML ({err})") from None
    unknown = set(data) - {"sweep", "base", "grid"}
    if unknown:
        raise ConfigError(f"{path}: {sorted(unknown)[0]}", "unknown table; a sweep file has [sweep], [base] and [grid]")
    for table in ("sweep", "base", "grid"):
        if not isinstance(data.get(table, {}), dict):
            raise ConfigError(f"{path}: {table}", f"must be a table ([{table}] with key = value lines), "
                                                  f"got {data[table]!r}")
    meta = data.get("sweep", {})
    for key in set(meta) - {"name", "seeds"}:
        raise ConfigError(f"{path}: sweep.{key}", "unknown key; [sweep] takes name and seeds")
    base = flatten(data.get("base", {}))
    if "seeds" in meta:
        seeds = meta["seeds"]
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise ConfigError(f"{path}: sweep.seeds", f"expected an integer >= 1 (replicas per run), got {seeds!r}")
        base["train.replicas"] = seeds
    grid: dict[str, list[Any]] = {}
    for key, values in _grid_items(data.get("grid", {})):
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: grid.{key}", f"expected a non-empty list of values, e.g. [1, 2, 3]; got {values!r}")
        grid[key] = values
    name = meta.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}: sweep.name", "expected a non-empty string")
    return Sweep(name=name, base=base, grid=grid, source=str(path))


def _grid_items(table: dict) -> Iterator[tuple[str, Any]]:
    for key, value in table.items():
        if isinstance(value, dict):  # unquoted dotted keys: [grid] device.nl_ltd = [...]
            for sub, inner in _grid_items(value):
                yield f"{key}.{sub}", inner
        else:
            yield key, value


# -- execution -----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def _datasets(data_dir: str | None):
    from hnntrain.engine.run import load_datasets

    return load_datasets(build_config({"data.dir": data_dir} if data_dir else {}))


def train_task(values: dict[str, Any], run_dir: str) -> dict:
    """Train one run in this process (a pool or Dask worker) and return its result. Resumes from
    ``run_dir``'s checkpoint when an earlier attempt left one."""
    from hnntrain.engine.run import run

    cfg = build_config(values)
    return run(cfg, run_dir, resume=True, datasets=_datasets(cfg.data.dir))


def _failed_result(values: dict[str, Any], error: str) -> dict:
    from hnntrain.engine.run import build_result

    return build_result(build_config(values), None, "failed", error)


class _Inline:
    """Runs tasks in the calling process, one at a time, as they are asked for."""

    def __init__(self):
        self._queue: list[tuple[Future, Callable, tuple]] = []

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        self._queue.append((future, fn, args))
        return future

    def completed(self, futures) -> Iterator[Future]:
        for future, fn, args in self._queue:
            future.set_running_or_notify_cancel()
            try:
                future.set_result(fn(*args))
            except KeyboardInterrupt:
                raise
            except BaseException as err:  # noqa: BLE001 - reported as a failed run
                future.set_exception(err)
            yield future

    def stop(self) -> None:
        self._queue.clear()


class _Pool:
    """A local process pool. Workers are spawned (not forked: torch's thread pools do not
    survive a fork) and each uses one thread: at batch 1 one thread per run is fastest, and
    processes, not threads, are what scale a sweep on a small machine."""

    def __init__(self, workers: int):
        import multiprocessing

        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_worker_init)

    def submit(self, fn, *args) -> Future:
        return self._pool.submit(fn, *args)

    def completed(self, futures) -> Iterator[Future]:
        return as_completed(futures)

    def stop(self) -> None:
        # SIGTERM makes a worker's run write its checkpoint before it exits (see train.run)
        for process in list(getattr(self._pool, "_processes", {}).values()):
            if process.is_alive():
                process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _worker_init() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(1)


class _Dask:
    """A Dask cluster: an existing scheduler, or a LocalCluster of ``workers`` processes."""

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

    def completed(self, futures) -> Iterator:
        from distributed import as_completed as dask_completed

        return dask_completed(list(futures))

    def stop(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


@dataclass
class SweepOutcome:
    total: int
    skipped: int
    finished: int = 0
    failed: int = 0
    lost: list[str] = field(default_factory=list)
    """Labels of runs whose worker died; they are not stored and run again next time."""


def plan(sweep: Sweep, store: ResultStore, retry_failed: bool = False) -> tuple[list[SweepRun], list[SweepRun]]:
    """(runs to do, runs already stored). Failed runs count as stored unless ``retry_failed``."""
    runs = sweep.runs()
    stored = store.statuses(r.config_hash for r in runs)
    done = [r for r in runs if r.config_hash in stored and not (retry_failed and stored[r.config_hash] == "failed")]
    done_hashes = {r.config_hash for r in done}
    return [r for r in runs if r.config_hash not in done_hashes], done


def execute(sweep: Sweep, store: ResultStore, workers: int | None = None, scheduler: str | None = None,
            runs_dir: str | Path | None = None, retry_failed: bool = False,
            on_start: Callable[[int, int, int], None] | None = None,
            on_finish: Callable[[SweepRun, dict | None, str | None], None] | None = None) -> SweepOutcome:
    """Run every run of ``sweep`` that ``store`` does not hold yet and commit each as it ends.

    ``on_start(total, skipped, todo)`` is called once; ``on_finish(run, result, lost)`` after each
    run (``result`` None and ``lost`` a reason when its worker died). Ctrl-C or SIGTERM stops
    the workers (their runs checkpoint) and re-raises KeyboardInterrupt; everything already
    committed stays.
    """
    todo, done = plan(sweep, store, retry_failed)
    outcome = SweepOutcome(total=len(todo) + len(done), skipped=len(done))
    if on_start:
        on_start(outcome.total, outcome.skipped, len(todo))
    if not todo:
        return outcome
    workers = workers or os.cpu_count() or 1
    runs_root = Path(runs_dir) if runs_dir else store.path.with_suffix(".runs")
    runs_root.mkdir(parents=True, exist_ok=True)
    if scheduler:
        executor: Any = _Dask(scheduler, workers)
    elif workers == 1 or len(todo) == 1:
        executor = _Inline()
    else:
        executor = _Pool(min(workers, len(todo)))

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    from hnntrain.engine.run import main_thread

    previous = signal.signal(signal.SIGTERM, on_signal) if main_thread() else None
    try:
        futures = {executor.submit(train_task, run.values, str(runs_root / run.config_hash)): run for run in todo}
        for future in executor.completed(futures):
            run = futures[future]
            try:
                result = future.result()
            except KeyboardInterrupt:
                raise
            except BrokenProcessPool as err:
                outcome.lost.append(run.label)
                if on_finish:
                    on_finish(run, None, f"worker process died ({err})")
                continue
            except Exception as err:  # noqa: BLE001 - a run that raised is a failed run, not a dead sweep
                if _is_lost_worker(err):
                    outcome.lost.append(run.label)
                    if on_finish:
                        on_finish(run, None, f"worker died ({type(err).__name__})")
                    continue
                result = _failed_result(run.values, f"{type(err).__name__}: {err}")
            store.record(result, sweep.name)
            if result["status"] == "ok":
                outcome.finished += 1
                checkpoint = runs_root / run.config_hash / "checkpoint.pt"
                checkpoint.unlink(missing_ok=True)  # the stored row is the record now
            else:
                outcome.failed += 1
            if on_finish:
                on_finish(run, result, None)
    except KeyboardInterrupt:
        executor.stop()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    executor.stop()
    return outcome


def _is_lost_worker(err: BaseException) -> bool:
    """Dask's KilledWorker (a worker died running the task) is lost work, not a failed run."""
    return type(err).__name__ in ("KilledWorker", "CommClosedError", "FutureCancelledError", "CancelledError")

