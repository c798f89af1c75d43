"""Figures and tables. Device responses now; comparison and sweep reports build on it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import torch

from hnntrain.devices.base import DeviceModel


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_device(model: DeviceModel, path: str | Path, title: str = "") -> dict[str, float | int]:
    """Two panels: conductance versus pulse number (LTP from g_min, LTD from g_max) and the
    per-pulse change versus conductance. Returns a summary of the nominal response."""
    plt = _pyplot()
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
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
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
            from hnntrain.devices.exponential import norm_a_to_nl

            summary[f"A {direction.upper()} (pulses)"] = float(a.double().mean())
            summary[f"NL {direction.upper()}"] = norm_a_to_nl(float(a.double().mean()) / model.levels)
    return summary


def plot_update_noise(results: dict[str, dict], path: str | Path, title: str = "") -> None:
    """UN versus training samples (long window, and the window-1 mean within each window),
    one line per run, from the ``un_trace`` of result.json files. Log scale: schemes differ by
    orders of magnitude."""
    plt = _pyplot()
    fig, (ax_w, ax_1) = plt.subplots(1, 2, figsize=(12, 4.8))
    omitted = []
    for name, result in results.items():
        trace = result.get("un_trace") or []
        if not trace:
            continue
        if max(t["window"] for t in trace) < 1e-6:  # floating point: only rounding, would flatten the rest
            omitted.append(name)
            continue
        samples = [t["samples"] for t in trace]
        ax_w.plot(samples, [t["window"] for t in trace], label=name)
        ax_1.plot(samples, [t["window1"] for t in trace], label=name)
    for ax, what in ((ax_w, "long window"), (ax_1, "window 1 (mean within each long window)")):
        ax.set_yscale("log")
        ax.set_xlabel("training samples")
        ax.set_ylabel("update noise ‖ΣΔW_real − ΣΔW_SGD‖² / ‖ΣΔW_SGD‖²")
        ax.set_title(f"UN, {what}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if omitted:
        title = f"{title} ({', '.join(omitted)}: UN < 1e-6, not shown)" if title else f"{', '.join(omitted)} not shown"
    if title:
        fig.suptitle(textwrap.fill(title, 110), fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_accuracy(results: dict[str, dict], path: str | Path, title: str = "") -> None:
    """Test accuracy (mean over replicas, band: min..max) versus training samples per run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, result in results.items():
        evals = result.get("evals") or []
        if not evals:
            continue
        samples = [e["samples"] for e in evals]
        ax.plot(samples, [100 * e["test_accuracy"] for e in evals], marker="o", ms=3, label=name)
        if len(evals[0]["replicas"]) > 1:
            ax.fill_between(samples, [100 * min(e["replicas"]) for e in evals],
                            [100 * max(e["replicas"]) for e in evals], alpha=0.15)
    ax.set_xlabel("training samples")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(textwrap.fill(title or "test accuracy", 70), fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
