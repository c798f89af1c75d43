"""Outputs of ``hnntrain device fit``: the device TOML, the mean-curve CSV and the figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hnntrain.io.fit import DeviceFit
from hnntrain.physics.devices.measured import FitError, TableCurves

# -- outputs -------------------------------------------------------------------------------

def _toml_float(value: float) -> str:
    return repr(float(f"{value:.6g}"))


def table_path_for(toml_path: str | Path) -> Path:
    """``dir/name.toml`` -> ``dir/name-table.csv``."""
    toml_path = Path(toml_path)
    return toml_path.with_name(f"{toml_path.stem}-table.csv")


def write_table_csv(table: TableCurves, path: str | Path) -> Path:
    """The mean curves in the ``direction,pulse,conductance`` (µS) format of ``read_curves``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["direction,pulse,conductance"]
    for direction, curve in (("LTP", table.ltp), ("LTD", table.ltd)):
        lines += [f"{direction},{p},{g:.6g}" for p, g in enumerate(curve)]
    path.write_text("\n".join(lines) + "\n")
    return path


def device_toml(fit: DeviceFit, table_path: str | Path) -> str:
    """The ``[device]`` table. The simulator draws NL spreads only from NL labels, so with a
    nonzero d2d_nl the curvature is given as labels (A in comments), else as A in pulses."""
    e = fit.exponential
    labels_usable = max(e.nl_ltp, e.nl_ltd) <= 9
    as_labels = fit.d2d_nl > 0 and labels_usable
    curvature = [f"nl_ltp = {_toml_float(e.nl_ltp)}", f"nl_ltd = {_toml_float(e.nl_ltd)}"]
    pulses = [f"a_ltp = {_toml_float(e.a_ltp)}  # pulses", f"a_ltd = {_toml_float(e.a_ltd)}  # pulses"]
    quality = "\n".join(f"#   {q.model:<11} {q.direction}: RMSE {q.rmse:.3g} µS, R² {q.r2:.4f}"
                        + (f", held-out RMSE {q.heldout_rmse:.3g} µS" if q.heldout_rmse is not None else "")
                        for q in fit.quality)
    lines = [
        f"# Fitted by `hnntrain device fit` from {', '.join(fit.data.sources)}",
        f"# ({fit.data.g.size} points, {len(fit.data.devices)} device(s), {len(np.unique(fit.data.cycle))} cycle(s)).",
        "# Fit quality:",
        quality,
        f"# Better model: {fit.better} ({fit.reason}).",
        "",
        "[device]",
        'model = "exponential"',
        *(curvature if as_labels else pulses),
        *(f"# {line}" for line in (pulses if as_labels else curvature)),
    ]
    if as_labels:
        lines.append("# (NL labels, not A, so that d2d_nl applies: the simulator draws spreads of NL labels)")
    elif fit.d2d_nl > 0:
        lines.append("# (d2d_nl is not applied: NL labels beyond 9 cannot be drawn, so A is given in pulses)")
    lines += [
        f"levels = {e.levels}",
        f"g_min = {_toml_float(e.g_min)}  # µS",
        f"g_max = {_toml_float(e.g_max)}  # µS",
        f"c2c = {_toml_float(fit.c2c)}  # per pulse, fraction of the range ({fit.c2c_method})",
        'c2c_mode = "additive"',
        f"d2d_nl = {_toml_float(fit.d2d_nl)}  # NL units",
        f"d2d_g = {_toml_float(fit.d2d_g)}  # fraction of the range",
        "",
        "# Alternative: the measured mean curve itself (g_min and g_max above then set its range)",
        '# model = "table"',
        f"# table = {json.dumps(str(table_path))}",
    ]
    return "\n".join(lines) + "\n"


def write_outputs(fit: DeviceFit, toml_path: str | Path):
    """Write the device TOML and ``<stem>-table.csv``; return (toml path, table path, the
    :class:`~hnntrain.spec.config.DeviceConfig` read back from the TOML)."""
    from hnntrain.io.resolve import resolve
    from hnntrain.spec.config import ConfigError

    toml_path = Path(toml_path)
    table_path = write_table_csv(fit.table, table_path_for(toml_path))
    toml_path.parent.mkdir(parents=True, exist_ok=True)
    toml_path.write_text(device_toml(fit, table_path))
    try:
        device = resolve(toml_path).device
    except ConfigError as err:  # a bug here, not the user's: say which file and why
        raise FitError(f"{toml_path}: the written device does not load ({err})") from None
    return toml_path, table_path, device


def plot_fit(fit: DeviceFit, path: str | Path) -> Path:
    """Left: conductance versus pulse (every cycle, faint) with the exponential and table
    curves. Right: ΔG per pulse versus the conductance before it, data and both models."""
    from hnntrain.io.plotting import pyplot

    plt = pyplot()
    m, e = fit.data, fit.exponential
    grid = m.grid()
    fig, (ax_g, ax_dg) = plt.subplots(1, 2, figsize=(11, 4.3))
    for index, (ltp, direction, color) in enumerate(((True, "LTP", "tab:red"), (False, "LTD", "tab:blue"))):
        sel = m.ltp == ltp
        table = fit.table.ltp if ltp else fit.table.ltd
        pulses = np.linspace(0, m.pulse[sel].max(), 300)
        ax_g.plot(m.pulse[sel], m.g[sel], ".", ms=3, alpha=0.25, color=color, label=f"{direction} data")
        ax_g.plot(pulses, e.predict(np.full(pulses.shape, ltp), pulses), color=color,
                  label=f"{direction} exponential (A = {getattr(e, f'a_{direction.lower()}'):.3g} pulses)")
        ax_g.plot(np.arange(table.size), table, "--", color="black" if ltp else "dimgray", lw=1,
                  label=f"{direction} table (mean)")
        before, steps = grid[:, index, :, :-1], np.diff(grid[:, index], axis=-1)
        ax_dg.plot(before.ravel(), steps.ravel(), ".", ms=3, alpha=0.25, color=color, label=f"{direction} data")
        g = np.linspace(e.g_min, e.g_max, 200)
        ax_dg.plot(g, e.step(g, ltp), color=color, label=f"{direction} exponential")
        ax_dg.plot(table[:-1], np.diff(table), "--", color="black" if ltp else "dimgray", lw=1,
                   label=f"{direction} table")
    ax_g.set_xlabel("pulses since the start of the sweep")
    ax_g.set_ylabel("conductance (µS)")
    ax_g.set_title("conductance versus pulse")
    ax_g.legend(fontsize=7)
    ax_dg.axhline(0, color="gray", lw=0.5)
    ax_dg.set_xlabel("conductance before the pulse (µS)")
    ax_dg.set_ylabel("ΔG per pulse (µS)")
    ax_dg.set_title("step versus state")
    ax_dg.legend(fontsize=7)
    fig.suptitle(f"device fit: {', '.join(Path(s).name for s in m.sources)}")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


