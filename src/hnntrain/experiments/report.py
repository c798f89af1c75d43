"""Figures and tables: device responses, and the report of a results store (accuracy and update
noise versus every swept key, UN during training, a table of every run). How figures look
(one colour per scheme everywhere, legends outside): :mod:`hnntrain.experiments.figures`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import torch

from hnntrain.experiments.figures import (
    cycle_styles,
    legend_outside,
    line_style,
    mark_epochs,
    scheme_styles,
    variant_style,
)
from hnntrain.experiments.pricing import store_cost_section
from hnntrain.experiments.summary import (
    COLUMNS,
    describe_hardware,
    footnoted,
    format_accuracy,
    human,
    table_legend,
    varying_keys,
)
from hnntrain.io.plotting import pyplot, save
from hnntrain.physics.devices.base import DeviceModel


def plot_device(model: DeviceModel, path: str | Path, title: str = "") -> dict[str, float | int]:
    """Two panels: conductance versus pulse number (LTP from g_min, LTD from g_max) and the
    per-pulse change versus conductance. Returns a summary of the nominal response."""
    plt = pyplot()
    up, down = model.curves()
    pulses = torch.arange(up.numel())
    d_up, d_down = up.diff(), down.diff()
    linear = float(model.nominal_step)
    fig, (ax_curve, ax_step) = plt.subplots(1, 2, figsize=(10, 4))
    ax_curve.plot(pulses, up, label="LTP (from g_min)", color="tab:red")
    ax_curve.plot(pulses, down, label="LTD (from g_max)", color="tab:blue")
    ax_curve.plot(pulses, float(up[0]) + linear * pulses, ":", color="gray", label="linear reference")
    ax_curve.set_xlabel("pulse number")
    ax_curve.set_ylabel("conductance (µS)")
    ax_curve.legend()
    ax_curve.set_title("response")
    ax_step.plot(up[:-1], d_up, ".-", color="tab:red", label="LTP step")
    ax_step.plot(down[:-1], d_down, ".-", color="tab:blue", label="LTD step")
    ax_step.axhline(linear, ls=":", color="gray", label="+/- linear step")
    ax_step.axhline(-linear, ls=":", color="gray")
    ax_step.set_xlabel("conductance before the pulse (µS)")
    ax_step.set_ylabel("ΔG per pulse (µS)")
    ax_step.legend()
    ax_step.set_title("step versus state")
    if title:
        fig.suptitle(f"device: {title}")
    save(plt, fig, path)
    summary: dict[str, float | int] = {
        "model": model.name,
        "levels (pulses g_min->g_max)": model.levels,
        "g_min (µS)": float(up[0]),
        "g_max (µS)": float(down[0]),
        "linear step (µS)": linear,
        "LTP first/last step vs linear": f"{float(d_up[0]) / linear:.3g} / {float(d_up[-1]) / linear:.3g}",
        "LTD first/last step vs linear": f"{float(-d_down[0]) / linear:.3g} / {float(-d_down[-1]) / linear:.3g}",
    }
    for direction in ("ltp", "ltd"):
        a = getattr(model, f"a_{direction}", None)
        if a is not None:
            from hnntrain.physics.devices.exponential import norm_a_to_nl

            summary[f"A {direction.upper()} (pulses)"] = float(a.double().mean())
            summary[f"NL {direction.upper()}"] = norm_a_to_nl(float(a.double().mean()) / model.levels)
    return summary


# -- sweep reports (from a results store) -----------------------------------------------------------

AXIS_LABELS = {
    "device.nl_ltp": ("LTP nonlinearity NL (NeuroSim label, unitless)", 1.0, False),
    "device.nl_ltd": ("LTD nonlinearity NL (NeuroSim label, unitless)", 1.0, False),
    "device.a_ltp": ("LTP curvature A (pulses)", 1.0, False),
    "device.a_ltd": ("LTD curvature A (pulses)", 1.0, False),
    "device.levels": ("device levels (pulses from g_min to g_max)", 1.0, True),
    "device.c2c": ("cycle-to-cycle σ (% of conductance range)", 100.0, False),
    "device.d2d_nl": ("device-to-device σ of NL (NL units)", 1.0, False),
    "device.d2d_g": ("device-to-device σ of bounds (% of range)", 100.0, False),
    "sensing.adc_bits": ("ADC resolution (bits)", 1.0, False),
    "sensing.every": ("sensing interval K (training samples between senses)", 1.0, True),
    "sensing.read_noise": ("read-noise σ (% of conductance range)", 100.0, False),
    "scheme.max_pulses": ("pulse cap per device per update (pulses)", 1.0, True),
    "train.samples": ("training samples per epoch", 1.0, True),
    "train.lr": ("learning rate", 1.0, True),
}
"""Axis label, factor from stored value to plotted value, log scale — for the keys a sweep
usually varies; any other numeric key is plotted with its dotted name."""

_NOT_AXES = ("train.seed", "train.replicas", "data.dir", "scheme.name")


def scheme_label(config: dict) -> str:
    """``crus`` or ``crus:accumulate=True``: the scheme and its non-default options."""
    options = sorted((k[len("scheme."):], v) for k, v in config.items()
                     if k.startswith("scheme.") and k not in ("scheme.name", "scheme.max_pulses"))
    return config.get("scheme.name", "?") + (":" + ",".join(f"{k}={v}" for k, v in options) if options else "")


def _numeric(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _series_key(config: dict, exclude: str, others: list[str]) -> str:
    parts = [scheme_label(config)]
    parts += [f"{k.split('.', 1)[1]}={human(config.get(k))}" for k in others if k != exclude]
    return ", ".join(parts)


def plot_metric_vs_key(runs: list, key: str, path: str | Path, metric: str = "test_accuracy",
                       title: str = "") -> bool:
    """Mean over replicas (error bar: std over replicas) of ``metric`` versus config ``key``, one
    line per scheme (and per value of any other varying key). False when nothing to plot."""

    plt = pyplot()
    others = [k for k in varying_keys(runs) if k not in _NOT_AXES and not k.startswith("scheme.")]
    series: dict[str, list[tuple[float, float, float]]] = {}
    scheme_of: dict[str, str] = {}
    for run in runs:
        x, y = run.config.get(key), run.summary.get(metric)
        if run.status != "ok" or not _numeric(x) or y is None:
            continue
        scale_y = 100.0 if metric == "test_accuracy" else 1.0
        err = (run.summary.get("test_accuracy_std") or 0.0) if metric == "test_accuracy" else 0.0
        name = _series_key(run.config, key, others)
        scheme_of[name] = scheme_label(run.config)
        series.setdefault(name, []).append((x, y * scale_y, err * scale_y))
    if not series:
        return False
    label, factor, log_x = AXIS_LABELS.get(key, (key, 1.0, False))
    styles = scheme_styles(scheme_of.values())
    variants: dict[str, int] = {}
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    for name, points in sorted(series.items()):
        points.sort()
        variant = variants[scheme_of[name]] = variants.get(scheme_of[name], -1) + 1
        style = variant_style(styles[scheme_of[name]], variant)
        ax.errorbar([p[0] * factor for p in points], [p[1] for p in points], yerr=[p[2] for p in points],
                    ms=4, capsize=3, label=name, **style)
    ax.set_xlabel(label)
    if log_x:
        ax.set_xscale("log")
    if metric == "test_accuracy":
        ax.set_ylabel("test accuracy (%), mean ± std over seeds")
    else:
        ax.set_ylabel("update noise, long window (unitless)")
        ax.set_yscale("log")
    ax.set_title(textwrap.fill(title or f"{metric.replace('_', ' ')} versus {key}", 90), fontsize=8)
    ax.grid(True, alpha=0.3)
    legend_outside(ax)
    save(plt, fig, path)
    return True


def plot_un_vs_epoch(runs: list, path: str | Path, title: str = "") -> bool:
    """Long-window update noise versus training progress (epochs, fractional), one panel per
    scheme and one line per run in it (labelled by the keys that vary)."""

    plt = pyplot()
    others = [k for k in varying_keys(runs) if k not in _NOT_AXES and not k.startswith("scheme.")]
    panels: dict[str, list] = {}
    for run in runs:
        trace = run.result.get("un_trace") or []
        if run.status == "ok" and trace and any((t.get("window") or 0) > 1e-6 for t in trace):
            panels.setdefault(scheme_label(run.config), []).append(run)
    if not panels:
        return False
    cols = min(len(panels), 3)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 3.8 * rows), squeeze=False)
    colours = scheme_styles(panels)
    for ax, (scheme, members) in zip(axes.flat, sorted(panels.items())):
        last = 0.0
        for run, style in zip(members, cycle_styles(len(members))):
            per_epoch = run.config.get("train.samples") or run.result["epochs"][0].get("samples") or 60000
            trace = [t for t in run.result["un_trace"] if t.get("window") is not None]
            name = ", ".join(f"{k.split('.', 1)[1]}={human(run.config.get(k))}" for k in others) or run.config_hash[:8]
            ax.plot([t["samples"] / per_epoch for t in trace], [t["window"] for t in trace], ms=3, label=name,
                    **line_style(style))
            last = max([last] + [t["samples"] / per_epoch for t in trace])
        mark_epochs(ax, 1.0, last)
        ax.set_yscale("log")
        ax.set_xlabel("training progress (epochs; dotted: epoch boundaries)")
        ax.set_ylabel("update noise, long window (unitless)")
        ax.set_title(scheme, fontsize=9, color=colours[scheme]["color"])
        ax.grid(True, which="both", alpha=0.3)
        if len(members) > 1:
            legend_outside(ax)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(textwrap.fill(title, 110), fontsize=10)
    save(plt, fig, path)
    return True


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def store_report(runs: list, out: str | Path, title: str = "hnntrain sweep report") -> Path:
    """Markdown (``report.md``) and PNG figures for stored runs: accuracy (and UN) versus every
    numeric key the runs vary (nonlinearity, ADC bits, sensing interval, c2c ...), UN versus
    epoch, and a table of every run. Returns the Markdown path."""

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keys = varying_keys(runs)
    candidates = [k for k in keys if k not in _NOT_AXES and not k.startswith("scheme.")]
    categories = [k for k in candidates if any(not _numeric(r.config.get(k)) and r.config.get(k) is not None for r in runs)]
    # numeric keys that only follow a categorical one (a preset's NL values) are not axes of their own
    axes = [k for k in candidates if k not in categories and any(_numeric(r.config.get(k)) for r in runs)
            and not any(_follows(runs, k, c) for c in categories)]
    sweeps = sorted({r.sweep for r in runs})
    ok = [r for r in runs if r.status == "ok"]
    conditions = describe_hardware(runs[0].config, set(keys)) if runs else ""
    lines = [f"# {title}", "", f"Conditions: {conditions}.", "",
             f"{len(runs)} runs ({len(ok)} ok, {len(runs) - len(ok)} failed) from sweep(s) {', '.join(sweeps) or '-'}; "
             f"schemes: {', '.join(sorted({scheme_label(r.config) for r in runs}))}.",
             f"Varying keys: {', '.join(keys) or 'none'}. Accuracy: mean ± std over the seeds (replicas) of a run.", ""]
    for key in axes:
        name = key.replace(".", "-")
        if plot_metric_vs_key(runs, key, out / f"accuracy-vs-{name}.png", title=f"{title}: accuracy versus {key}; {conditions}"):
            lines += [f"## Accuracy versus {AXIS_LABELS.get(key, (key,))[0]}", "",
                      f"![accuracy versus {key}](accuracy-vs-{name}.png)", ""]
            lines += _pivot(runs, key) + [""]
        if plot_metric_vs_key(runs, key, out / f"un-vs-{name}.png", metric="update_noise",
                              title=f"{title}: update noise versus {key}; {conditions}"):
            lines += [f"![update noise versus {key}](un-vs-{name}.png)", ""]
    for key in categories:
        name = key.replace(".", "-")
        if plot_accuracy_by_category(runs, key, out / f"accuracy-by-{name}.png", title=f"{title}: accuracy per {key}; {conditions}"):
            lines += [f"## Accuracy per {key}", "", f"![accuracy per {key}](accuracy-by-{name}.png)", ""]
            lines += _pivot(runs, key) + [""]
    if plot_un_vs_epoch(runs, out / "un-vs-epoch.png", title=f"{title}: update noise during training; {conditions}"):
        lines += ["## Update noise versus epoch", "", "![update noise versus epoch](un-vs-epoch.png)", ""]
    def label(config: dict) -> str:
        return ", ".join([scheme_label(config), *(f"{k.split('.', 1)[1]}={human(config.get(k))}" for k in axes)])

    lines += store_cost_section(runs, out, categories, label)
    shown = [k for k in keys if not k.startswith("scheme.")]
    ordered = sorted(runs, key=lambda r: (scheme_label(r.config), [json_sort(r.config.get(k)) for k in keys]))
    rows = [{**r.summary, "scheme": scheme_label(r.config), "status": r.status} for r in ordered]
    markers, notes = footnoted(rows)
    lines += ["## Every run", "",
              "| hash | scheme | " + " | ".join(shown + ["status"] + [c.title for c in COLUMNS]) + " | seconds |",
              "| --- | --- | " + " | ".join("---" for _ in shown + ["status"] + COLUMNS) + " | --- |"]
    for r, row, marker in zip(ordered, rows, markers):
        lines.append(f"| {r.config_hash[:8]} | {row['scheme']}{marker} | "
                     + " | ".join([_fmt(r.config.get(k)) for k in shown] + [r.status] + [c.text(row) for c in COLUMNS])
                     + f" | {human(r.seconds)} |")
    lines += [""] + [f"{n}  " for n in notes] + ([""] if notes else []) + table_legend(rows, narrow=False)
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _follows(runs: list, numeric: str, category: str) -> bool:
    """True when every value of ``category`` comes with a single value of ``numeric``."""
    seen: dict = {}
    for r in runs:
        if seen.setdefault(str(r.config.get(category)), r.config.get(numeric)) != r.config.get(numeric):
            return False
    return True


def plot_accuracy_by_category(runs: list, key: str, path: str | Path, title: str = "") -> bool:
    """Grouped bars: one group per value of ``key`` (a preset, a device file ...), one bar per
    scheme; error bars are the std over seeds."""
    plt = pyplot()
    cells: dict[tuple[str, str], tuple[float, float]] = {}
    for r in runs:
        if r.status == "ok" and r.summary.get("test_accuracy") is not None:
            cells[(str(r.config.get(key)), scheme_label(r.config))] = (
                100 * r.summary["test_accuracy"], 100 * (r.summary.get("test_accuracy_std") or 0.0))
    if not cells:
        return False
    groups = sorted({g for g, _ in cells})
    schemes = sorted({s for _, s in cells})
    width = 0.8 / len(schemes)
    fig, ax = plt.subplots(figsize=(max(7.5, 1.1 * len(groups) * len(schemes) * 0.35 + 3), 4.8))
    styles = scheme_styles(schemes)
    for i, scheme in enumerate(schemes):
        xs = [g + (i - (len(schemes) - 1) / 2) * width for g in range(len(groups))]
        vals = [cells.get((group, scheme), (float("nan"), 0.0)) for group in groups]
        ax.bar(xs, [v[0] for v in vals], width, yerr=[v[1] for v in vals], capsize=2, label=scheme,
               color=styles[scheme]["color"], hatch=styles[scheme]["hatch"], edgecolor="white")
    ax.set_xticks(range(len(groups)), groups)
    ax.set_xlabel(key)
    ax.set_ylabel("test accuracy (%), mean ± std over seeds")
    low = min(v[0] for v in cells.values())
    ax.set_ylim(max(0.0, low - 5), 100)
    ax.set_title(textwrap.fill(title or f"accuracy per {key}", 90), fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    legend_outside(ax)
    save(plt, fig, path)
    return True


def json_sort(value):
    """A sort key that orders numbers numerically and puts anything else after them."""
    return (0, value, "") if _numeric(value) else (1, 0, str(value))


def _pivot(runs: list, key: str) -> list[str]:
    """Accuracy table: one row per value of ``key``, one column per scheme (other varying keys
    averaged over; say so when they exist)."""

    cells: dict[tuple, list] = {}
    for r in runs:  # test accuracies only: a validation-split run is listed under "Every run"
        if r.status == "ok" and r.config.get(key) is not None and r.summary.get("test_accuracy") is not None:
            cells.setdefault((r.config[key], scheme_label(r.config)), []).append(r.summary)
    schemes = sorted({s for _, s in cells})
    values = sorted({v for v, _ in cells}, key=json_sort)
    label, factor, _ = AXIS_LABELS.get(key, (key, 1.0, False))
    lines = [f"| {label} | " + " | ".join(schemes) + " |", "| --- | " + " | ".join("---" for _ in schemes) + " |"]
    for v in values:
        row = []
        for s in schemes:
            group = cells.get((v, s), [])
            if len(group) == 1:
                row.append(format_accuracy(group[0]))
            elif group:
                row.append(f"{100 * sum(g['test_accuracy'] for g in group) / len(group):.2f} (mean of {len(group)})")
            else:
                row.append("-")
        lines.append(f"| {v * factor:g} | " if _numeric(v) else f"| {v} | ")
        lines[-1] += " | ".join(row) + " |"
    return lines
