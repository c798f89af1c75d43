"""Summaries of finished runs: the comparison row of one result, the columns every results
table shows (in one order), numbers rounded for people, footnotes for rows not to be read at
face value, the one-line description of the fixed hardware, and which config keys vary across
a set of stored runs. Every experiment (compare, sweep store, report, reproduce) and every
terminal table reads results through these."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable


def _finite_mean(values: list) -> float:
    """Mean of the finite values (stored results hold None where a value was NaN); NaN if none."""
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.mean(kept) if kept else float("nan")


COST_COLUMNS = ("energy_j_per_sample", "latency_s_per_sample", "area_um2_per_synapse")
"""The hardware cost a comparison row carries (``result.json``'s ``cost``; None before pricing existed)."""


def summarize(result: dict, label: str | None = None) -> dict:
    """The comparison row of one finished run. Over several epochs, update noise and
    pulses/sample are means over the epochs; senses and refreshes are totals of the run.
    Keys not in :data:`COLUMNS` (``status``, ``seeds``, ``classes`` ...) serve footnotes."""
    epochs = result["epochs"]
    accs = result["replicas"]
    spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
    # a run with a validation split never sees the test set: its accuracies are validation ones
    validation = {"validation_accuracy": result["validation_accuracy"], "validation_accuracy_std": spread} \
        if result.get("evaluated_on") == "validation" else {}
    return {
        "scheme": label or result["config"]["scheme"]["name"],
        "status": result["status"],
        "error": result.get("error"),
        "test_accuracy": result["test_accuracy"],
        "test_accuracy_std": spread if not validation else None,
        **validation,
        "seeds": len(accs),
        "epochs": len(epochs),
        "classes": result.get("classes"),
        "update_noise": _finite_mean([e["update_noise"]["window"] for e in epochs]),
        "update_noise_window1": _finite_mean([e["update_noise"]["window1"] for e in epochs]),
        "pulses_per_sample": statistics.mean(e["pulses"]["per_sample"] for e in epochs) if epochs else 0.0,
        "senses": sum(e["senses"] for e in epochs),
        "refreshes": sum(e["refreshes"] for e in epochs),
        "digital_bits": result["hardware"].get("digital_bits_per_synapse", 0),
        "extra_arrays": result["hardware"].get("extra_arrays", 0),
        "samples_per_s": result.get("samples_per_s"),
        **{key: (result.get("cost") or {}).get(key) for key in COST_COLUMNS},
    }


def format_accuracy(row: dict) -> str:
    """``93.74`` for one seed, ``93.74 ± 0.20`` (std over seeds) for several, ``91.20 (validation)``
    for a run evaluated on its validation split, ``failed``."""
    if row.get("test_accuracy") is None:
        if row.get("validation_accuracy") is not None:
            return f"{row['validation_accuracy'] * 100:.2f} (validation)"
        return "failed"
    if row.get("seeds", 2) > 1:
        return f"{row['test_accuracy'] * 100:.2f} ± {(row.get('test_accuracy_std') or 0.0) * 100:.2f}"
    return f"{row['test_accuracy'] * 100:.2f}"


def human(value: Any, digits: int = 3) -> str:
    """A number rounded for people: ``0.277``, ``47.3``, ``1,529``, ``55.3k``, ``31.8M``, ``2e-05``;
    ``-`` for none or NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    size = abs(value)
    if size == 0:
        return "0"
    if size >= 1e4:
        for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if size >= scale:
                return f"{value / scale:.{digits}g}{suffix}"
    if size >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    if size < 1e-3:
        return f"{value:.0e}"
    return f"{value:.{digits}g}"


@dataclass(frozen=True)
class Column:
    """One column of every results table (terminal, compare.md, results, report)."""

    key: str
    """Key of the summary row (:func:`summarize`)."""
    short: str
    """Header in the terminal (the 80-column view)."""
    title: str
    """Header in Markdown and the wide terminal view."""
    legend: str
    """What the column means, printed under terminal tables."""
    text: Callable[[dict], str]
    narrow: bool = True
    """Shown in the 80-column terminal view."""


def _cell(key: str) -> Callable[[dict], str]:
    return lambda row: human(row.get(key))


COLUMNS: list[Column] = [
    Column("test_accuracy", "acc. %", "test accuracy %", "test accuracy after the last epoch, % (± std over seeds)",
           format_accuracy),
    Column("update_noise", "UN", "UN (window)", "update noise over the long window (train.un_window updates)",
           _cell("update_noise")),
    Column("update_noise_window1", "UN 1", "UN (window 1)", "update noise of single updates (window 1)",
           _cell("update_noise_window1")),
    Column("pulses_per_sample", "pulses", "pulses/sample", "device pulses per training sample", _cell("pulses_per_sample")),
    Column("senses", "senses", "senses", "conductance reads (ADC conversions) over the run", _cell("senses")),
    Column("refreshes", "refr.", "refreshes", "pair refreshes over the run", _cell("refreshes")),
    Column("digital_bits", "bits", "digital bits/synapse", "digital memory per synapse, bits", _cell("digital_bits")),
    Column("extra_arrays", "arr.", "extra arrays", "device arrays besides the weight array", _cell("extra_arrays")),
    Column("energy_j_per_sample", "energy", "energy/sample", "hardware energy per training sample (docs/cost.md)",
           lambda row: _priced("energy", row.get("energy_j_per_sample")), narrow=False),
    Column("latency_s_per_sample", "latency", "latency/sample", "hardware time per training sample",
           lambda row: _priced("latency", row.get("latency_s_per_sample")), narrow=False),
    Column("area_um2_per_synapse", "µm²/syn.", "area (µm²/synapse)", "chip area per synapse, µm²",
           _cell("area_um2_per_synapse"), narrow=False),
    Column("samples_per_s", "samples/s", "samples/s", "training speed (replicas in lockstep count once)",
           _cell("samples_per_s"), narrow=False),
]
"""The columns of every results table, in order. Extend here: every table follows."""


def _priced(kind: str, value: float | None) -> str:
    """Energy (J) or latency (s) with an SI prefix, as ``hnntrain cost`` prints them."""
    from hnntrain.experiments.pricing import format_energy, format_latency

    return (format_energy if kind == "energy" else format_latency)(value)


def table_legend(rows: list[dict], narrow: bool = True) -> list[str]:
    """Lines under a table: the short headers explained, what multi-epoch values are."""
    shown = [c for c in COLUMNS if c.narrow or not narrow]
    lines = ["; ".join(f"{c.short if narrow else c.title}: {c.legend}" for c in shown) + "."]
    if narrow:
        lines.append("--wide adds " + ", ".join(c.title for c in COLUMNS if not c.narrow) + ".")
    if any(r.get("epochs", 1) > 1 for r in rows):
        lines.append("Several epochs: UN and pulses/sample are means over the epochs; senses and refreshes totals.")
    return lines


CHANCE_MARGIN = 1.5
"""A run is "at chance level" when its accuracy is below 1.5 x 1/classes."""
EXPLODING_UN = 1e4
"""Update noise at or above this (realized updates ~100x the requested ones in RMS) is flagged."""


def footnotes(row: dict) -> list[str]:
    """Why a row's numbers should not be read at face value (empty when nothing is odd)."""
    notes = []
    if row.get("status") == "failed":
        notes.append(f"failed: {row.get('error') or 'see its result.json'}")
    classes = row.get("classes") or 10
    acc = row.get("test_accuracy")
    if acc is not None and acc < CHANCE_MARGIN / classes:
        notes.append(f"at chance level ({100 / classes:.0f} % for {classes} classes): the network did not learn")
    un = [row.get(k) for k in ("update_noise", "update_noise_window1")]
    if any(v is not None and math.isfinite(v) and v >= EXPLODING_UN for v in un):
        notes.append(f"update noise >= {EXPLODING_UN:g}: the realized updates dwarf the requested ones")
    return notes


def _superscript(n: int) -> str:
    return "".join("⁰¹²³⁴⁵⁶⁷⁸⁹"[int(d)] for d in str(n))


def footnoted(rows: list[dict]) -> tuple[list[str], list[str]]:
    """(a marker per row, footnote lines): rows with notes get ``¹``, ``²`` ... (one character
    each, so that tables keep their width)."""
    markers, lines = [], []
    for row in rows:
        notes = footnotes(row)
        if notes:
            lines.append(f"{_superscript(len(lines) + 1)} {row['scheme']}: {'; '.join(notes)}")
            markers.append(_superscript(len(lines)))
        else:
            markers.append("")
    return markers, lines


def markdown_table(rows: list[dict], title: str) -> str:
    """compare.md: the comparison table, its footnotes and its legend."""
    markers, notes = footnoted(rows)
    lines = [f"## {title}", "", "| scheme | " + " | ".join(c.title for c in COLUMNS) + " |",
             "| --- | " + " | ".join("---" for _ in COLUMNS) + " |"]
    for row, marker in zip(rows, markers):
        lines.append(f"| {row['scheme']}{marker} | " + " | ".join(c.text(row) for c in COLUMNS) + " |")
    lines += [""] + [f"{n}  " for n in notes] + ([""] if notes else []) + table_legend(rows, narrow=False)
    return "\n".join(lines) + "\n"


def describe_hardware(flat: dict, varying: set[str] | frozenset = frozenset()) -> str:
    """The fixed conditions of a run (dotted config), one line: every summary says the same.
    Keys in ``varying`` (a sweep's axes) are named as varied instead of given a value."""
    def value(key: str, text: str) -> str:
        return f"{key.split('.', 1)[1]} varied" if key in varying else text

    device = flat.get("device.preset") or flat.get("device.table") or flat.get("device.model")
    if flat.get("device.model") == "exponential":
        device += (f" (NL {human(flat['device.nl_ltp'])}/{human(flat['device.nl_ltd'])} LTP/LTD, "
                   f"{flat['device.levels']} levels)")
    device_keys = {"device.preset", "device.table", "device.model", "device.nl_ltp", "device.nl_ltd", "device.levels"}
    if device_keys & set(varying):
        device = f"device varied ({', '.join(k.split('.', 1)[1] for k in sorted(device_keys & set(varying)))})"
    c2c = 100 * flat.get("device.c2c", 0.0)
    bits = flat.get("sensing.adc_bits")
    every = flat.get("sensing.every", 1)
    samples = flat.get("train.samples")
    epochs = flat.get("train.epochs", 1)
    seeds = flat.get("train.replicas", 1)
    window = flat.get("train.un_window", 0)
    cap = flat.get("scheme.max_pulses")
    parts = [
        device,
        value("device.c2c", f"c2c {human(c2c)} %"),
        value("sensing.adc_bits", "exact ADC" if bits == 0 else f"{bits}-bit ADC")
        + " every " + value("sensing.every", f"{every:,} samples"),
        value("scheme.max_pulses", f"cap {cap} pulses" if cap else "no pulse cap"),
    ]
    training = [
        value("train.epochs", f"{epochs} epoch{'s' if epochs != 1 else ''}") + " of "
        + value("train.samples", "all" if samples is None else f"{samples:,}") + " samples",
        value("train.replicas", f"{seeds} seed{'s' if seeds != 1 else ''}"),
        "UN window " + value("train.un_window", f"{window:,} updates"),
    ]
    return ", ".join(parts) + "; " + ", ".join(training)


def varying_keys(runs: list[Any]) -> list[str]:
    """Config keys whose value differs between runs (runtime keys and prices excluded), sorted."""
    keys: dict[str, set] = {}
    for run in runs:
        for key, value in run.config.items():
            if not key.startswith(("runtime.", "cost.")):
                keys.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
    all_keys = set().union(*(r.config.keys() for r in runs)) if runs else set()
    return sorted(k for k in all_keys if not k.startswith(("runtime.", "cost."))
                  and (len(keys.get(k, ())) > 1 or any(k not in r.config for r in runs)))
