"""Hardware cost of finished runs: re-pricing results and stores under other prices, the
accuracy-energy Pareto front, and the cost figures and tables of ``compare`` and ``report``.

Prices come from the run's own ``[cost]`` section (defaults for runs that predate it) with
``cost.*`` overrides on top; the counters come from the stored result, so nothing is trained
again (:mod:`hnntrain.physics.cost` has the model).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any, Callable, Mapping

from hnntrain.io.plotting import pyplot, save
from hnntrain.io.resolve import build_cost
from hnntrain.physics.cost import ENERGY_COMPONENTS, price_result
from hnntrain.spec.config import dotted_config

COMPONENT_LABELS = {
    "pulses": "update pulses",
    "sensing": "sensing reads + ADC",
    "extra_array_reads": "extra-array reads + ADC",
    "digital": "digital state access",
    "refresh": "refresh (resets + rewrites)",
    "forward_backward": "forward/backward array reads (shared)",
}


def reprice(result: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``cost`` of a finished run under its own prices with ``cost.*`` ``overrides``."""
    values = {f"cost.{k}": v for k, v in (result["config"].get("cost") or {}).items()}
    values.update(overrides or {})
    return price_result(result, build_cost(values, result["config"]["device"].get("preset")))


def run_cost(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """The stored ``cost`` of a run, priced now for runs that predate it; None for a run that
    never trained (or a bare summary without its config)."""
    if result.get("cost"):
        return result["cost"]
    if not result.get("epochs") or "config" not in result:
        return None
    return reprice(result)


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """For (accuracy, energy) points: True where no other point is at least as accurate and
    at most as costly, and better in one of the two."""
    def dominated(i: int) -> bool:
        a, e = points[i]
        return any(a2 >= a and e2 <= e and (a2 > a or e2 < e) for j, (a2, e2) in enumerate(points) if j != i)

    return [not dominated(i) for i in range(len(points))]


def cost_rows(entries: list[tuple[str, Mapping[str, Any]]], overrides: Mapping[str, Any] | None = None,
              group: Callable[[Mapping[str, Any]], Any] | None = None) -> list[dict[str, Any]]:
    """One row per (label, result) that trained: accuracy, cost (the stored one, or re-priced
    with ``overrides`` when given), breakdown, and membership of the accuracy-energy Pareto
    front among the rows of the same ``group(result)`` (default: all rows together)."""
    rows, keys = [], []
    for label, result in entries:
        cost = run_cost(result) if overrides is None else (reprice(result, overrides) if result.get("epochs") else None)
        if cost is None or result.get("test_accuracy") is None:
            continue
        rows.append({"label": label, "test_accuracy": result["test_accuracy"], **cost})
        keys.append(group(result) if group is not None else None)
    for key in set(keys):
        members = [r for r, k in zip(rows, keys) if k == key]
        for row, on_front in zip(members, pareto_front([(r["test_accuracy"], r["energy_j_per_sample"]) for r in members])):
            row["pareto"] = on_front
    return rows


def same_hardware(result: Mapping[str, Any]) -> str:
    """A key shared by runs on the same hardware and data (everything but the scheme, the seed
    replicas, runtime and prices): the runs whose costs compete on one Pareto front."""
    config = dotted_config(result["config"])
    return json.dumps({k: v for k, v in config.items() if not k.startswith(("scheme.", "runtime.", "cost."))},
                      sort_keys=True, default=str)


def _si(value: float | None, unit: str) -> str:
    """``1.23 nJ``-style text for joules, seconds and the like (``-`` for None)."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    for factor, prefix in ((1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, "")):
        if abs(value) < factor * 1000 or prefix == "":
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def format_energy(value: float | None) -> str:
    return _si(value, "J")


def format_latency(value: float | None) -> str:
    return _si(value, "s")


def cost_markdown(rows: list[dict[str, Any]], title: str) -> str:
    """Accuracy, energy and latency per sample, area per synapse, Pareto membership, and the
    energy breakdown of every row."""
    head = ["| run | test accuracy % | energy/sample | latency/sample | area µm²/synapse | area overhead µm² | "
            "Pareto (acc. vs energy) | " + " | ".join(COMPONENT_LABELS[c] for c in ENERGY_COMPONENTS) + " |",
            "| --- " * (7 + len(ENERGY_COMPONENTS)) + "|"]
    lines = [f"## {title}", "", *head]
    for r in rows:
        parts = [r["label"], f"{100 * r['test_accuracy']:.2f}", format_energy(r["energy_j_per_sample"]),
                 format_latency(r["latency_s_per_sample"]), f"{r['area_um2_per_synapse']:.3g}",
                 f"{r['area_overhead_um2_per_synapse']:.3g}", "yes" if r["pareto"] else "",
                 *(format_energy(r["energy_breakdown"][c]) for c in ENERGY_COMPONENTS)]
        lines.append("| " + " | ".join(parts) + " |")
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_energy(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> bool:
    """Test accuracy versus energy per sample (log scale), one point per run, the Pareto front
    (most accurate for its energy) joined and marked. False when nothing to plot."""
    if not rows:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for i, r in enumerate(sorted(rows, key=lambda r: r["energy_j_per_sample"])):
        ax.scatter(r["energy_j_per_sample"], 100 * r["test_accuracy"], s=60 if r["pareto"] else 30,
                   marker="*" if r["pareto"] else "o", zorder=3)
        ax.annotate(r["label"], (r["energy_j_per_sample"], 100 * r["test_accuracy"]), fontsize=7,
                    xytext=(4, 3 if i % 2 == 0 else -10), textcoords="offset points")  # neighbours alternate
    front = sorted((r["energy_j_per_sample"], 100 * r["test_accuracy"]) for r in rows if r["pareto"])
    ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="black", lw=1, ls="--",
            label="Pareto front (★)")
    ax.set_xscale("log")
    ax.set_xlabel("training energy per sample (J), log scale")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, which="both", alpha=0.3)
    return _finish(plt, fig, ax, title or "accuracy versus energy per sample", path)


def plot_energy_breakdown(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> bool:
    """Stacked bars: each run's energy per sample by component (J per sample, linear scale)."""
    if not rows:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(rows) + 3), 5))
    bottom = [0.0] * len(rows)
    for component in ENERGY_COMPONENTS:
        values = [r["energy_breakdown"][component] for r in rows]
        ax.bar(range(len(rows)), values, bottom=bottom, label=COMPONENT_LABELS[component])
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xticks(range(len(rows)), [r["label"] for r in rows], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("training energy per sample (J)")
    ax.grid(True, axis="y", alpha=0.3)
    return _finish(plt, fig, ax, title or "energy per sample by component", path)


def _finish(plt, fig, ax, title: str, path: str | Path) -> bool:
    ax.set_title(textwrap.fill(title, 80), fontsize=9)
    ax.legend(fontsize=7)
    save(plt, fig, path)
    return True


def cost_figures(rows: list[dict[str, Any]], out: Path, title: str, stem: str = "") -> list[str]:
    """Both figures in ``out`` and the Markdown that shows them and the table."""
    if not rows:
        return []
    lines = []
    if plot_accuracy_vs_energy(rows, out / f"{stem}accuracy-vs-energy.png", title=f"{title}: accuracy versus energy"):
        lines += [f"![accuracy versus energy per sample]({stem}accuracy-vs-energy.png)", ""]
    if plot_energy_breakdown(rows, out / f"{stem}energy-breakdown.png", title=f"{title}: energy per sample"):
        lines += [f"![energy breakdown]({stem}energy-breakdown.png)", ""]
    return lines + cost_markdown(rows, f"Hardware cost: {title}").splitlines() + [""]


def store_cost_section(runs: list, out: Path, group_keys: list[str], label) -> list[str]:
    """The report's cost section: one Pareto figure, breakdown and table per group of runs
    that share the values of ``group_keys`` (the non-scheme keys that vary)."""
    groups: dict[tuple, list] = {}
    for run in runs:
        if run.status == "ok":
            groups.setdefault(tuple(str(run.config.get(k)) for k in group_keys), []).append(run)
    lines = ["## Hardware cost: accuracy versus energy per sample", "",
             "Energy, latency and area priced from each run's counters (docs/cost.md); "
             "★ marks the accuracy-energy Pareto front within each group.", ""]
    for values, members in sorted(groups.items()):
        name = ", ".join(f"{k}={v}" for k, v in zip(group_keys, values)) or "all runs"
        stem = "".join(c if c.isalnum() else "-" for c in name) + "-" if group_keys else ""
        rows = cost_rows([(label(r.config), r.result) for r in members])
        lines += cost_figures(rows, out, name, stem)
    return lines
