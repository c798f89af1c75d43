"""Fit device models to measured conductance-versus-pulse curves (``hnntrain device fit``).

Measured curves are read by :mod:`hnntrain.physics.devices.measured`; the device TOML, the
table CSV and the figure are written by :mod:`hnntrain.io.fit_output`.

Exponential (NeuroSim) model, with x = p / Pmax, Pmax = ``levels`` = pulses in the LTP sweep,
R = g_max - g_min and u = Pmax / A (A in pulses):

    G_LTP(p) = g_min + R f(x; u_LTP),     G_LTD(p) = g_max - R f(x; u_LTD)
    f(x; u)  = (1 - exp(-u x)) / (1 - exp(-u))          (f -> x as u -> 0: linear)

fitted by least squares to every point (both directions share g_min and g_max).

Cycle-to-cycle noise. NeuroSim adds N(0, (sigma R)^2) at every pulse, so the per-pulse
increments dG[c, k] = G[c, k] - G[c, k-1] of repeated cycles c scatter about their
cross-cycle mean with standard deviation sigma R:

    sigma = sqrt( sum_{c,k} (dG[c,k] - mean_c dG[c,k])^2 / sum_k (n_k - 1) ) / R

pooled over directions and devices (each device normalized by its own fitted R). A device
measured over one cycle only uses the residuals of its increments about the fitted model's
increments instead, with n - 4 degrees of freedom.

Device-to-device spread (several devices): every device is fitted on its own;
d2d_nl = the pooled sample sd of its NL labels (LTP and LTD), d2d_g = the pooled sample sd of
its g_min and g_max divided by the nominal range. Both include the fit's own uncertainty.

Table model: the mean conductance at each pulse number over all cycles and devices, made
monotone (running max for LTP, running min for LTD), as :func:`hnntrain.physics.devices.read_curves`
would; the comparison of the two models uses held-out cycles when there are several.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import least_squares

from hnntrain.physics.devices.exponential import (
    ExponentialDevice,
    norm_a_to_nl,
    normalized_curve,
)
from hnntrain.physics.devices.measured import (
    Measurements,
    TableCurves,
    _mean_curve,
    fit_table,
    read_measurements,
)

# -- models --------------------------------------------------------------------------------

_U_BOUNDS = (1e-6, 500.0)  # u = Pmax / A: 1e-6 is linear to 1e-7 of the range, 500 a one-pulse jump


def _shape(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """f(x; u) = (1 - exp(-u x)) / (1 - exp(-u)): the device model's normalized curve with a = 1/u."""
    return normalized_curve(x, 1.0 / np.asarray(u, dtype=np.float64))


@dataclass(frozen=True)
class ExponentialFit:
    """Fitted NeuroSim exponential model: bounds in µS, curvatures A in pulses."""

    g_min: float
    g_max: float
    a_ltp: float
    a_ltd: float
    levels: int

    @property
    def g_range(self) -> float:
        return self.g_max - self.g_min

    @property
    def nl_ltp(self) -> float:
        """NeuroSim NL label of LTP (0 linear .. 9 in NeuroSim's table; beyond is allowed here)."""
        return norm_a_to_nl(self.a_ltp / self.levels)

    @property
    def nl_ltd(self) -> float:
        return norm_a_to_nl(self.a_ltd / self.levels)

    def device(self) -> ExponentialDevice:
        """The fitted device as the simulator's model (float64, no variation)."""
        def scalar(value: float) -> torch.Tensor:
            return torch.tensor(value, dtype=torch.float64)

        return ExponentialDevice(scalar(self.g_min), scalar(self.g_max), self.levels, scalar(self.a_ltp),
                                 scalar(self.a_ltd))

    def predict(self, ltp: np.ndarray, pulse: np.ndarray) -> np.ndarray:
        """G after ``pulse`` pulses of the sweep (LTP from g_min, LTD from g_max), µS: the device
        model's closed form, so fit and simulation share one curve."""
        ltp = torch.as_tensor(np.asarray(ltp, dtype=bool))
        pulse = torch.as_tensor(np.asarray(pulse, dtype=np.float64))
        start = torch.where(ltp, torch.tensor(self.g_min, dtype=torch.float64), torch.tensor(self.g_max, dtype=torch.float64))
        return self.device().response(start, torch.where(ltp, pulse, -pulse)).numpy()

    def step(self, g: np.ndarray, ltp: bool) -> np.ndarray:
        """ΔG of one pulse from state g, µS (negative for LTD): the device model's response."""
        g = torch.as_tensor(np.asarray(g, dtype=np.float64))
        one = torch.full_like(g, 1.0 if ltp else -1.0)
        return (self.device().response(g, one) - g).numpy()


def _initial_u(x: np.ndarray, y: np.ndarray) -> float:
    """u from the normalized curve's height at mid-sweep: f(1/2; u) = 1 / (1 + exp(-u/2))."""
    mid = np.abs(x - 0.5) <= 0.1
    if not mid.any():
        return 1.0
    height = float(np.clip(np.median(y[mid]), 0.5 + 1e-3, 1 - 1e-3))
    return float(np.clip(2 * math.log(height / (1 - height)), 1e-3, 50.0))


def fit_exponential(m: Measurements, levels: int | None = None) -> ExponentialFit:
    """Least-squares fit of (g_min, R, u_LTP, u_LTD) to every point, in units of the data's
    spread so that the solver sees numbers near 1; both directions share the bounds."""
    levels = levels or m.levels
    scale = float(np.ptp(m.g)) or 1.0
    y, x = m.g / scale, m.pulse / levels
    lo, hi = float(y.min()), float(y.max())
    normalized = np.where(m.ltp, (y - lo) / (hi - lo or 1.0), (hi - y) / (hi - lo or 1.0))
    theta0 = [lo, hi - lo or 1.0, _initial_u(x[m.ltp], normalized[m.ltp]),
              _initial_u(x[~m.ltp], normalized[~m.ltp])]

    def residuals(theta: np.ndarray) -> np.ndarray:
        g_min, g_range, u_ltp, u_ltd = theta
        rise = g_range * _shape(x, np.where(m.ltp, u_ltp, u_ltd))
        return np.where(m.ltp, g_min + rise, g_min + g_range - rise) - y

    lower, upper = [0.0, 1e-9, _U_BOUNDS[0], _U_BOUNDS[0]], [np.inf, np.inf, _U_BOUNDS[1], _U_BOUNDS[1]]
    theta = least_squares(residuals, np.clip(theta0, lower, upper), bounds=(lower, upper)).x
    return ExponentialFit(g_min=float(theta[0] * scale), g_max=float((theta[0] + theta[1]) * scale),
                          a_ltp=levels / float(theta[2]), a_ltd=levels / float(theta[3]), levels=levels)


def _monotone_warnings(m: Measurements) -> list[str]:
    notes = []
    for ltp, direction in ((True, "LTP"), (False, "LTD")):
        sel = m.ltp == ltp
        mean = _mean_curve(m.pulse[sel], m.g[sel])
        backward = np.diff(mean) * (1 if ltp else -1) < 0
        if backward.any():
            worst = float(-(np.diff(mean) * (1 if ltp else -1)).min())
            notes.append(f"{direction} mean curve goes backwards at {int(backward.sum())} of {backward.size} pulses "
                         f"(largest {worst:.3g} µS): the data are not monotonic; the table model uses its running "
                         f"{'max' if ltp else 'min'}")
    missing = [d for ltp, d in ((True, "LTP"), (False, "LTD"))
               if np.unique(m.pulse[m.ltp == ltp]).size < int(m.pulse[m.ltp == ltp].max()) + 1]
    if missing:
        notes.append(f"column 'pulse': {' and '.join(missing)} skip some pulse numbers; the table model "
                     "interpolates them linearly")
    return notes


# -- noise ---------------------------------------------------------------------------------

def estimate_c2c(m: Measurements, device_fits: Sequence[ExponentialFit]) -> tuple[float, str]:
    """Per-pulse cycle-to-cycle sigma as a fraction of the range (module docstring), and how
    it was estimated."""
    grid = m.grid()
    steps = np.diff(grid, axis=-1)  # (device, direction, cycle, pulse)
    seen = np.isfinite(steps)
    count = seen.sum(axis=2, keepdims=True)
    mean = np.where(seen, steps, 0.0).sum(axis=2, keepdims=True) / np.maximum(count, 1)
    across = np.where(seen & (count >= 2), steps - mean, 0.0)
    ss_across = (across**2).sum(axis=(1, 2, 3))
    dof_across = np.maximum(count - 1, 0).sum(axis=(1, 2, 3))
    # one cycle: residuals about the fitted model's increments (4 fitted parameters)
    pulses = np.arange(grid.shape[-1])
    ltp = np.array([True, False])[:, None]
    model = np.stack([fit.predict(ltp, pulses[None, :]) for fit in device_fits])  # (device, direction, pulse)
    about_model = np.where(seen, steps - np.diff(model, axis=-1)[:, :, None, :], 0.0)
    ss_model = (about_model**2).sum(axis=(1, 2, 3))
    dof_model = np.maximum(seen.sum(axis=(1, 2, 3)) - 4, 1)
    repeated = dof_across > 0
    ss = np.where(repeated, ss_across, ss_model)
    dof = np.where(repeated, dof_across, dof_model)
    ranges = np.array([fit.g_range for fit in device_fits])
    sigma = float(np.sqrt((ss / ranges**2).sum() / dof.sum()))
    if repeated.all():
        method = "spread of per-pulse increments across cycles"
    elif not repeated.any():
        method = "increments about the fitted model's increments (one cycle)"
    else:
        method = "across cycles where repeated, else about the fitted model's increments"
    return sigma, method


def estimate_d2d(device_fits: Sequence[ExponentialFit], nominal: ExponentialFit) -> tuple[float, float]:
    """(d2d_nl in NL units, d2d_g as a fraction of the nominal range); zeros for one device."""
    if len(device_fits) < 2:
        return 0.0, 0.0
    nl = np.array([[fit.nl_ltp, fit.nl_ltd] for fit in device_fits])
    bounds = np.array([[fit.g_min, fit.g_max] for fit in device_fits])
    d2d_nl = float(np.sqrt(nl.var(axis=0, ddof=1).mean()))
    d2d_g = float(np.sqrt(bounds.var(axis=0, ddof=1).mean()) / nominal.g_range)
    return d2d_nl, d2d_g


# -- quality -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Quality:
    """Fit quality of one model in one direction: RMSE in µS, R^2, and the RMSE on held-out
    cycles (or devices) when there are several."""

    model: str
    direction: str
    rmse: float
    r2: float
    heldout_rmse: float | None


def _rmse_r2(pred: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    ss = float(((pred - g) ** 2).sum())
    total = float(((g - g.mean()) ** 2).sum())
    return math.sqrt(ss / g.size), (1 - ss / total) if total > 0 else float("nan")


def _folds(m: Measurements) -> tuple[np.ndarray | None, str]:
    if len(np.unique(m.cycle)) >= 2:
        return m.cycle, "leave-one-cycle-out"
    if len(np.unique(m.device)) >= 2:
        return m.device, "leave-one-device-out"
    return None, "in-sample (one cycle of one device)"


def _heldout_predictions(m: Measurements, folds: np.ndarray) -> dict[str, np.ndarray]:
    """Each point predicted by both models fitted without its fold (refits per fold)."""
    out = {"exponential": np.empty_like(m.g), "table": np.empty_like(m.g)}
    for fold in np.unique(folds):
        test = folds == fold
        train = m.subset(~test)
        if train.ltp.all() or not train.ltp.any():  # a fold took a whole direction
            out["exponential"][test] = out["table"][test] = np.nan
            continue
        out["exponential"][test] = fit_exponential(train, m.levels).predict(m.ltp[test], m.pulse[test])
        out["table"][test] = fit_table(train).predict(m.ltp[test], m.pulse[test])
    return out


def assess(m: Measurements, nominal: ExponentialFit, table: TableCurves) -> tuple[list[Quality], str, str]:
    """Per model and direction quality, the model judged better, and a sentence on why."""
    folds, validation = _folds(m)
    heldout = _heldout_predictions(m, folds) if folds is not None else None
    models = {"exponential": nominal, "table": table}
    quality, sse = [], {}
    for name, model in models.items():
        pred = model.predict(m.ltp, m.pulse)
        for ltp, direction in ((True, "LTP"), (False, "LTD")):
            sel = m.ltp == ltp
            rmse, r2 = _rmse_r2(pred[sel], m.g[sel])
            held = None
            if heldout is not None:
                err = heldout[name][sel] - m.g[sel]
                held = float(np.sqrt(np.nanmean(err**2)))
            quality.append(Quality(name, direction, rmse, r2, held))
        judged = heldout[name] if heldout is not None else pred
        sse[name] = float(np.nanmean((judged - m.g) ** 2))
    better = min(sse, key=sse.get)
    rmse_text = ", ".join(f"{name} {math.sqrt(v):.3g} µS" for name, v in sse.items())
    if heldout is not None:
        reason = f"{validation} RMSE, both directions: {rmse_text}"
    else:
        reason = (f"in-sample RMSE: {rmse_text}; with one cycle the table interpolates the data exactly, so its "
                  "RMSE says nothing about new cycles — prefer the exponential model unless its residuals show a "
                  "shape it cannot follow")
    return quality, better, reason


# -- the whole fit -------------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceFit:
    """Everything ``hnntrain device fit`` learns from the measurements."""

    data: Measurements
    exponential: ExponentialFit
    """Fit to every point of every device: the nominal device."""
    per_device: tuple[ExponentialFit, ...]
    table: TableCurves
    c2c: float
    """Per-pulse sigma, fraction of the range."""
    c2c_method: str
    d2d_nl: float
    d2d_g: float
    quality: tuple[Quality, ...]
    better: str
    reason: str
    warnings: tuple[str, ...]

    def summary(self) -> list[tuple[str, str]]:
        """(quantity, value) rows for the command's table."""
        e, m = self.exponential, self.data
        return [
            ("data", (f"{m.g.size} points, {len(m.devices)} device(s), {len(np.unique(m.cycle))} cycle(s), "
                      f"read as {m.unit}")),
            ("levels (LTP pulses, Pmax)", str(e.levels)),
            ("g_min / g_max (µS)", f"{e.g_min:.4g} / {e.g_max:.4g}"),
            ("A LTP / LTD (pulses)", f"{e.a_ltp:.4g} / {e.a_ltd:.4g}"),
            ("NL LTP / LTD", f"{e.nl_ltp:.3g} / {e.nl_ltd:.3g}"),
            ("c2c (per pulse, fraction of range)", f"{self.c2c:.3g}  ({self.c2c_method})"),
            ("d2d_nl (NL units) / d2d_g (fraction)", f"{self.d2d_nl:.3g} / {self.d2d_g:.3g}"
             + ("" if len(m.devices) > 1 else "  (one device)")),
            ("better model", f"{self.better}  ({self.reason})"),
        ]


def fit_measurements(m: Measurements) -> DeviceFit:
    """Fit both models, estimate the noise, judge the fit; never raises for noisy data."""
    with np.errstate(all="ignore"):  # degenerate folds give NaN, reported as such
        nominal = fit_exponential(m)
        per_device = (tuple(fit_exponential(m.subset(m.device == d), m.levels) for d in range(len(m.devices)))
                      if len(m.devices) > 1 else (nominal,))
        table = fit_table(m)
        c2c, method = estimate_c2c(m, per_device)
        d2d_nl, d2d_g = estimate_d2d(per_device, nominal)
        quality, better, reason = assess(m, nominal, table)
    notes = list(m.warnings) + _monotone_warnings(m) + _fit_warnings(m, nominal, c2c, d2d_g, quality)
    return DeviceFit(m, nominal, per_device, table, min(c2c, 1.0), method, d2d_nl, min(d2d_g, 0.5),
                     tuple(quality), better, reason, tuple(notes))


def _fit_warnings(m: Measurements, nominal: ExponentialFit, c2c: float, d2d_g: float,
                  quality: list[Quality]) -> list[str]:
    notes = []
    for q in quality:
        if q.model == "exponential" and not q.r2 >= 0.8:
            notes.append(f"{q.direction}: the exponential model explains only R² = {q.r2:.2f} of the variance; the "
                         "curve is very noisy or not exponential — check the plot (--plot)")
    mean_step = nominal.g_range / nominal.levels
    if c2c * nominal.g_range > mean_step:
        notes.append(f"cycle-to-cycle noise per pulse ({c2c:.3g} of the range) exceeds the mean step "
                     f"({1 / nominal.levels:.3g} of the range): the curves are dominated by noise")
    if c2c > 1 or d2d_g > 0.5:
        notes.append("c2c capped at 1 and d2d_g at 0.5 (the simulator's limits); the data are extremely noisy")
    ltd_pulses = int(m.pulse[~m.ltp].max())
    if ltd_pulses != nominal.levels:
        notes.append(f"LTD sweeps have {ltd_pulses} pulses but LTP sweeps {nominal.levels}; the exponential model "
                     "assumes both take levels pulses between the bounds")
    for direction in ("ltp", "ltd"):
        if nominal.levels / getattr(nominal, f"a_{direction}") <= 1.01 * _U_BOUNDS[0]:
            notes.append(f"{direction.upper()} fits as linear (A at its bound); if the curve accelerates (convex), "
                         'the exponential model cannot follow it — consider model = "table"')
        nl = getattr(nominal, f"nl_{direction}")
        if nl > 9:
            notes.append(f"NL {direction.upper()} = {nl:.3g} is beyond NeuroSim's table (0..9); the TOML gives A in "
                         "pulses, which the simulator accepts")
    return notes


def fit_files(paths: Sequence[str | Path] | str | Path, units: str | None = None) -> DeviceFit:
    """Read the CSV files and fit them (raises :class:`FitError` for unusable input)."""
    return fit_measurements(read_measurements(paths, units))


