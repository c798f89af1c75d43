"""Results store: one embedded SQLite file, one row per finished run, keyed by the config hash.

Why SQLite: it is in the standard library, one file travels with a paper, and its transactions
give the guarantees a sweep needs. A row is written in a single transaction when its run has
finished, so an interrupted sweep (Ctrl-C, a killed worker or client, a power cut) leaves either
the whole row or nothing. The file uses write-ahead logging and a generous busy timeout, so
several sweeps (several processes, or clients on one shared disk) may write to one store at
once; each ``record`` is atomic on its own.

Rows hold the flattened resolved config (dotted keys), a summary (the comparison row: accuracy
mean and spread over replicas, update noise, pulses, senses ...) and the full result
(per-epoch history, update-noise trace, accuracy trace, hardware declaration).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from hnntrain.experiments.summary import COST_COLUMNS, summarize, varying_keys

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    config_hash   TEXT PRIMARY KEY,
    sweep         TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    test_accuracy REAL,
    config        TEXT NOT NULL,
    summary       TEXT NOT NULL,
    result        TEXT NOT NULL,
    seconds       REAL,
    host          TEXT,
    finished_at   TEXT NOT NULL
);
"""


class StoreError(RuntimeError):
    """The file is not a usable results store; the message names the file and the fix."""


@dataclass(frozen=True)
class StoredRun:
    """One row of the store."""

    config_hash: str
    sweep: str
    status: str
    test_accuracy: float | None
    config: dict[str, Any]
    """Flattened resolved config: ``{"device.nl_ltd": 6.0, ...}``."""
    summary: dict[str, Any]
    """The comparison row (see :func:`hnntrain.experiments.compare.summarize`) plus per-replica accuracies."""
    result: dict[str, Any]
    """The run's full ``result.json``."""
    seconds: float | None
    host: str | None
    finished_at: str


def _json(value: Any) -> str:
    # NaN/inf are not JSON; store them as null so that every reader can parse every row
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), sort_keys=True, default=str)


class ResultStore:
    """A results store at ``path`` (created on first use)."""

    def __init__(self, path: str | Path, create: bool = True):
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a directory; pass the store's .sqlite file")
        if not create and not self.path.is_file():
            raise StoreError(f"{self.path}: no such results store; run `hnntrain sweep SWEEP.toml --store {self.path}` first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=120.0, isolation_level=None)
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if (tables or not create) and not {"meta", "runs"} <= tables:  # never add tables to someone else's file
                self._db.close()
                raise StoreError(f"{self.path}: an SQLite file, but not an hnntrain results store (no runs "
                                 "table); pass the .sqlite file that hnntrain sweep wrote, or a new file name")
            self._db.execute("PRAGMA busy_timeout = 120000")
            self._enable_wal()
            self._db.execute("PRAGMA synchronous = FULL")  # a committed row survives a power cut
            with self._transaction():
                for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                    self._db.execute(statement)
                row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is None:
                    self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                elif int(row[0]) != SCHEMA_VERSION:
                    raise StoreError(f"{self.path}: store schema version {row[0]}, this hnntrain reads "
                                     f"{SCHEMA_VERSION}; use a new --store file")
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path}: not an hnntrain results store ({err}); pass another --store file") from None

    def _enable_wal(self) -> None:
        """Switch to write-ahead logging. The switch needs an exclusive lock and SQLite does not
        wait for it with the busy timeout, so writers that create one store together retry."""
        deadline = time.monotonic() + 120.0
        while self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextlib.contextmanager
    def _transaction(self):
        self._db.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlocks
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------
    def record(self, result: dict, sweep: str = "", seconds: float | None = None) -> None:
        """Store one finished run (``status`` ok or failed) in one transaction; a run stored
        again (for example a failed run retried) replaces its row."""
        from hnntrain.spec.config import dotted_config

        status = result.get("status")
        if status not in ("ok", "failed"):
            raise ValueError(f"only finished runs are stored, got status {status!r}")
        summary = summarize(result) if result.get("epochs") else {"status": status, "test_accuracy": None}
        summary["replicas"] = result.get("replicas", [])
        summary["error"] = result.get("error")
        values = (result["config_hash"], sweep, status, result.get("test_accuracy"), _json(dotted_config(result["config"])),
                  _json(summary), _json(result), seconds if seconds is not None else result.get("train_seconds"),
                  socket.gethostname(), time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)

    # -- reading ------------------------------------------------------------------------------
    def statuses(self, hashes: Iterable[str] | None = None) -> dict[str, str]:
        """``{config_hash: status}`` of stored runs (all, or those among ``hashes``)."""
        rows = self._db.execute("SELECT config_hash, status FROM runs").fetchall()
        wanted = None if hashes is None else set(hashes)
        return {h: s for h, s in rows if wanted is None or h in wanted}

    def runs(self, sweep: str | None = None) -> list[StoredRun]:
        query = "SELECT * FROM runs" + (" WHERE sweep = ?" if sweep is not None else "") + " ORDER BY finished_at, config_hash"
        out = []
        for row in self._db.execute(query, (sweep,) if sweep is not None else ()):
            h, sw, status, acc, config, summary, result, seconds, host, finished = row
            out.append(StoredRun(h, sw, status, acc, json.loads(config), json.loads(summary), json.loads(result),
                                 seconds, host, finished))
        return out

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def integrity(self) -> str:
        """SQLite's own integrity check: ``ok`` when the file is sound."""
        return self._db.execute("PRAGMA integrity_check").fetchone()[0]


SUMMARY_COLUMNS = ("test_accuracy", "test_accuracy_std", "seeds", "update_noise", "update_noise_window1",
                   "pulses_per_sample", "senses", "refreshes", "digital_bits", "extra_arrays", "samples_per_s", *COST_COLUMNS)


def runs_csv(runs: list[StoredRun]) -> str:
    """One header line, then one line per run: hash, sweep, status, the config keys that vary
    between runs, then the summary columns (accuracies as fractions, UN as plain numbers)."""
    keys = varying_keys(runs)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["config_hash", "sweep", "status", *keys, *SUMMARY_COLUMNS, "seconds", "finished_at"])
    for run in runs:
        config = [_cell(run.config.get(k)) for k in keys]
        summary = [_cell(run.summary.get(c)) for c in SUMMARY_COLUMNS]
        writer.writerow([run.config_hash, run.sweep, run.status, *config, *summary, _cell(run.seconds), run.finished_at])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)
