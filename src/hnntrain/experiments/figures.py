"""How every figure looks, and the comparison figures (accuracy and update noise over training).

- A scheme keeps one colour in every figure of a comparison and of a report: the shipped
  schemes have fixed slots (:data:`SCHEME_SLOTS`); any other label takes the next free slot
  in sorted order. Colours come from the ten of ``tab10``; slots beyond ten add a line style
  and a marker (or a hatch, for bars), so no two series of a figure look alike.
- Legends sit outside the axes, to the right, never over data.
- Training-progress axes mark the epoch boundaries and print sample counts as people read
  them (``20k``); titles carry the fixed conditions (device, NL, c2c, ADC bits, interval,
  samples, seeds, UN window).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from hnntrain.experiments.summary import human
from hnntrain.io.plotting import pyplot, save

SCHEME_SLOTS = ("fp", "sgd", "unidirectional", "threshold", "manhattan", "mixed_precision", "tiki_taka",
                "nonlinearity_aware", "crus", "crus:accumulate=true", "crus:optimize=false")
"""Fixed style slots of the shipped schemes and variants (labels compared in lower case)."""
_LINES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P")
_HATCHES = ("", "//", "..", "xx", "\\\\", "oo")


def _slot_style(slot: int) -> dict:
    import matplotlib

    return {"color": matplotlib.colormaps["tab10"](slot % 10), "linestyle": _LINES[slot // 10 % len(_LINES)],
            "marker": _MARKERS[slot // 10 % len(_MARKERS)], "hatch": _HATCHES[slot // 10 % len(_HATCHES)]}


def scheme_styles(labels) -> dict[str, dict]:
    """``{label: {"color", "linestyle", "marker", "hatch"}}``: fixed for the shipped schemes,
    the next free slots (sorted) for any other label; distinct within one call."""
    known = {name: i for i, name in enumerate(SCHEME_SLOTS)}
    styles = {}
    free = len(SCHEME_SLOTS)
    for label in sorted(set(labels), key=lambda name: (name.lower() not in known, name)):
        slot = known.get(label.lower())
        if slot is None:
            slot, free = free, free + 1
        styles[label] = _slot_style(slot)
    return styles


def line_style(style: dict) -> dict:
    """The keyword arguments of ``ax.plot`` for a style."""
    return {"color": style["color"], "linestyle": style["linestyle"], "marker": style["marker"]}


def variant_style(style: dict, variant: int) -> dict:
    """A scheme's colour with the line style and marker of ``variant`` (the same scheme at
    another value of a second varying key); variant 0 is the scheme's own style."""
    other = _slot_style(10 * variant) if variant else style
    return {"color": style["color"], "linestyle": other["linestyle"], "marker": other["marker"]}


def cycle_styles(count: int) -> list[dict]:
    """``count`` distinct styles for series that are not schemes (runs within one panel)."""
    return [_slot_style(i) for i in range(count)]


def legend_outside(ax, **kwargs) -> None:
    """The legend to the right of the axes, outside the data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=7, **kwargs)


def samples_axis(ax, per_epoch: int | None = None, last: float | None = None) -> None:
    """Training samples on x: counts as ``20k`` and dotted lines at the epoch boundaries."""
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: human(x, 2)))
    ax.set_xlabel("training samples" + ("; dotted lines: epoch boundaries" if per_epoch else ""))
    if per_epoch and last:
        mark_epochs(ax, per_epoch, last)


def mark_epochs(ax, per_epoch: float, last: float) -> None:
    """Dotted vertical lines at every epoch boundary before ``last``."""
    boundary = per_epoch
    while boundary < last - 1e-9:
        ax.axvline(boundary, color="gray", linestyle=":", linewidth=0.8)
        boundary += per_epoch


def _per_epoch(results: dict[str, dict]) -> tuple[int | None, float]:
    """(samples per epoch, last sample) of a comparison's runs (they share the training set)."""
    for result in results.values():
        epochs = result.get("epochs") or []
        evals = result.get("evals") or []
        samples = result.get("config", {}).get("train", {}).get("samples")
        last = evals[-1]["samples"] if evals else 0
        if epochs:
            return (samples or (last // len(epochs) if last else None)), last
    return None, 0


def plot_update_noise(results: dict[str, dict], path: str | Path, title: str = "") -> None:
    """UN versus training samples (long window, and the window-1 mean within each window),
    one line per run, from the ``un_trace`` of result.json files. Log scale: schemes differ by
    orders of magnitude."""
    plt = pyplot()
    fig, (ax_w, ax_1) = plt.subplots(1, 2, figsize=(13, 4.8))
    styles = scheme_styles(results)
    omitted = []
    for name, result in results.items():
        trace = [t for t in result.get("un_trace") or [] if t.get("window") is not None]
        if not trace:
            continue
        if max(t["window"] for t in trace) < 1e-6:  # floating point: only rounding, would flatten the rest
            omitted.append(name)
            continue
        samples = [t["samples"] for t in trace]
        ax_w.plot(samples, [t["window"] for t in trace], label=name, ms=3, **line_style(styles[name]))
        ax_1.plot(samples, [t["window1"] for t in trace], label=name, ms=3, **line_style(styles[name]))
    per_epoch, last = _per_epoch(results)
    for ax, what in ((ax_w, "long window"), (ax_1, "window 1 (mean within each long window)")):
        ax.set_yscale("log")
        samples_axis(ax, per_epoch, last)
        ax.set_ylabel("update noise ‖ΣΔW_real − ΣΔW_SGD‖² / ‖ΣΔW_SGD‖²")
        ax.set_title(f"UN, {what}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    legend_outside(ax_1)
    if omitted:
        title = f"{title} ({', '.join(omitted)}: UN < 1e-6, not shown)" if title else f"{', '.join(omitted)} not shown"
    if title:
        fig.suptitle(textwrap.fill(title, 120), fontsize=9)
    save(plt, fig, path)


def plot_accuracy(results: dict[str, dict], path: str | Path, title: str = "") -> None:
    """Test (or validation) accuracy (mean over replicas, band: min..max) versus training samples per run."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    styles = scheme_styles(results)
    what = " or ".join(sorted({r.get("evaluated_on", "test") for r in results.values()})) + " accuracy"
    for name, result in results.items():
        evals = result.get("evals") or []
        if not evals:
            continue
        samples = [e["samples"] for e in evals]
        key = f"{result.get('evaluated_on', 'test')}_accuracy"  # a validation-split run never sees the test set
        ax.plot(samples, [100 * e[key] for e in evals], ms=3, label=name, **line_style(styles[name]))
        if len(evals[0]["replicas"]) > 1:
            ax.fill_between(samples, [100 * min(e["replicas"]) for e in evals],
                            [100 * max(e["replicas"]) for e in evals], alpha=0.15, color=styles[name]["color"])
    samples_axis(ax, *_per_epoch(results))
    ax.set_ylabel(f"{what} (%); band: min..max over seeds")
    ax.set_title(textwrap.fill(title or what, 80), fontsize=9)
    ax.grid(True, alpha=0.3)
    legend_outside(ax)
    save(plt, fig, path)
