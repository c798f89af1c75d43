"""Measured conductance-versus-pulse curves: reading CSV files and the mean (table) curve.

Input: CSV rows ``direction, pulse, conductance[, cycle][, device]`` (docs/device-fit.md lists
the accepted header aliases and units). ``pulse`` counts from the first reading of each sweep
(0 = the state before the first pulse of that direction). Conductances are converted to µS.

Table model: the mean conductance at each pulse number over all cycles and devices, made
monotone (running max for LTP, running min for LTD). The table device
(:mod:`hnntrain.physics.devices.table`) and the device fitter (:mod:`hnntrain.io.fit`) both read
measured curves here.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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


