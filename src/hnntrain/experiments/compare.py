"""Scheme comparison under identical hardware.

Every scheme runs on the same device model and the same device-to-device draws (they derive
from the run seed, which all schemes share), with the same pulse cap, ADC resolution and
sensing interval; seeds are replicas trained in lockstep. Writes ``compare.json``,
``compare.md`` and figures next to each scheme's own run directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from hnntrain.experiments.pricing import cost_figures, cost_rows
from hnntrain.experiments.summary import markdown_table, summarize
from hnntrain.io.resolve import build_config
from hnntrain.spec.config import RunConfig, flatten_config

DEFAULT_SCHEMES = ("fp", "sgd", "unidirectional", "threshold", "manhattan", "mixed_precision", "tiki_taka",
                   "nonlinearity_aware", "crus", "crus:accumulate=true")


def parse_scheme_spec(spec: str) -> dict[str, Any]:
    """``name`` or ``name:key=value,key=value`` -> ``scheme.*`` config values, so one comparison
    can hold variants of a scheme (``crus:accumulate=true``)."""
    from hnntrain.io.resolve import parse_value
    from hnntrain.spec.config import ConfigError

    name, _, options = spec.partition(":")
    values: dict[str, Any] = {"scheme.name": name.strip()}
    for item in filter(None, (o.strip() for o in options.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"scheme {spec!r}", "options are key=value, e.g. crus:accumulate=true")
        values[f"scheme.{key.strip()}"] = parse_value(value.strip())
    return values


def run_label(spec: str) -> str:
    """A file-system-safe directory name for a scheme spec."""
    return "".join(c if c.isalnum() or c in "_-" else "-" for c in spec)


def scheme_configs(base: dict[str, Any], schemes: list[str]) -> list[RunConfig]:
    """One validated config per scheme spec: the shared hardware plus the scheme and options."""
    return [build_config({**base, **parse_scheme_spec(spec)}) for spec in schemes]


def write_outputs(out: Path, results: dict[str, dict], base: dict[str, Any], title: str) -> list[dict]:
    from hnntrain.experiments.report import plot_accuracy, plot_update_noise

    rows = [summarize(r, label) for label, r in results.items()]
    priced = cost_rows(list(results.items()))
    on_front = {r["label"]: r["pareto"] for r in priced}
    for row in rows:  # on the accuracy-energy Pareto front of this comparison
        row["pareto_energy"] = on_front.get(row["scheme"], False)
    (out / "compare.json").write_text(json.dumps({"title": title, "hardware": base, "schemes": rows}, indent=2) + "\n")
    cost_md = cost_figures(priced, out, title)  # accuracy-energy front and energy breakdown
    (out / "compare.md").write_text(markdown_table(rows, title) + "".join(f"\n{line}" for line in cost_md))
    plot_accuracy(results, out / "accuracy.png", title=title)
    plot_update_noise(results, out / "update-noise.png", title=title)
    return rows


def compare(base: dict[str, Any], schemes: list[str], out: Path,
            train_one: Callable[[RunConfig, Path], dict]) -> tuple[list[dict], str]:
    """Run ``schemes`` on the shared ``base`` settings; ``train_one(cfg, dir)`` trains a run."""
    cfgs = scheme_configs(base, schemes)  # validate everything before the first run starts
    results = {}
    for spec, cfg in zip(schemes, cfgs):
        results[spec] = train_one(cfg, out / run_label(spec))
    first = flatten_config(cfgs[0])
    device = first.get("device.preset") or first.get("device.table") or first["device.model"]
    title = (f"{device}: {first['train.epochs']} epoch(s) of {first['train.samples'] or 'all'} samples, "
             f"{first['train.replicas']} seed(s), {first['sensing.adc_bits']}-bit ADC every {first['sensing.every']} "
             f"samples, c2c {first['device.c2c'] * 100:g} %, cap {first['scheme.max_pulses']} pulses")
    rows = write_outputs(out, results, base, title)
    return rows, title
