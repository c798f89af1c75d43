"""Summaries of finished runs: the comparison row of one result, its accuracy as text, the
markdown table, and which config keys vary across a set of stored runs. Every experiment
(compare, sweep store, report, reproduce) reads results through these."""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

COST_COLUMNS = ("energy_j_per_sample", "latency_s_per_sample", "area_um2_per_synapse")
"""The hardware cost a comparison row carries (``result.json``'s ``cost``; None before pricing existed)."""


def summarize(result: dict, label: str | None = None) -> dict:
    """The comparison row of one finished run."""
    epochs = result["epochs"]
    accs = result["replicas"]
    un = [e["update_noise"]["window"] for e in epochs if math.isfinite(e["update_noise"]["window"])]
    un1 = [e["update_noise"]["window1"] for e in epochs if math.isfinite(e["update_noise"]["window1"])]
    return {
        "scheme": label or result["config"]["scheme"]["name"],
        "status": result["status"],
        "test_accuracy": result["test_accuracy"],
        "test_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "seeds": len(accs),
        "update_noise": statistics.mean(un) if un else float("nan"),
        "update_noise_window1": statistics.mean(un1) if un1 else float("nan"),
        "pulses_per_sample": statistics.mean(e["pulses"]["per_sample"] for e in epochs) if epochs else 0.0,
        "senses": sum(e["senses"] for e in epochs),
        "refreshes": sum(e["refreshes"] for e in epochs),
        "digital_bits": result["hardware"].get("digital_bits_per_synapse", 0),
        "extra_arrays": result["hardware"].get("extra_arrays", 0),
        "samples_per_s": result.get("samples_per_s"),
        **{key: (result.get("cost") or {}).get(key) for key in COST_COLUMNS},
    }


def format_accuracy(row: dict) -> str:
    """``93.74`` for one seed, ``93.74 ± 0.20`` (std over seeds) for several, ``failed``."""
    if row["test_accuracy"] is None:
        return "failed"
    if row.get("seeds", 2) > 1:
        return f"{row['test_accuracy'] * 100:.2f} ± {row['test_accuracy_std'] * 100:.2f}"
    return f"{row['test_accuracy'] * 100:.2f}"


def markdown_table(rows: list[dict], title: str) -> str:
    lines = [f"## {title}", "",
             "| scheme | test accuracy % | UN (window) | UN (window 1) | pulses/sample | senses | refreshes | "
             "digital bits/synapse | extra arrays | energy/sample (J) | latency/sample (s) | area (µm²/synapse) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        acc = format_accuracy(r)
        lines.append(f"| {r['scheme']} | {acc} | {r['update_noise']:.3g} | {r['update_noise_window1']:.3g} | "
                     f"{r['pulses_per_sample']:.1f} | {r['senses']:.3g} | {r['refreshes']:.0f} | {r['digital_bits']} | "
                     f"{r['extra_arrays']} | " + " | ".join(_cost_cell(r.get(k)) for k in COST_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def _cost_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


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
