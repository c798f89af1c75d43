"""Fit device models to measured conductance-versus-pulse curves (``hnntrain device fit``).

Input: CSV rows ``direction, pulse, conductance[, cycle][, device]`` (see docs/device-fit.md for
the accepted header aliases and units). ``pulse`` counts from the first reading of each sweep
(0 = the state before the first pulse of that direction). Conductances are converted to µS.

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
monotone (running max for LTP, running min for LTD), as :func:`hnntrain.devices.read_curves`
would; the comparison of the two models uses held-out cycles when there are several.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from hnntrain.devices.exponential import norm_a_to_nl


class FitError(ValueError):
    """Measured curves cannot be fitted; the message names the file, row or column and the fix."""


# -- reading -------------------------------------------------------------------------------

UNITS_TO_MICROSIEMENS = {
    "s": 1e6, "siemens": 1e6,
    "ms": 1e3, "millisiemens": 1e3,
    "us": 1.0, "\u00b5s": 1.0, "\u03bcs": 1.0, "microsiemens": 1.0,  # micro sign and Greek mu
    "ns": 1e-3, "nanosiemens": 1e-3,
}
"""Conductance unit (lower case) -> factor to microsiemens."""

COLUMN_ALIASES = {
    "direction": ("direction", "dir", "type", "polarity"),
    "pulse": ("pulse", "pulses", "pulse_number", "pulse_no", "pulse_num", "pulse_index", "n", "p"),
    "conductance": ("conductance", "g", "cond"),
    "cycle": ("cycle", "cycles", "cycle_number", "cycle_no", "cycle_num"),
    "device": ("device", "devices", "device_id", "dev", "cell"),
}
"""Column role -> accepted header names (after lower-casing, spaces and dashes -> ``_``, and
dropping ``#``/``.``). Other columns are ignored."""

REQUIRED_COLUMNS = ("direction", "pulse", "conductance")

DIRECTION_ALIASES = {
    True: ("ltp", "potentiation", "pot", "set", "up", "increase", "+"),
    False: ("ltd", "depression", "dep", "reset", "down", "decrease", "-"),
}
"""LTP (True) / LTD (False) -> accepted ``direction`` values (case-insensitive). SET raises the
conductance of RRAM and PCM cells, RESET lowers it."""

_ROLE_OF_NAME = {name: role for role, names in COLUMN_ALIASES.items() for name in names}
_DIRECTION_OF_VALUE = {value: ltp for ltp, values in DIRECTION_ALIASES.items() for value in values}
_MIN_PULSES = 3  # distinct pulse numbers per direction: two points fit any curve
_MAX_PULSE = 1_000_000  # readings live on a dense pulse grid; a larger number is a typo


def _normalize(name: str) -> str:
    name = re.sub(r"[\s\-]+", "_", name.strip().lower())
    return re.sub(r"[#.]", "", name).strip("_")


def _column_role(cell: str) -> tuple[str | None, str | None]:
    """Header cell -> (role or None, unit text or None): ``G (uS)``, ``conductance [S]``,
    ``conductance_nS`` and ``G/mS`` all name the conductance with a unit."""
    text, unit = cell, None
    bracketed = re.fullmatch(r"\s*(.*?)\s*[(\[]\s*([^)\]]*?)\s*[)\]]\s*", cell)
    if bracketed:
        text, unit = bracketed.group(1), bracketed.group(2)
    name = _normalize(text)
    role = _ROLE_OF_NAME.get(name)
    if role is None and unit is None:
        suffixed = re.fullmatch(r"(.+?)[_/]([a-z\u00b5\u03bc]+)", name)
        if suffixed and _ROLE_OF_NAME.get(suffixed.group(1)) == "conductance" and suffixed.group(2) in UNITS_TO_MICROSIEMENS:
            role, unit = "conductance", suffixed.group(2)
    return role, unit


def _unit_factor(unit: str, where: str) -> float:
    factor = UNITS_TO_MICROSIEMENS.get(unit.strip().lower())
    if factor is None:
        raise FitError(f"{where}: unknown conductance unit {unit!r}; use S, mS, uS or nS")
    return factor


@dataclass(frozen=True)
class _FileRows:
    """The parsed rows of one CSV file."""

    row: np.ndarray  # file line numbers, for messages
    ltp: np.ndarray
    pulse: np.ndarray  # as written in the file
    g: np.ndarray  # in the file's unit
    cycle: list[str]  # inferred from repeated pulse numbers when the file has no cycle column
    device: list[str] | None
    unit: str | None  # from the header


def _read_table(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, cells) of a comma, semicolon or tab separated file; blank
    lines and lines starting with ``#`` are skipped."""
    if not path.is_file():
        raise FitError(f"{path}: file not found; pass a CSV with columns direction,pulse,conductance")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheet exports start with a BOM
    except UnicodeDecodeError as err:
        raise FitError(f"{path}: not UTF-8 text (byte {err.start}); export the sheet as CSV (UTF-8)") from None
    lines = text.splitlines()
    first = next((line for line in lines if line.strip() and not line.lstrip().startswith("#")), "")
    delimiter = next((d for d in (",", ";", "\t") if d in first), ",")
    reader = csv.reader(lines, delimiter=delimiter)
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = cells
            else:
                rows.append((reader.line_num, cells))
    except csv.Error as err:
        raise FitError(f"{path}, row {reader.line_num + 1}: not readable as CSV ({err})") from None
    if header is None:
        raise FitError(f"{path}, row 1: no header; the first row must name the columns direction,pulse,conductance")
    return header, rows


def _columns(path: Path, header: list[str]) -> tuple[dict[str, int], str | None]:
    """Role -> column index, and the conductance unit named in the header (if any)."""
    found: dict[str, int] = {}
    unit = None
    for index, cell in enumerate(header):
        role, cell_unit = _column_role(cell)
        if role is None:
            continue
        if role in found:
            raise FitError(f"{path}: columns {header[found[role]]!r} and {cell!r} both name the {role}; keep one")
        found[role] = index
        if role == "conductance" and cell_unit:
            _unit_factor(cell_unit, f"{path}, column {cell!r}")
            unit = cell_unit
    missing = [role for role in REQUIRED_COLUMNS if role not in found]
    if missing:
        hints = "; ".join(f"{role}: {', '.join(COLUMN_ALIASES[role])}" for role in missing)
        raise FitError(f"{path}: missing column(s) {', '.join(repr(m) for m in missing)} (accepted names: {hints}); "
                       f"header is {header}")
    return found, unit


def _number(text: str, path: Path, row: int, column: str) -> float:
    text = text.strip()
    decimal = text.replace(",", ".") if "," in text and "." not in text else text  # 1,5 from ;-separated sheets
    try:
        value = float(decimal)
    except ValueError:
        raise FitError(f"{path}, row {row}, column {column!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise FitError(f"{path}, row {row}, column {column!r}: {text!r} is not a finite number")
    return value


def _parse_row(path: Path, row: int, cells: list[str], cols: dict[str, int], header: list[str]):
    if len(cells) <= max(cols.values()):
        raise FitError(f"{path}, row {row}: {len(cells)} fields, but column {header[max(cols.values())]!r} is "
                       f"field {max(cols.values()) + 1}; fill in every column")
    name = {role: header[index] for role, index in cols.items()}
    direction = cells[cols["direction"]].strip().lower()
    if direction not in _DIRECTION_OF_VALUE:
        raise FitError(f"{path}, row {row}, column {name['direction']!r}: {cells[cols['direction']]!r} is neither "
                       f"LTP ({', '.join(DIRECTION_ALIASES[True])}) nor LTD ({', '.join(DIRECTION_ALIASES[False])})")
    pulse = _number(cells[cols["pulse"]], path, row, name["pulse"])
    if pulse < 0 or pulse != int(pulse) or pulse > _MAX_PULSE:
        raise FitError(f"{path}, row {row}, column {name['pulse']!r}: {cells[cols['pulse']]!r} is not a whole "
                       f"number of pulses in 0..{_MAX_PULSE:,}")
    g = _number(cells[cols["conductance"]], path, row, name["conductance"])
    if g < 0:
        raise FitError(f"{path}, row {row}, column {name['conductance']!r}: conductance {g} is negative; "
                       "subtract no offset, give the measured conductance")
    labels = []
    for role in ("cycle", "device"):
        if role in cols:
            label = cells[cols[role]].strip()
            if not label:
                raise FitError(f"{path}, row {row}, column {name[role]!r}: empty; give every row its {role}")
            labels.append(label)
        else:
            labels.append(None)
    return _DIRECTION_OF_VALUE[direction], int(pulse), g, labels[0], labels[1]


def _occurrence(keys: np.ndarray) -> np.ndarray:
    """For each element, how many earlier elements share its key (0 for the first)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_keys)) + 1]
    rank_sorted = np.arange(keys.size) - np.repeat(starts, np.diff(np.r_[starts, keys.size]))
    rank = np.empty_like(rank_sorted)
    rank[order] = rank_sorted
    return rank


def _read_file(path: Path) -> _FileRows:
    header, raw = _read_table(path)
    cols, unit = _columns(path, header)
    parsed = [_parse_row(path, row, cells, cols, header) for row, cells in raw]
    if not parsed:
        raise FitError(f"{path}, row 2: no data rows under the header")
    ltp, pulse, g, cycle, device = (list(col) for col in zip(*parsed))
    rows = np.array([row for row, _ in raw])
    ltp_arr, pulse_arr = np.array(ltp, dtype=bool), np.array(pulse, dtype=np.int64)
    device_codes = np.unique(np.array(device if "device" in cols else [""] * len(rows)), return_inverse=True)[1]
    sweep = (device_codes * 2 + ltp_arr) * (pulse_arr.max() + 1) + pulse_arr
    if "cycle" in cols:
        cycle_codes = np.unique(np.array(cycle), return_inverse=True)[1]
        _no_duplicates(path, rows, sweep * (cycle_codes.max() + 1) + cycle_codes, header[cols["pulse"]])
    else:  # a pulse number seen again (same device and direction) starts the next cycle
        cycle = [str(k + 1) for k in _occurrence(sweep)]
    return _FileRows(rows, ltp_arr, pulse_arr, np.array(g, dtype=np.float64), cycle,
                     device if "device" in cols else None, unit)


def _no_duplicates(path: Path, rows: np.ndarray, keys: np.ndarray, pulse_column: str) -> None:
    repeated = np.flatnonzero(_occurrence(keys) > 0)
    if repeated.size:
        second = repeated[0]
        first = np.flatnonzero(keys == keys[second])[0]
        raise FitError(f"{path}, rows {rows[first]} and {rows[second]}, column {pulse_column!r}: the same pulse "
                       "number twice in one cycle, direction and device; give each repetition its own cycle")


@dataclass(frozen=True)
class Measurements:
    """Every reading, flat: one element per point. Conductances in µS; ``pulse`` counts from
    the first reading of its sweep (device, direction, cycle)."""

    ltp: np.ndarray
    pulse: np.ndarray
    g: np.ndarray
    cycle: np.ndarray
    """Cycle code per point (index into ``cycles``)."""
    device: np.ndarray
    """Device code per point (index into ``devices``)."""
    cycles: tuple[str, ...]
    devices: tuple[str, ...]
    sources: tuple[str, ...]
    unit: str
    """The unit the files were written in."""
    warnings: tuple[str, ...]

    @property
    def levels(self) -> int:
        """Pmax: pulses in the (longest) LTP sweep."""
        return int(self.pulse[self.ltp].max())

    def grid(self) -> np.ndarray:
        """Readings on a dense grid (device, direction 0=LTP 1=LTD, cycle, pulse); NaN where
        nothing was measured."""
        grid = np.full((len(self.devices), 2, len(self.cycles), int(self.pulse.max()) + 1), np.nan)
        grid[self.device, (~self.ltp).astype(int), self.cycle, self.pulse] = self.g
        return grid

    def subset(self, keep: np.ndarray) -> Measurements:
        return Measurements(self.ltp[keep], self.pulse[keep], self.g[keep], self.cycle[keep], self.device[keep],
                            self.cycles, self.devices, self.sources, self.unit, self.warnings)


def _resolve_unit(files: Sequence[tuple[Path, _FileRows]], units: str | None) -> tuple[str, float, list[str]]:
    """One unit for every file: the header's, the option's, or µS; mixed units are an error."""
    notes: list[str] = []
    if units is not None:
        _unit_factor(units, "--units")
    named = {path: rows.unit for path, rows in files if rows.unit}
    for path, unit in named.items():
        if units is not None and UNITS_TO_MICROSIEMENS[unit.lower()] != UNITS_TO_MICROSIEMENS[units.lower()]:
            raise FitError(f"{path}: the conductance column says {unit}, but --units says {units}; "
                           "drop --units or fix the header")
    factors = {UNITS_TO_MICROSIEMENS[u.lower()] for u in named.values()}
    if len(factors) > 1:
        raise FitError("mixed units in the conductance column: "
                       + ", ".join(f"{p}: {u}" for p, u in named.items()) + "; convert the files to one unit")
    unnamed = [str(path) for path, rows in files if not rows.unit]
    if named and unnamed and units is None:
        raise FitError(f"{', '.join(unnamed)}: the conductance column names no unit while "
                       f"{next(iter(named))} says {next(iter(named.values()))}; add the unit to the header "
                       "or pass --units")
    unit = units or next(iter(named.values()), None)
    if unit is None:
        g_max = max(float(rows.g.max()) for _, rows in files)
        if g_max < 1e-2 or g_max > 1e5:
            notes.append(f"column 'conductance' names no unit and its largest value is {g_max:.3g}; read as µS — "
                         "if that is wrong, pass --units S (or mS, nS) or write the unit in the header")
        unit = "uS"
    return unit, UNITS_TO_MICROSIEMENS[unit.lower()], notes


def read_measurements(paths: Sequence[str | Path] | str | Path, units: str | None = None) -> Measurements:
    """Parse one or more CSV files (devices keep their labels; with several files, labels are
    prefixed by the file stem, and a file without a device column is one device)."""
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not paths:
        raise FitError("no CSV given; pass a file with columns direction,pulse,conductance")
    stems = [path.stem for path in paths]
    if len(paths) > 1 and len(set(stems)) < len(stems):
        raise FitError(f"{', '.join(map(str, paths))}: two files share a name; device labels come from file "
                       "names, so rename one")
    files = [(path, _read_file(path)) for path in paths]
    unit, factor, notes = _resolve_unit(files, units)

    def device_labels(path: Path, rows: _FileRows) -> list[str]:
        if rows.device is None:
            return [path.stem if len(files) > 1 else "device"] * rows.g.size
        return [f"{path.stem}:{d}" for d in rows.device] if len(files) > 1 else rows.device

    devices, device = np.unique(np.concatenate([device_labels(p, r) for p, r in files]), return_inverse=True)
    cycles, cycle = np.unique(np.concatenate([r.cycle for _, r in files]), return_inverse=True)
    ltp = np.concatenate([r.ltp for _, r in files])
    raw_pulse = np.concatenate([r.pulse for _, r in files])
    # pulses count from the first reading of each sweep: numbering that runs on from LTP into
    # LTD, or from one cycle into the next, means the same as restarting at 0
    sweep = np.unique(np.stack([device, ltp, cycle]), axis=1, return_inverse=True)[1].reshape(-1)
    first = np.full(sweep.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(first, sweep, raw_pulse)
    measured = Measurements(ltp, raw_pulse - first[sweep], np.concatenate([r.g for _, r in files]) * factor,
                            cycle, device, tuple(str(c) for c in cycles), tuple(str(d) for d in devices),
                            tuple(str(p) for p in paths), unit, tuple(notes))
    _check_shape(measured)
    return measured


def _check_shape(m: Measurements) -> None:
    """Enough distinct pulses per device and direction, a conductance that changes, LTP that
    rises and LTD that falls (per device, on the mean curve)."""
    sweeps = [(f" of device {name!r}" if len(m.devices) > 1 else "", direction, (m.device == code) & (m.ltp == ltp))
              for code, name in enumerate(m.devices) for ltp, direction in ((True, "LTP"), (False, "LTD"))]
    for label, direction, sel in sweeps:
        distinct = np.unique(m.pulse[sel]).size
        if distinct < _MIN_PULSES:
            raise FitError(f"column 'pulse': {direction}{label} has {distinct} distinct pulse number(s); "
                           f"need at least {_MIN_PULSES} per direction (rows with direction {direction})")
    if np.ptp(m.g) <= 0:
        raise FitError("column 'conductance': every value is the same; the device never changed")
    for label, direction, sel in sweeps:
        mean = _mean_curve(m.pulse[sel], m.g[sel])
        if (mean[-1] > mean[0]) != (direction == "LTP"):
            raise FitError(f"column 'direction': {direction}{label} conductance goes from {mean[0]:.4g} to "
                           f"{mean[-1]:.4g} µS; LTP must rise and LTD fall — are the labels swapped?")


def _mean_curve(pulse: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Mean conductance at every pulse number 0..max; missing pulse numbers interpolated."""
    size = int(pulse.max()) + 1
    count = np.bincount(pulse, minlength=size)
    total = np.bincount(pulse, weights=g, minlength=size)
    seen = count > 0
    return np.interp(np.arange(size), np.flatnonzero(seen), total[seen] / count[seen])


# -- models --------------------------------------------------------------------------------

_U_BOUNDS = (1e-6, 500.0)  # u = Pmax / A: 1e-6 is linear to 1e-7 of the range, 500 a one-pulse jump


def _shape(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """f(x; u) = (1 - exp(-u x)) / (1 - exp(-u)); expm1 keeps it exact near the linear limit."""
    return np.expm1(-u * x) / np.expm1(-u)


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

    def predict(self, ltp: np.ndarray, pulse: np.ndarray) -> np.ndarray:
        """G after ``pulse`` pulses of the sweep (LTP from g_min, LTD from g_max), µS."""
        u = np.where(ltp, self.levels / self.a_ltp, self.levels / self.a_ltd)
        rise = self.g_range * _shape(np.asarray(pulse, dtype=np.float64) / self.levels, u)
        return np.where(ltp, self.g_min + rise, self.g_max - rise)

    def step(self, g: np.ndarray, ltp: bool) -> np.ndarray:
        """ΔG of one pulse from state g: (G_inf - G)(1 - exp(-1/A)), µS (negative for LTD)."""
        a = self.a_ltp if ltp else self.a_ltd
        overshoot = self.g_range / -math.expm1(-self.levels / a)  # B = R / (1 - exp(-Pmax/A))
        g_inf = self.g_min + overshoot if ltp else self.g_max - overshoot
        return (g_inf - np.asarray(g)) * -math.expm1(-1.0 / a)


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


@dataclass(frozen=True)
class TableCurves:
    """Mean curve per pulse number, µS, monotone: ``ltp[p]`` after p LTP pulses."""

    ltp: np.ndarray
    ltd: np.ndarray

    def predict(self, ltp: np.ndarray, pulse: np.ndarray) -> np.ndarray:
        """Reading at each pulse number; past the table's end, its last value."""
        up = self.ltp[np.minimum(pulse, self.ltp.size - 1)]
        down = self.ltd[np.minimum(pulse, self.ltd.size - 1)]
        return np.where(ltp, up, down)


def _monotone(curve: np.ndarray, rising: bool) -> np.ndarray:
    return np.maximum.accumulate(curve) if rising else np.minimum.accumulate(curve)


def fit_table(m: Measurements) -> TableCurves:
    """The table model: mean per pulse number over every cycle and device, made monotone."""
    curves = [_monotone(_mean_curve(m.pulse[m.ltp == ltp], m.g[m.ltp == ltp]), ltp) for ltp in (True, False)]
    return TableCurves(*curves)


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
    :class:`~hnntrain.config.DeviceConfig` read back from the TOML)."""
    from hnntrain.config import ConfigError, resolve

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
    from hnntrain.report import _pyplot

    plt = _pyplot()
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


__all__ = [
    "COLUMN_ALIASES",
    "DIRECTION_ALIASES",
    "UNITS_TO_MICROSIEMENS",
    "DeviceFit",
    "ExponentialFit",
    "FitError",
    "Measurements",
    "Quality",
    "TableCurves",
    "assess",
    "device_toml",
    "estimate_c2c",
    "estimate_d2d",
    "fit_exponential",
    "fit_files",
    "fit_measurements",
    "fit_table",
    "plot_fit",
    "read_measurements",
    "table_path_for",
    "write_outputs",
    "write_table_csv",
]
