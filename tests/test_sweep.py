"""Sweeps and the results store: sweep-file parsing, the SQLite store (round trip, concurrent
writers), executor independence (in-process, process pool, Dask), kill/resume of the CLI, and the
``sweep``/``results`` commands. Everything runs on the tiny synthetic IDX data of conftest.
"""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hnntrain
from hnntrain.cli import app
from hnntrain.engine.run import build_result, run
from hnntrain.experiments.store import ResultStore, StoreError, runs_csv
from hnntrain.experiments.sweep import SweepRun, execute, load_sweep, plan
from hnntrain.io.resolve import build_config
from hnntrain.spec.config import ConfigError, config_hash

runner = CliRunner()

# Where `import hnntrain` comes from, for subprocesses and Dask workers (absolute, whatever the cwd).
PACKAGE_ROOT = str(Path(hnntrain.__file__).resolve().parents[1])

TINY = {"model.hidden": [8], "train.samples": 200, "train.test_samples": 200}


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def _sweep_file(path: Path, base: dict, grid: dict, **meta) -> Path:
    """A sweep file from dicts (quoted dotted keys; JSON literals are TOML literals here)."""
    lines = ["[sweep]", *(f"{k} = {json.dumps(v)}" for k, v in meta.items()), "", "[base]"]
    lines += [f'"{k}" = {json.dumps(v)}' for k, v in base.items()]
    lines += ["", "[grid]", *(f'"{k}" = {json.dumps(v)}' for k, v in grid.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def _tiny_base(data_dir: Path | None, **extra) -> dict:
    base = {**TINY, "device.preset": "abrupt-ltd", "train.lr": 0.05, **extra}
    if data_dir is not None:
        base["data.dir"] = str(data_dir)
    return base


def _fingerprint(result: dict) -> tuple:
    """Every number of a run that must not depend on the executor, the order or a restart
    (NaN as None, as the store keeps it, so that equal runs compare equal)."""
    def num(value):
        return None if value is None or not math.isfinite(value) else float(value)

    epochs = tuple((tuple(e["test_accuracy_replicas"]), num(e["train_loss"]), num(e["pulses"]["total"]),
                    num(e["update_noise"]["window1"]), num(e["update_noise"]["window"]), num(e["senses"]),
                    num(e["refreshes"]))
                   for e in result["epochs"])
    return num(result["test_accuracy"]), tuple(result["replicas"]), epochs


def _stored_fingerprints(store: ResultStore) -> dict[str, tuple]:
    return {r.config_hash: (_fingerprint(r.result), tuple(r.summary["replicas"]), r.test_accuracy)
            for r in store.runs()}


# -- sweep files --------------------------------------------------------------------------------

def test_sweep_file_grid_product_values_and_seeds(tmp_path):
    path = _write(tmp_path / "scan.toml", """
        [sweep]
        name = "nl-scan"
        seeds = 3

        [base]
        "train.samples" = 200
        "model.hidden" = [8]

        [base.device]
        preset = "abrupt-ltd"

        [base.train]
        test_samples = 100

        [grid]
        "scheme" = ["sgd", "crus:accumulate=true"]
        "device.nl_ltd" = [1, 4, 8]

        [grid.train]
        lr = [0.05, 0.1]
    """)
    sweep = load_sweep(path)
    assert sweep.name == "nl-scan"
    assert sweep.base["device.preset"] == "abrupt-ltd" and sweep.base["train.test_samples"] == 100
    assert sweep.base["train.replicas"] == 3
    assert list(sweep.grid) == ["scheme", "device.nl_ltd", "train.lr"]
    runs = sweep.runs()
    assert len(runs) == 2 * 3 * 2
    assert [r.index for r in runs] == list(range(12))
    assert len({r.config_hash for r in runs}) == 12
    # grid order: the first key varies slowest
    assert runs[0].point == {"scheme": "sgd", "device.nl_ltd": 1, "train.lr": 0.05}
    assert runs[1].point == {"scheme": "sgd", "device.nl_ltd": 1, "train.lr": 0.1}
    assert runs[-1].point == {"scheme": "crus:accumulate=true", "device.nl_ltd": 8, "train.lr": 0.1}
    seen = set()
    for r in runs:
        cfg = build_config(r.values)
        assert r.config_hash == config_hash(cfg)
        assert cfg.train.replicas == 3 and cfg.train.samples == 200 and cfg.train.test_samples == 100
        assert cfg.model.hidden == (8,) and cfg.device.preset == "abrupt-ltd"
        assert cfg.device.nl_ltd == r.point["device.nl_ltd"] and cfg.train.lr == r.point["train.lr"]
        assert cfg.device.nl_ltp == 2.0  # from the preset, not overridden
        if r.point["scheme"] == "sgd":
            assert cfg.scheme.name == "sgd" and dict(cfg.scheme.params) == {}
        else:
            assert cfg.scheme.name == "crus" and dict(cfg.scheme.params) == {"accumulate": True}
        assert "scheme=crus:accumulate=true" in r.label or "scheme=sgd" in r.label
        seen.add((r.point["scheme"], r.point["device.nl_ltd"], r.point["train.lr"]))
    assert len(seen) == 12


def test_sweep_name_defaults_to_file_name_and_no_seeds_means_one_replica(tmp_path):
    path = _write(tmp_path / "my-sweep.toml", """
        [base]
        "model.hidden" = [8]
        [grid]
        "train.lr" = [0.1, 0.2]
    """)
    sweep = load_sweep(path)
    assert sweep.name == "my-sweep"
    runs = sweep.runs()
    assert len(runs) == 2 and all(build_config(r.values).train.replicas == 1 for r in runs)


def test_sweep_points_with_the_same_config_run_once(tmp_path):
    path = _write(tmp_path / "dup.toml", """
        [grid]
        "scheme" = ["sgd", "crus"]
        "device.levels" = [64, 64.0, 32]
    """)
    runs = load_sweep(path).runs()
    assert len(runs) == 4  # 6 points, 64 and 64.0 are one config
    assert [r.index for r in runs] == [0, 1, 2, 3]
    assert len({r.config_hash for r in runs}) == 4
    assert [(r.point["scheme"], r.point["device.levels"]) for r in runs] == [
        ("sgd", 64), ("sgd", 32), ("crus", 64), ("crus", 32)]


@pytest.mark.parametrize("text, key", [
    ('[grid]\n"device.c2c" = 0.1\n', "grid.device.c2c"),
    ('[grid]\n"device.c2c" = []\n', "grid.device.c2c"),
    ('[grid.device]\nc2c = "0.1"\n', "grid.device.c2c"),
    ('[extra]\nx = 1\n', "extra"),
    ('[sweep]\nseed = 3\n', "sweep.seed"),
    ('[sweep]\nseeds = 0\n', "sweep.seeds"),
    ('[sweep]\nseeds = "3"\n', "sweep.seeds"),
    ('[sweep]\nseeds = true\n', "sweep.seeds"),
    ('[sweep]\nname = ""\n', "sweep.name"),
    ('[grid]\n"device.levels" = [64, 1]\n', "device.levels"),
    ('[base]\n"device.nope" = 1\n[grid]\n"train.lr" = [0.1]\n', "device.nope"),
    ('[grid]\n"scheme" = ["sgd"]\n"train.epochs" = [1, 0]\n', "train.epochs"),
    ('[grid\n', "TOML"),
])
def test_sweep_file_errors_name_file_and_key(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_sweep(path).runs()
    message = str(err.value)
    assert str(path) in message and key in message, message


@pytest.mark.parametrize("text, key", [
    pytest.param('[grid]\n"scheme" = ["sgd", "nope"]\n', "scheme.name",
                 id="unknown-scheme"),
    pytest.param('[grid]\n"scheme" = ["crus:acumulate=true"]\n', "scheme.acumulate",
                 id="unknown-scheme-option"),
    pytest.param('[grid]\n"scheme" = ["crus:accumulate"]\n', "crus:accumulate",
                 id="bad-scheme-spec"),
    pytest.param('grid = 3\n', "grid", id="grid-not-a-table"),
    pytest.param('sweep = 3\n', "sweep", id="sweep-not-a-table"),
    pytest.param('base = [1]\n', "base", id="base-not-a-table"),
])
def test_sweep_file_errors_are_caught_before_training(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_sweep(path).runs()
    assert str(path) in str(err.value) and key in str(err.value)


def test_invalid_grid_point_names_the_point(tmp_path):
    path = _write(tmp_path / "bad.toml", """
        [grid]
        "scheme" = ["sgd"]
        "device.levels" = [64, 1]
    """)
    with pytest.raises(ConfigError) as err:
        load_sweep(path).runs()
    message = str(err.value)
    assert "device.levels=1" in message and ">= 2" in message, message
    assert "device.levels=64" not in message


def test_missing_sweep_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_sweep(tmp_path / "nope.toml")
    assert "nope.toml" in str(err.value)


# -- the store ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def tiny_results(blobs, tmp_path_factory):
    """Two real finished runs that differ in train.lr."""
    out = tmp_path_factory.mktemp("tiny")
    results = []
    for lr in (0.1, 0.05):
        cfg = build_config({**TINY, "train.lr": lr, "train.replicas": 2})
        results.append(run(cfg, out / str(lr), datasets=blobs))
    assert all(r["status"] == "ok" for r in results)
    return results


def _strict_json(text: str):
    def reject(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


def test_store_round_trip_and_replace(tmp_path, tiny_results):
    result = tiny_results[0]
    path = tmp_path / "sub" / "store.sqlite"
    with ResultStore(path) as store:
        assert len(store) == 0 and store.statuses() == {} and store.integrity() == "ok"
        store.record(result, "demo", seconds=1.5)
        assert len(store) == 1
    with ResultStore(path, create=False) as store:  # a fresh connection reads what was committed
        h = result["config_hash"]
        assert store.statuses() == {h: "ok"}
        assert store.statuses([h, "0" * 16]) == {h: "ok"}
        assert store.statuses(["0" * 16]) == {}
        [row] = store.runs()
        assert row.config_hash == h and row.sweep == "demo" and row.status == "ok" and row.seconds == 1.5
        assert row.test_accuracy == result["test_accuracy"]
        assert row.summary["test_accuracy"] == result["test_accuracy"]
        assert row.summary["replicas"] == result["replicas"] and len(row.summary["replicas"]) == 2
        assert row.summary["seeds"] == 2 and row.summary["error"] is None
        assert row.result["replicas"] == result["replicas"]
        assert _fingerprint(row.result) == _fingerprint(json.loads(json.dumps(result)))
        assert row.config["model.hidden"] == [8] and row.config["train.lr"] == 0.1
        assert row.config["train.samples"] == 200 and row.config["train.replicas"] == 2
        assert row.finished_at and row.host
        assert store.runs("demo") == [row] and store.runs("other") == []

        # the same config stored again (a retry) replaces its row
        failed = build_result(build_config({**TINY, "train.lr": 0.1, "train.replicas": 2}), None, "failed", "boom")
        assert failed["config_hash"] == h
        store.record(failed, "demo")
        assert len(store) == 1 and store.statuses() == {h: "failed"}
        [row] = store.runs()
        assert row.status == "failed" and row.test_accuracy is None and row.summary["error"] == "boom"
        store.record(result, "demo2")
        assert len(store) == 1 and store.statuses() == {h: "ok"} and store.runs()[0].sweep == "demo2"
        assert store.integrity() == "ok"
        with pytest.raises(ValueError):
            store.record({**result, "status": "running"})
        assert len(store) == 1


def test_store_nan_values_are_stored_as_standard_json(tmp_path, tiny_results):
    result = json.loads(json.dumps(tiny_results[0]))
    result["epochs"][0]["update_noise"]["window"] = float("nan")
    result["epochs"][0]["update_noise"]["window1"] = float("inf")
    result["un_trace"] = [{"samples": 10, "window1": float("nan"), "window": float("-inf")}]
    result["samples_per_s"] = float("nan")
    path = tmp_path / "nan.sqlite"
    with ResultStore(path) as store:
        store.record(result, "nan")
        [row] = store.runs()
        assert row.result["un_trace"] == [{"samples": 10, "window1": None, "window": None}]
        assert row.result["epochs"][0]["update_noise"]["window"] is None
        assert row.summary["update_noise"] is None and row.summary["samples_per_s"] is None
        assert row.test_accuracy == result["test_accuracy"]
        text = runs_csv(store.runs())
    assert len(list(csv.reader(io.StringIO(text)))) == 2
    db = sqlite3.connect(path)
    try:
        for config, summary, res in db.execute("SELECT config, summary, result FROM runs"):
            for blob in (config, summary, res):
                _strict_json(blob)  # no NaN/Infinity tokens: any JSON reader can read every row
    finally:
        db.close()


def test_runs_csv_header_and_rows(tmp_path, tiny_results):
    with ResultStore(tmp_path / "s.sqlite") as store:
        for result in tiny_results:
            store.record(result, "csv")
        runs = store.runs()
    text = runs_csv(runs)
    lines = text.splitlines()
    assert len(lines) == 1 + len(tiny_results)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2
    header = lines[0].split(",")
    assert header[:3] == ["config_hash", "sweep", "status"]
    assert "train.lr" in header  # the key that varies
    assert "model.hidden" not in header and "runtime.device" not in header  # constant keys are left out
    by_hash = {row["config_hash"]: row for row in rows}
    assert set(by_hash) == {r["config_hash"] for r in tiny_results}
    for result in tiny_results:
        row = by_hash[result["config_hash"]]
        assert row["sweep"] == "csv" and row["status"] == "ok"
        assert float(row["train.lr"]) == result["config"]["train"]["lr"]
        assert float(row["test_accuracy"]) == result["test_accuracy"]
        assert int(row["seeds"]) == 2
    assert runs_csv([]).splitlines() == [lines[0].replace(",train.lr", "")]


def test_store_rejects_non_store_files(tmp_path):
    text = tmp_path / "notes.sqlite"
    text.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError) as err:
        ResultStore(text)
    assert str(text) in str(err.value)
    assert text.read_text().startswith("these are my notes")  # untouched
    with pytest.raises(StoreError) as err:
        ResultStore(tmp_path)
    assert str(tmp_path) in str(err.value)
    missing = tmp_path / "missing.sqlite"
    with pytest.raises(StoreError) as err:
        ResultStore(missing, create=False)
    assert str(missing) in str(err.value)
    assert not missing.exists()


def _record_many(path: str, result: dict, worker: int, count: int, barrier) -> None:
    """Concurrent-writer worker (module level, so spawn can import it)."""
    barrier.wait(timeout=120)
    with ResultStore(path) as store:
        for i in range(count):
            store.record({**result, "config_hash": f"w{worker}-{i}"}, f"writer{worker}")


def test_store_concurrent_writers(tmp_path, tiny_results):
    path = tmp_path / "shared.sqlite"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_record_many, args=(str(path), tiny_results[0], w, 25, barrier)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with ResultStore(path, create=False) as store:
        assert len(store) == 100
        assert store.integrity() == "ok"
        assert set(store.statuses()) == {f"w{w}-{i}" for w in range(4) for i in range(25)}
        assert {r.sweep for r in store.runs()} == {f"writer{w}" for w in range(4)}
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT config_hash, config, summary, result FROM runs").fetchall()
        counts = db.execute("SELECT config_hash, COUNT(*) FROM runs GROUP BY config_hash").fetchall()
    finally:
        db.close()
    assert len(rows) == 100 and all(n == 1 for _, n in counts) and len(counts) == 100
    for h, config, summary, res in rows:
        assert _strict_json(res)["replicas"] == tiny_results[0]["replicas"]
        assert _strict_json(summary)["test_accuracy"] == tiny_results[0]["test_accuracy"]
        assert _strict_json(config)["model.hidden"] == [8]


# -- executors ----------------------------------------------------------------------------------

def _small_sweep(tmp_path: Path, data_dir: Path, name: str = "exec", schemes=("sgd", "crus")) -> Path:
    return _sweep_file(tmp_path / f"{name}.toml", _tiny_base(data_dir),
                       {"scheme": list(schemes), "device.c2c": [0.0, 0.05]}, name=name, seeds=2)


@pytest.fixture(scope="module")
def shared_idx(blobs, tmp_path_factory):
    """The conftest blobs as IDX files in one directory for the whole module (data.dir is part
    of the config hash, so executors compared against one baseline must read the same one)."""
    import numpy as np

    from hnntrain.io.data import write_idx

    out = tmp_path_factory.mktemp("idx")
    for prefix, ds in zip(("train", "t10k"), blobs):
        write_idx(out / f"{prefix}-images-idx3-ubyte",
                  (ds.images.numpy() * 255).round().astype(np.uint8).reshape(-1, 6, 6))
        write_idx(out / f"{prefix}-labels-idx1-ubyte", ds.labels.numpy().astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def inline_baseline(shared_idx, tmp_path_factory):
    """The small sweep (2 schemes x 2 c2c, 2 seeds) run in this process: {hash: fingerprint}."""
    tmp = tmp_path_factory.mktemp("inline")
    sweep = load_sweep(_small_sweep(tmp, shared_idx))
    with ResultStore(tmp / "inline.sqlite") as store:
        outcome = execute(sweep, store, workers=1)
        assert (outcome.total, outcome.finished, outcome.failed, outcome.skipped, outcome.lost) == (4, 4, 0, 0, [])
        baseline = _stored_fingerprints(store)
    assert set(baseline) == {r.config_hash for r in sweep.runs()}
    assert len({fp[2] for fp in baseline.values()}) > 1  # the runs differ, so equality means something
    assert all(len(fp[1]) == 2 for fp in baseline.values())
    return baseline


def test_dask_local_cluster_matches_in_process(tmp_path, shared_idx, inline_baseline, monkeypatch):
    pytest.importorskip("distributed")
    # Dask worker processes inherit the environment: make sure they import this hnntrain
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])))
    sweep = load_sweep(_small_sweep(tmp_path, shared_idx, "dask"))
    planned = {r.config_hash for r in sweep.runs()}
    finished = []
    with ResultStore(tmp_path / "dask.sqlite") as store:
        outcome = execute(sweep, store, scheduler="local", workers=2,
                          on_finish=lambda run, result, lost: finished.append((run.config_hash, lost)))
        assert (outcome.total, outcome.finished, outcome.failed, outcome.lost) == (4, 4, 0, [])
        assert sorted(h for h, _ in finished) == sorted(planned) and all(lost is None for _, lost in finished)
        assert store.integrity() == "ok" and set(store.statuses().values()) == {"ok"}
        assert {r.sweep for r in store.runs()} == {"dask"}
        assert _stored_fingerprints(store) == inline_baseline

        # a second pass over the full store plans nothing (and starts no cluster)
        starts = []
        again = execute(sweep, store, scheduler="local", workers=2, on_start=lambda *a: starts.append(a))
        assert (again.total, again.skipped, again.finished) == (4, 4, 0) and starts == [(4, 4, 0)]
        assert len(store) == 4


def test_process_pool_matches_in_process_and_skips_stored(tmp_path, shared_idx, inline_baseline):
    sweep = load_sweep(_small_sweep(tmp_path, shared_idx, "pool"))
    with ResultStore(tmp_path / "pool.sqlite") as store:
        # store the sgd runs first (in process); the pool must do only the two crus runs
        execute(load_sweep(_small_sweep(tmp_path, shared_idx, "pool-sgd", schemes=["sgd"])), store, workers=1)
        todo, done = plan(sweep, store)
        assert {r.point["scheme"] for r in done} == {"sgd"} and {r.point["scheme"] for r in todo} == {"crus"}
        assert len(done) == len(todo) == 2
        outcome = execute(sweep, store, workers=2)
        assert (outcome.total, outcome.skipped, outcome.finished, outcome.failed, outcome.lost) == (4, 2, 2, 0, [])
        assert {r.sweep for r in store.runs()} == {"pool", "pool-sgd"}
        assert _stored_fingerprints(store) == inline_baseline


# -- kill / resume of the CLI -------------------------------------------------------------------

def _cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def _stored(path: Path) -> dict[str, str]:
    """``{config_hash: status}`` read from a store another process is writing (read-only)."""
    if not path.exists():
        return {}
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            return dict(db.execute("SELECT config_hash, status FROM runs").fetchall())
        finally:
            db.close()
    except sqlite3.OperationalError:  # created but no schema yet
        return {}


def _in_flight(runs_dir: Path, stored: dict) -> set[str]:
    """Runs with a checkpoint on disk that are not stored yet."""
    if not runs_dir.is_dir():
        return set()
    return {p.parent.name for p in runs_dir.glob("*/checkpoint.pt")} - set(stored)


@pytest.fixture()
def popen(tmp_path):
    """Starts CLI processes (stdout/stderr captured as text) and kills the ones a failed test leaves."""
    started: list[subprocess.Popen] = []

    def start(argv: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, *argv], env=_cli_env(), cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout is not None and not proc.stdout.closed:
            proc.communicate()


def _wait_for(proc: subprocess.Popen, condition, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"sweep exited ({proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


_WITH_CTRL_C = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "sys.argv[0] = 'hnntrain'; from hnntrain.cli import main; main()")
"""Runs the CLI with Python's Ctrl-C handler even where this test inherited SIGINT ignored."""


def _resume_sweep(tmp_path: Path, data_dir: Path, schemes: list[str]) -> Path:
    """Runs of ~0.25-0.5 s, each with a checkpoint after 256 samples and at every epoch end."""
    base = _tiny_base(data_dir, **{"train.samples": 300, "train.epochs": 2, "runtime.checkpoint_seconds": 0.001})
    return _sweep_file(tmp_path / "resume.toml", base, {"scheme": schemes, "device.c2c": [0.0, 0.05]},
                       name="resume", seeds=2)


def _wait_mid_run(proc: subprocess.Popen, store_path: Path, runs_dir: Path, stored_more_than: int) -> None:
    """Until more than N runs are stored and a later run is training (it has a checkpoint)."""
    def ready() -> bool:
        stored = _stored(store_path)
        return len(stored) > stored_more_than and bool(_in_flight(runs_dir, stored))

    _wait_for(proc, ready, f"more than {stored_more_than} stored runs and a checkpointed run in flight")


def _count_per_hash(store_path: Path) -> tuple[dict, dict]:
    db = sqlite3.connect(store_path)
    try:
        counts = dict(db.execute("SELECT config_hash, COUNT(*) FROM runs GROUP BY config_hash").fetchall())
        statuses = dict(db.execute("SELECT config_hash, status FROM runs").fetchall())
    finally:
        db.close()
    return counts, statuses


def test_sweep_cli_killed_then_restarted_stores_every_run_once_with_the_same_numbers(tmp_path, idx_dir, popen):
    import torch

    sweep_file = _resume_sweep(tmp_path, idx_dir, ["sgd", "crus:accumulate=true", "threshold"])
    planned = [r.config_hash for r in load_sweep(sweep_file).runs()]
    assert len(planned) == 6
    store_path = tmp_path / "resume.sqlite"
    runs_dir = tmp_path / "resume.runs"
    args = ["-m", "hnntrain.cli", "sweep", str(sweep_file), "--workers", "1", "--store"]

    # the reference: the same sweep, uninterrupted, into a fresh store (in parallel, to save time)
    fresh_path = tmp_path / "fresh.sqlite"
    fresh = popen([*args, str(fresh_path)])

    proc = popen([*args, str(store_path)])
    _wait_mid_run(proc, store_path, runs_dir, 0)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with ResultStore(store_path, create=False) as store:
        assert store.integrity() == "ok"
        after_kill = store.statuses()
    assert 1 <= len(after_kill) < 6 and set(after_kill) <= set(planned)
    assert set(after_kill.values()) == {"ok"}
    flight = _in_flight(runs_dir, after_kill)
    assert len(flight) == 1, "the run in flight left its checkpoint"
    [h] = flight
    checkpoint = torch.load(runs_dir / h / "checkpoint.pt", weights_only=False)
    assert checkpoint["config_hash"] == h and (checkpoint["epoch"], checkpoint["position"]) != (0, 0)

    # the same command again finishes the sweep; the killed run continues from its checkpoint
    done = popen([*args, str(store_path)])
    out, err = done.communicate(timeout=180)
    assert done.returncode == 0, out + err
    assert f"6 runs, {len(after_kill)} already in" in out, out
    counts, statuses = _count_per_hash(store_path)
    assert counts == {h: 1 for h in planned}
    assert set(statuses.values()) == {"ok"}
    assert not list(runs_dir.glob("*/checkpoint.pt"))  # finished runs leave no checkpoint behind

    # the same numbers as the uninterrupted sweep: runs depend on their config only
    out, err = fresh.communicate(timeout=180)
    assert fresh.returncode == 0, out + err
    with ResultStore(fresh_path, create=False) as store:
        expected = _stored_fingerprints(store)
    with ResultStore(store_path, create=False) as store:
        got = _stored_fingerprints(store)
    assert set(got) == set(expected) == set(planned)
    assert len({fp[2] for fp in expected.values()}) > 1
    for h in planned:
        assert got[h] == expected[h], f"run {h} differs after kill/resume"


def test_sweep_cli_ctrl_c_exits_2_says_how_to_continue_and_keeps_the_store(tmp_path, idx_dir, popen):
    sweep_file = _resume_sweep(tmp_path, idx_dir, ["sgd", "crus:accumulate=true"])
    planned = [r.config_hash for r in load_sweep(sweep_file).runs()]
    assert len(planned) == 4
    store_path = tmp_path / "resume.sqlite"
    runs_dir = tmp_path / "resume.runs"
    proc = popen(["-c", _WITH_CTRL_C, "sweep", str(sweep_file), "--workers", "1", "--store", str(store_path)])
    _wait_mid_run(proc, store_path, runs_dir, 0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, out + err
    assert "interrupted" in err and "run the same command again" in err and str(store_path) in err, err
    assert "Traceback" not in err + out
    with ResultStore(store_path, create=False) as store:
        assert store.integrity() == "ok"
        stored = store.statuses()
    assert 1 <= len(stored) < 4 and set(stored.values()) == {"ok"}
    assert f"{len(stored)} runs are stored" in err
    [h] = _in_flight(runs_dir, stored)  # the interrupted run saved a checkpoint
    assert json.loads((runs_dir / h / "result.json").read_text())["status"] == "failed"

    # continuing (here in process) stores every run exactly once
    with ResultStore(store_path) as store:
        outcome = execute(load_sweep(sweep_file), store, workers=1)
    assert (outcome.total, outcome.skipped, outcome.finished, outcome.failed) == (4, len(stored), 4 - len(stored), 0)
    counts, statuses = _count_per_hash(store_path)
    assert counts == {h: 1 for h in planned} and set(statuses.values()) == {"ok"}


def _interrupt_note(run_dir: Path) -> str:
    return json.loads((run_dir / "result.json").read_text())["error"]


def test_sweep_ctrl_c_with_two_workers_checkpoints_every_run_in_flight(tmp_path, idx_dir):
    """The terminal's Ctrl-C reaches the client and both workers, then the client's SIGTERM
    reaches the workers again: each worker must finish its update and checkpoint on the first."""
    import torch

    base = _tiny_base(idx_dir, **{"train.samples": 400, "train.epochs": 200, "runtime.checkpoint_seconds": 0.2})
    sweep_file = _sweep_file(tmp_path / "two.toml", base, {"scheme": ["sgd", "crus"]}, name="two")
    planned = [r.config_hash for r in load_sweep(sweep_file).runs()]
    store_path, runs_dir = tmp_path / "two.sqlite", tmp_path / "two.runs"
    proc = subprocess.Popen([sys.executable, "-c", _WITH_CTRL_C, "sweep", str(sweep_file), "--workers", "2",
                             "--store", str(store_path)], env=_cli_env(), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(proc, lambda: len(list(runs_dir.glob("*/checkpoint.pt"))) == 2, "both runs training")
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does: every process of the foreground group
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 2, out + err
    assert "run the same command again" in err and "Traceback" not in out + err, err
    for h in planned:
        note = _interrupt_note(runs_dir / h)
        assert "checkpoint saved" in note, note  # not "the middle of an update": the first signal was honoured
        state = torch.load(runs_dir / h / "checkpoint.pt", weights_only=False)
        assert f"epoch {state['epoch'] + 1}, sample {state['position']};" in note


def test_compare_ctrl_c_keeps_finished_schemes_and_continues_the_interrupted_one(tmp_path, idx_dir, popen):
    """compare is a sweep over schemes: Ctrl-C says how to continue; the same command again
    skips the stored scheme and resumes the other from its checkpoint, to the same numbers."""
    def args(out: Path) -> list[str]:
        return ["compare", "--schemes", "fp sgd", "--workers", "1", "--data-dir", str(idx_dir), "--samples", "300",
                "--epochs", "3", "--set", "model.hidden=[8]", "--set", "train.test_samples=200",
                "--set", "runtime.checkpoint_seconds=0.001", "--out", str(out)]

    out, fresh_out = tmp_path / "cmp", tmp_path / "fresh"
    fresh = popen(["-m", "hnntrain.cli", *args(fresh_out)])
    proc = popen(["-c", _WITH_CTRL_C, *args(out)])
    _wait_for(proc, lambda: len(_stored(out / "compare.sqlite")) == 1 and (out / "sgd" / "checkpoint.pt").exists(),
              "fp stored and sgd training")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "continue with the same command" in err and "Traceback" not in err, err
    assert set(_stored(out / "compare.sqlite").values()) == {"ok"} and len(_stored(out / "compare.sqlite")) == 1

    again = popen(["-m", "hnntrain.cli", *args(out)])
    stdout, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stdout + stderr
    assert "2 runs, 1 already in" in stdout
    assert not (out / "sgd" / "checkpoint.pt").exists()  # a finished run leaves no checkpoint
    stdout, stderr = fresh.communicate(timeout=120)
    assert fresh.returncode == 0, stdout + stderr
    for scheme in ("fp", "sgd"):
        resumed = json.loads((out / scheme / "result.json").read_text())
        unbroken = json.loads((fresh_out / scheme / "result.json").read_text())
        assert _fingerprint(resumed) == _fingerprint(unbroken)


def test_run_interrupted_mid_update_resumes_to_the_same_numbers(tmp_path, blobs, monkeypatch):
    """What a Ctrl-C (or the SIGTERM that stops pool workers) does to a run in flight, made
    deterministic: the interrupt lands after layer 1 of update 201 was applied, before layer 2."""
    from hnntrain.schemes.update_noise import UpdateNoise

    cfg = build_config({**_tiny_base(None, **{"train.samples": 300, "train.epochs": 2}), "scheme.name": "crus",
                        "train.replicas": 2})
    reference = run(cfg, tmp_path / "ref", datasets=blobs)

    original = UpdateNoise.end_update
    calls = []

    def interrupt_mid_update(self, weight):
        calls.append(1)
        if len(calls) == 2 * 200 + 1:
            raise KeyboardInterrupt
        return original(self, weight)

    monkeypatch.setattr(UpdateNoise, "end_update", interrupt_mid_update)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "cut", datasets=blobs)
    monkeypatch.setattr(UpdateNoise, "end_update", original)
    resumed = run(cfg, tmp_path / "cut", resume=True, datasets=blobs)
    assert _fingerprint(resumed) == _fingerprint(reference)


# -- CLI: sweep and results ---------------------------------------------------------------------

def test_cli_sweep_dry_run_results_and_csv(tmp_path, idx_dir):
    store = tmp_path / "cli.sqlite"
    first = _sweep_file(tmp_path / "first.toml", {**TINY, "data.dir": str(idx_dir)},
                        {"scheme": ["sgd"], "train.lr": [0.05, 0.1]})
    res = runner.invoke(app, ["sweep", str(first), "--store", str(store), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "2 finished, 0 failed" in res.output

    bigger = _write(tmp_path / "bigger.toml", """
        [base]
        "model.hidden" = [8]
        "train.samples" = 200
        "train.test_samples" = 200
        [grid]
        "scheme" = ["sgd", "crus"]
        "train.lr" = [0.05, 0.1]
    """)  # data dir from --data-dir: the same configs as first.toml for sgd
    runs = load_sweep(bigger).runs()
    res = runner.invoke(app, ["sweep", str(bigger), "--store", str(store), "--data-dir", str(idx_dir), "--dry-run"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    for r in runs:
        config = build_config({**r.values, "data.dir": str(idx_dir)})
        h = config_hash(config)
        [line] = [line for line in lines if h in line]
        assert line.startswith("stored" if r.point["scheme"] == "sgd" else "to do"), line
        assert f"train.lr={r.point['train.lr']}" in line
    assert "4 runs: 2 stored, 2 to do" in res.output
    with ResultStore(store, create=False) as s:
        assert len(s) == 2  # a dry run trains nothing

    res = runner.invoke(app, ["results", str(store), "--csv"])
    assert res.exit_code == 0, res.output
    rows = list(csv.reader(io.StringIO(res.stdout)))
    assert len(rows) == 3 and rows[0][:3] == ["config_hash", "sweep", "status"] and "train.lr" in rows[0]
    assert {row[1] for row in rows[1:]} == {"first"} and {row[2] for row in rows[1:]} == {"ok"}
    assert len(res.stdout.splitlines()) == 3

    res = runner.invoke(app, ["results", str(store)])
    assert res.exit_code == 0, res.output
    assert "2 runs" in res.output and "train.lr" in res.output


def test_cli_results_missing_store_and_bad_sweep_file(tmp_path):
    missing = tmp_path / "missing.sqlite"
    res = runner.invoke(app, ["results", str(missing)])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(missing) in lines[0] and "error" in lines[0], res.output
    assert not missing.exists()

    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n" * 100)
    res = runner.invoke(app, ["results", str(notes), "--csv"])
    assert res.exit_code == 2 and str(notes) in res.output and "Traceback" not in res.output

    bad = _write(tmp_path / "bad.toml", """
        [grid]
        "scheme" = ["sgd"]
        "device.levels" = [64, 1]
    """)
    store = tmp_path / "never.sqlite"
    res = runner.invoke(app, ["sweep", str(bad), "--store", str(store)])
    assert res.exit_code == 2
    assert "device.levels" in res.output and str(bad) in res.output and "Traceback" not in res.output
    assert not store.exists()  # checked before anything is created

    res = runner.invoke(app, ["sweep", str(tmp_path / "none.toml"), "--store", str(store)])
    assert res.exit_code == 2 and "none.toml" in res.output

    bad.write_text('[grid]\n"device.c2c" = 0.1\n')
    res = runner.invoke(app, ["sweep", str(bad), "--store", str(store)])
    assert res.exit_code == 2 and "grid.device.c2c" in res.output and "Traceback" not in res.output


def test_sweep_run_dataclass_label():
    run_ = SweepRun(0, {"scheme": "crus:accumulate=true", "device.c2c": 0.05}, {}, "x")
    assert run_.label == "scheme=crus:accumulate=true device.c2c=0.05"
    assert SweepRun(0, {}, {}, "x").label == "base"
