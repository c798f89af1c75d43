"""Scheme comparison under identical hardware (design section 6).

Every scheme runs on the same device model and the same device-to-device draws (they derive
from the run seed, which all schemes share), with the same pulse cap, ADC resolution and
sensing interval; seeds are replicas trained in lockstep. Writes ``compare.json``,
``compare.md`` and figures next to each scheme's own run directory.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Callable

from hnntrain.config import RunConfig, build_config, flatten_config

DEFAULT_SCHEMES = ("fp", "sgd", "unidirectional", "threshold", "manhattan", "mixed_precision", "tiki_taka",
                   "nonlinearity_aware", "crus", "crus:accumulate=true")


def parse_scheme_spec(spec: str) -> dict[str, Any]:
    """``name`` or ``name:key=value,key=value`` -> ``scheme.*`` config values, so one comparison
    can hold variants of a scheme (``crus:accumulate=true``)."""
    from hnntrain.config import ConfigError, parse_value

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
             "digital bits/synapse | extra arrays |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        acc = format_accuracy(r)
        lines.append(f"| {r['scheme']} | {acc} | {r['update_noise']:.3g} | {r['update_noise_window1']:.3g} | "
                     f"{r['pulses_per_sample']:.1f} | {r['senses']:.3g} | {r['refreshes']:.0f} | {r['digital_bits']} | "
                     f"{r['extra_arrays']} |")
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, results: dict[str, dict], base: dict[str, Any], title: str) -> list[dict]:
    from hnntrain.report import plot_accuracy, plot_update_noise

    rows = [summarize(r, label) for label, r in results.items()]
    (out / "compare.json").write_text(json.dumps({"title": title, "hardware": base, "schemes": rows}, indent=2) + "\n")
    (out / "compare.md").write_text(markdown_table(rows, title))
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
