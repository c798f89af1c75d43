"""Terminal output shared by the commands: training progress and results tables.

Progress (``run``, ``compare``, ``sweep``, ``reproduce``): one overall bar (runs done of all,
an ETA from the epochs trained so far) when there are several runs, and one bar per run in
flight (its epoch, samples, loss, speed), plus a line per finished epoch and per finished run.

Tables follow :data:`hnntrain.experiments.summary.COLUMNS` (one order everywhere); the default
view fits 80 columns with short headers and a legend below; ``wide`` shows every column with
full headers.
"""

from __future__ import annotations

import time
from typing import Any

from rich import box
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from hnntrain.cli.common import console
from hnntrain.experiments.summary import COLUMNS, footnoted, human, table_legend


class RunsProgress:
    """Progress of one or more runs; use as a context manager."""

    def __init__(self, total: int = 1, skipped: int = 0, epochs: dict[str, int] | None = None, overall: bool = True,
                 noun: str = "runs"):
        self.epochs = epochs or {}
        self.noun = noun
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=24),
                                 TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console, transient=False)
        self.finished = skipped
        self.total = total
        self.bars: dict[str, Any] = {}
        self.started: dict[str, tuple[float, int]] = {}
        self.overall = None
        if overall and total > 1:
            work = sum(self.epochs.values()) or (total - skipped)
            self.overall = self.progress.add_task(self._overall_text(), total=work, status="")
        self.done_epochs: dict[str, float] = {}

    def _overall_text(self) -> str:
        return f"[bold]{self.noun} {self.finished}/{self.total}"

    def __enter__(self) -> "RunsProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def print(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, markup=False)

    def update(self, key: str, label: str, epoch: int, done: int, total: int, loss: float) -> None:
        """A run's progress: ``done`` of ``total`` samples in (0-based) ``epoch``."""
        epochs = self.epochs.get(key, 1)
        if key not in self.bars:
            self.bars[key] = self.progress.add_task("", total=total, status="")
            self.started[key] = (time.monotonic(), done)
        since, first = self.started[key]
        elapsed = max(time.monotonic() - since, 1e-9)
        rate = (epoch * total + done - first) / elapsed
        loss_text = f"loss {loss:.3f}" if loss == loss and done else "loss -"
        self.progress.update(self.bars[key], completed=done, total=total,
                             description=f"{escape(label)} epoch {epoch + 1}/{epochs}",
                             status=f"{done:,}/{total:,} {loss_text} {human(rate)} samples/s")
        if self.overall is not None:
            self.done_epochs[key] = epoch + done / max(total, 1)
            self.progress.update(self.overall, completed=sum(self.done_epochs.values()))

    def epoch_line(self, label: str, record: dict) -> None:
        un = record["update_noise"]
        split = "test" if "test_accuracy" in record else "validation"  # a validation-split run never sees the test set
        self.print(f"  {label} epoch {record['epoch']}: {split} accuracy {record[f'{split}_accuracy'] * 100:.2f} %, "
                   f"UN {human(un['window'])} (window 1: {human(un['window1'])}), "
                   f"{human(record['pulses']['per_sample'])} pulses/sample")

    def finish(self, key: str, label: str, result: dict | None, lost: str | None = None) -> None:
        """A run ended: its bar goes, the overall bar advances, one line says how it ended."""
        if key in self.bars:
            self.progress.remove_task(self.bars.pop(key))
        if lost:
            self.print(f"lost {label}: {lost}; it runs again next time")
            return
        self.finished += 1
        if self.overall is not None:
            self.done_epochs[key] = self.epochs.get(key, 1)
            self.progress.update(self.overall, description=self._overall_text(),
                                 completed=sum(self.done_epochs.values()))
        acc = result["test_accuracy"] if result else None
        text = f"{acc * 100:.2f} %" if acc is not None else f"failed: {result['error'] if result else '?'}"
        if acc is None and result and result.get("validation_accuracy") is not None:
            text = f"{result['validation_accuracy'] * 100:.2f} % (validation)"
        self.print(f"{label}: {text}")


def results_table(rows: list[dict], title: str, first: str = "scheme", wide: bool = False,
                  extra: list[tuple[str, list[str]]] | None = None) -> Table:
    """A results table: ``first`` column (row names, with footnote markers), ``extra`` columns
    (header, values), then :data:`COLUMNS` (the narrow ones unless ``wide``)."""
    columns = [c for c in COLUMNS if c.narrow or wide]
    markers, _ = footnoted(rows)
    # no vertical rules and one space between columns: ten columns fit 80 characters
    table = Table(title=escape(title), title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  padding=(0, 0))
    table.add_column(first, overflow="fold")
    for header, _ in extra or []:
        table.add_column(escape(header), overflow="fold")
    for column in columns:
        table.add_column(column.title if wide else column.short, justify="right", no_wrap=True)
    for i, row in enumerate(rows):
        cells = [escape(str(row.get("scheme", ""))) + markers[i]]
        cells += [escape(values[i]) for _, values in extra or []]
        table.add_row(*cells, *(escape(column.text(row)) for column in columns))
    return table


def print_results(rows: list[dict], title: str, wide: bool = False, first: str = "scheme",
                  extra: list[tuple[str, list[str]]] | None = None) -> None:
    """The table, then its footnotes and its legend."""
    console.print(results_table(rows, title, first, wide, extra))
    _, notes = footnoted(rows)
    for line in notes + table_legend(rows, narrow=not wide):
        console.print(line, highlight=False, markup=False)
