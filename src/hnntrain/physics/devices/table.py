"""Table device: measured conductance versus pulse number, for LTP and for LTD.

A state G is placed on the measured curve of the pulse direction by inverse interpolation
(its continuous "pulse coordinate"), moved by n pulses, and read back:

    G_n = curve(curve^-1(G) + n)

Both curves are piecewise linear in the pulse coordinate, so monotone data stay monotone.
Curves are stored normalized to [0, 1] and mapped onto each device's [g_min, g_max], so the
device-to-device spread of the bounds applies to measured devices too.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hnntrain.physics.devices.base import DeviceModel
from hnntrain.physics.devices.measured import FitError, fit_table, read_measurements


class TableError(ValueError):
    """A measured-curve CSV cannot be used; the message names the file, row or column."""


@dataclass(frozen=True)
class MeasuredCurves:
    """Mean conductance per pulse number, microsiemens: ``ltp[0]`` is the start of LTP."""

    ltp: np.ndarray
    ltd: np.ndarray

    @property
    def g_min(self) -> float:
        return float(min(self.ltp.min(), self.ltd.min()))

    @property
    def g_max(self) -> float:
        return float(max(self.ltp.max(), self.ltd.max()))

    @property
    def levels(self) -> int:
        return int(len(self.ltp) - 1)


def read_curves(path: str | Path) -> MeasuredCurves:
    """Measured LTP and LTD curves from a CSV, read by the same parser as ``hnntrain device fit``
    (column aliases, units in the header, several cycles and devices): the mean conductance per
    pulse number, in microsiemens, made monotone (running max for LTP, running min for LTD)."""
    path = Path(path)
    try:
        measured = read_measurements(path)
    except FitError as err:
        raise TableError(str(err)) from None
    for message in measured.warnings:
        warnings.warn(message, stacklevel=2)
    table = fit_table(measured)
    if table.ltp[-1] <= table.ltp[0] or table.ltd[-1] >= table.ltd[0]:
        raise TableError(f"{path}: LTP must rise and LTD must fall over the measured pulses")
    return MeasuredCurves(ltp=np.asarray(table.ltp, dtype=float), ltd=np.asarray(table.ltd, dtype=float))


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation of increasing ``xp`` -> ``fp``, clamped at the ends."""
    idx = torch.searchsorted(xp, x.contiguous()).clamp(1, xp.numel() - 1)
    x0, x1 = xp[idx - 1], xp[idx]
    f0, f1 = fp[idx - 1], fp[idx]
    t = ((x - x0) / (x1 - x0).clamp(min=1e-12)).clamp(0, 1)
    return f0 + t * (f1 - f0)


class TableDevice(DeviceModel):
    name = "table"
    shared_keys = ("u_ltp", "u_ltd")

    def __init__(self, g_min: Tensor, g_max: Tensor, curves: MeasuredCurves, **c2c_args):
        super().__init__(g_min, g_max, curves.levels, **c2c_args)
        lo, hi = curves.g_min, curves.g_max
        dtype = g_min.dtype
        self.u_ltp = torch.as_tensor((curves.ltp - lo) / (hi - lo), dtype=dtype, device=g_min.device)
        """LTP curve normalized to [0, 1], one point per pulse number."""
        self.u_ltd = torch.as_tensor((curves.ltd - lo) / (hi - lo), dtype=dtype, device=g_min.device)
        """LTD curve normalized to [0, 1], decreasing."""
        self.curves_data = curves

    def tensors(self) -> dict[str, Tensor]:
        return {**super().tensors(), "u_ltp": self.u_ltp, "u_ltd": self.u_ltd}

    def _steps(self, u: Tensor, n: Tensor, curve: Tensor, sign: float) -> Tensor:
        grid = torch.arange(curve.numel(), dtype=u.dtype, device=u.device)
        pos = _interp(sign * u, sign * curve, grid)
        return _interp(pos + n, grid, curve)

    def response(self, g: Tensor, pulses: Tensor) -> Tensor:
        g_range = self.g_max - self.g_min
        u = (g - self.g_min) / g_range
        up = self._steps(u, pulses.clamp(min=0), self.u_ltp, 1.0)
        down = self._steps(u, (-pulses).clamp(min=0), self.u_ltd, -1.0)
        u_new = torch.where(pulses > 0, up, torch.where(pulses < 0, down, u))
        return self.g_min + u_new * g_range

    def pulse_position(self, g: Tensor, ltp: bool) -> Tensor:
        u = (g - self.g_min) / (self.g_max - self.g_min)
        curve = self.u_ltp if ltp else self.u_ltd
        grid = torch.arange(curve.numel(), dtype=u.dtype, device=u.device)
        return _interp(u if ltp else -u, curve if ltp else -curve, grid)
