"""Cost tables of finished comparisons (the worked example of docs/cost.md), priced from the
runs' counters under the default prices and under other write-pulse technologies.

    hnntrain compare --device abrupt-ltd --samples 10000 --set train.test_samples=2000 --out runs/abrupt-ltd
    python experiments/cost_tables.py runs/abrupt-ltd [runs/abrupt-ltp ...] [--set cost.pulse_preset=pcm ...]

For each comparison directory: accuracy, energy and latency per sample, area and area overhead
per synapse, accuracy-energy Pareto front and energy breakdown (Markdown), then the energy
ranking under each write-pulse technology (``ag-a-si``, ``pcm``, ``ecram``); ``--compact``
prints only accuracy, energy, latency, area overhead and the Pareto front.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hnntrain.experiments.compare import run_label
from hnntrain.experiments.pricing import cost_markdown, cost_rows, format_energy, format_latency
from hnntrain.io.resolve import parse_assignments
from hnntrain.spec.presets import PULSE_PRICES


def load(directory: Path) -> list[tuple[str, dict]]:
    """(scheme label, result) of every run in a ``hnntrain compare`` output directory."""
    schemes = [r["scheme"] for r in json.loads((directory / "compare.json").read_text())["schemes"]]
    return [(spec, json.loads((directory / run_label(spec) / "result.json").read_text())) for spec in schemes]


def compact(entries: list[tuple[str, dict]], overrides: dict, title: str) -> str:
    """Accuracy, energy and latency per sample, area overhead, Pareto: the targets' table."""
    lines = [f"### {title}", "", "| scheme | test acc. % | energy/sample | latency/sample | area overhead µm²/synapse | "
             "Pareto |", "| --- | --- | --- | --- | --- | --- |"]
    for r in cost_rows(entries, overrides):
        lines.append(f"| {r['label']} | {100 * r['test_accuracy']:.2f} | {format_energy(r['energy_j_per_sample'])} | "
                     f"{format_latency(r['latency_s_per_sample'])} | {r['area_overhead_um2_per_synapse']:.3g} | "
                     f"{'★' if r['pareto'] else ''} |")
    return "\n".join(lines) + "\n"


def ranking(entries: list[tuple[str, dict]], overrides: dict) -> str:
    rows = sorted(cost_rows(entries, overrides), key=lambda r: r["energy_j_per_sample"])
    return ", ".join(f"{r['label']}{'★' if r['pareto'] else ''} {format_energy(r['energy_j_per_sample'])}"
                     for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="+", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="cost.KEY=VALUE")
    parser.add_argument("--compact", action="store_true", help="Only accuracy, energy, latency, area overhead, Pareto.")
    args = parser.parse_args()
    overrides = parse_assignments(args.overrides)
    for directory in args.directories:
        entries = load(directory)
        if args.compact:
            print(compact(entries, overrides, directory.name))
            continue
        print(cost_markdown(cost_rows(entries, overrides), f"{directory.name} {' '.join(args.overrides)}".strip()))
        for technology in PULSE_PRICES:
            print(f"- {technology} pulses, energy ranking (★ Pareto): "
                  f"{ranking(entries, {**overrides, 'cost.pulse_preset': technology})}")
        print()


if __name__ == "__main__":
    main()
