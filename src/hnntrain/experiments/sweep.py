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
writes the store, one transaction per finished run; runs write checkpoints next to the store
(``runs/nl-scan.runs/<config hash>/checkpoint.pt`` for ``runs/nl-scan.sqlite``), so a run that
was in flight when a sweep stopped continues from its checkpoint when the sweep is started
again. Where runs execute and how they stop: :mod:`hnntrain.experiments.executors`.
"""

from __future__ import annotations

import itertools
import os
import signal
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from hnntrain.experiments.executors import is_lost_worker, make_executor, train_task
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
    points: tuple[dict[str, Any], ...] = ()
    """Explicit points, run instead of the product of ``grid`` when given: a search that is not
    a product (the trials of ``hnntrain tune``). Same keys and values as a grid point."""

    def _points(self) -> Iterator[dict[str, Any]]:
        if self.points:
            yield from self.points
            return
        keys = list(self.grid)
        for combo in itertools.product(*(self.grid[k] for k in keys)):
            yield dict(zip(keys, combo))

    def runs(self) -> list[SweepRun]:
        """Every run of the grid (or of ``points``), validated, in order; points that resolve
        to the same config (for example an option a scheme ignores) appear once."""
        from hnntrain.spec.config import config_hash

        runs: list[SweepRun] = []
        seen: set[str] = set()
        for point in self._points():
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


def parse_scheme_spec(spec: str) -> dict[str, Any]:
    """``name`` or ``name:key=value,key=value`` -> ``scheme.*`` config values, so one sweep or
    comparison can hold variants of a scheme (``crus:accumulate=true``)."""
    from hnntrain.io.resolve import parse_value

    name, _, options = spec.partition(":")
    values: dict[str, Any] = {"scheme.name": name.strip()}
    for item in filter(None, (o.strip() for o in options.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"scheme {spec!r}", "options are key=value, e.g. crus:accumulate=true")
        values[f"scheme.{key.strip()}"] = parse_value(value.strip())
    return values


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

def _failed_result(values: dict[str, Any], error: str) -> dict:
    from hnntrain.engine.run import build_result

    return build_result(build_config(values), None, "failed", error)


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


def runs_folder(store: ResultStore) -> Path:
    """Where a sweep's runs keep their checkpoints: ``runs/nl-scan.runs/`` for the store
    ``runs/nl-scan.sqlite`` (one folder per config hash)."""
    return store.path.with_suffix(".runs")


def execute(sweep: Sweep, store: ResultStore, workers: int | None = None, scheduler: str | None = None,
            runs_dir: str | Path | None = None, retry_failed: bool = False,
            on_start: Callable[[int, int, int], None] | None = None,
            on_finish: Callable[[SweepRun, dict | None, str | None], None] | None = None,
            on_progress: Callable[[SweepRun, int, int, int, float], None] | None = None,
            on_epoch: Callable[[SweepRun, dict], None] | None = None,
            run_dir: Callable[[SweepRun], Path] | None = None) -> SweepOutcome:
    """Run every run of ``sweep`` that ``store`` does not hold yet and commit each as it ends.

    ``on_start(total, skipped, todo)`` is called once; ``on_finish(run, result, lost)`` after each
    run (``result`` None and ``lost`` a reason when its worker died); ``on_progress(run, epoch,
    done, total, loss)`` and ``on_epoch(run, record)`` while runs train (not on Dask). A run
    trains in ``run_dir(run)`` (default: ``runs_dir/<config hash>``, ``runs_dir`` defaulting to
    :func:`runs_folder`). Ctrl-C or SIGTERM stops the workers after their current update (their
    runs checkpoint) and re-raises KeyboardInterrupt; everything already committed stays.
    """
    todo, done = plan(sweep, store, retry_failed)
    outcome = SweepOutcome(total=len(todo) + len(done), skipped=len(done))
    if on_start:
        on_start(outcome.total, outcome.skipped, len(todo))
    if not todo:
        return outcome
    workers = workers or os.cpu_count() or 1
    runs_root = Path(runs_dir) if runs_dir else runs_folder(store)
    folders = {run.config_hash: run_dir(run) if run_dir else runs_root / run.config_hash for run in todo}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    by_key = {run.config_hash: run for run in todo}
    executor = make_executor(scheduler, workers, len(todo))

    def report(kind: str, key: str, payload: Any) -> None:
        if kind == "progress" and on_progress:
            on_progress(by_key[key], *payload)
        elif kind == "epoch" and on_epoch:
            on_epoch(by_key[key], payload)

    hooks: tuple = ()
    if executor.local:  # in-process runs call back directly
        hooks = (lambda key, *p: report("progress", key, p), lambda key, record: report("epoch", key, record))

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    from hnntrain.engine.run import main_thread

    previous = signal.signal(signal.SIGTERM, on_signal) if main_thread() else None
    try:
        futures = {executor.submit(train_task, run.values, str(folders[run.config_hash]), run.config_hash, *hooks): run
                   for run in todo}
        for future in executor.completed(futures, poll=lambda: executor.drain(report)):
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
                if is_lost_worker(err):
                    outcome.lost.append(run.label)
                    if on_finish:
                        on_finish(run, None, f"worker died ({type(err).__name__})")
                    continue
                result = _failed_result(run.values, f"{type(err).__name__}: {err}")
            store.record(result, sweep.name)
            if result["status"] == "ok":
                outcome.finished += 1
                (folders[run.config_hash] / "checkpoint.pt").unlink(missing_ok=True)  # the stored row is the record
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
