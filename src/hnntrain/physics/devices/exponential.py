"""NeuroSim exponential device model (Chen & Yu), separate LTP and LTD curvature.

Along LTP from g_min, after P pulses (P = 0..Pmax, Pmax = ``levels``):

    G_LTP(P) = B (1 - exp(-P / A)) + g_min,        B = (g_max - g_min) / (1 - exp(-Pmax / A))

LTD is the mirror image from g_max. The per-pulse step is linear in G,
dG/dP = (G_inf - G) / A with G_inf = g_min + B, so n pulses from any state have the closed form

    G_n = G_inf + (G - G_inf) exp(-n / A)          (LTP; LTD with G_inf = g_max - B_LTD)

which is what :meth:`ExponentialDevice.response` evaluates, exactly, for every device at once.

Nonlinearity labels. NeuroSim tabulates the normalized curvature a = A / Pmax against a label
NL in 0.01..9. The table follows one relation, which we solve instead of shipping the table:
the normalized curve g(x) = (1 - exp(-x/a)) / (1 - exp(-1/a)) rises above the diagonal by at
most 0.07 * sqrt(2) * NL, i.e. its largest distance *perpendicular* to the line y = x is
0.07 * NL (range units). Rounded to the table's printed 6 decimals, this gives NeuroSim's
number at every one of its 900 labels (worst |difference| 4.99e-7, NL 3.38;
tests/data/neurosim_nl_table.csv, from NeuroSim V3.0's getParamA, and tests/test_devices.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import brentq
from torch import Tensor

from hnntrain.physics.devices.base import DeviceModel

_NL_PER_DISTANCE = 0.07  # perpendicular distance from the diagonal per NL unit (range units)
_LINEAR_NORM_A = 1e6  # stands in for NL = 0: deviation from linear ~1e-7 of the range


def normalized_curve(x, norm_a):
    """g(x) = (1 - exp(-x/a)) / (1 - exp(-1/a)): the curve from 0 to 1 over x = P/Pmax in [0, 1]
    with normalized curvature a = A/Pmax (numpy, elementwise; expm1 keeps it exact near the
    linear limit a -> infinity, where g(x) -> x)."""
    norm_a = np.asarray(norm_a, dtype=np.float64)
    return np.expm1(-np.asarray(x, dtype=np.float64) / norm_a) / np.expm1(-1.0 / norm_a)


def max_excess(norm_a: float) -> float:
    """max over x in [0,1] of g(x) - x for the normalized NeuroSim curve with curvature a."""
    denom = -math.expm1(-1.0 / norm_a)  # 1 - exp(-1/a), accurate for large a
    x_star = -norm_a * math.log(norm_a * denom)  # where g'(x) = 1
    x_star = min(max(x_star, 0.0), 1.0)
    return float(normalized_curve(x_star, norm_a)) - x_star


def nl_to_norm_a(nl: float) -> float:
    """NeuroSim nonlinearity label (0 < |NL| <= 9) -> normalized curvature a = A / Pmax.

    Solves max_x (g(x) - x) = 0.07 * sqrt(2) * |NL| for a by bracketing in log a.
    Returns a huge curvature (a nearly exactly linear device) for NL = 0.
    """
    nl = abs(float(nl))
    if nl == 0:
        return _LINEAR_NORM_A
    if nl > 9.0:
        raise ValueError(f"NL label {nl} is outside NeuroSim's table range 0..9")
    target = _NL_PER_DISTANCE * math.sqrt(2.0) * nl
    if max_excess(_LINEAR_NORM_A) >= target:  # indistinguishable from linear
        return _LINEAR_NORM_A
    return math.exp(brentq(lambda log_a: max_excess(math.exp(log_a)) - target, math.log(1e-3),
                           math.log(_LINEAR_NORM_A), xtol=1e-13))


def norm_a_to_nl(norm_a: float) -> float:
    """Inverse of :func:`nl_to_norm_a`."""
    return max_excess(norm_a) / (_NL_PER_DISTANCE * math.sqrt(2.0))


def nl_to_pulses(nl: Tensor | float, levels: int) -> Tensor:
    """NL labels (any shape) -> A in pulses, elementwise (d2d draws call this per device)."""
    arr = np.abs(np.asarray(torch.as_tensor(nl, dtype=torch.float64).cpu().numpy(), dtype=np.float64))
    flat = arr.reshape(-1)
    # Device-to-device draws repeat few distinct values rarely; solve per unique value on a grid.
    if flat.size > 64:
        grid = np.linspace(0.0, 9.0, 1801)
        a_grid = np.array([nl_to_norm_a(v) if v > 0 else _LINEAR_NORM_A for v in grid])
        # log-space interpolation: a varies over four decades between NL 0.01 and 9. Exact at
        # the nodes (NeuroSim's labels are nodes); between them a is off by up to 2 % near NL
        # 0.01 and 3e-6 above NL 1, which moves the normalized curve by at most 4e-5 of the range
        out = np.exp(np.interp(np.clip(flat, 0, 9), grid, np.log(a_grid)))
    else:
        out = np.array([nl_to_norm_a(v) if v > 0 else _LINEAR_NORM_A for v in flat])
    return torch.from_numpy(out.reshape(arr.shape) * levels)


class ExponentialDevice(DeviceModel):
    """NeuroSim exponential response with curvature ``a_ltp`` / ``a_ltd`` (pulses, per device)."""

    name = "exponential"

    def __init__(self, g_min: Tensor, g_max: Tensor, levels: int, a_ltp: Tensor, a_ltd: Tensor, **c2c_args):
        super().__init__(g_min, g_max, levels, **c2c_args)
        self.a_ltp = a_ltp
        """LTP curvature A, pulses (per device)."""
        self.a_ltd = a_ltd
        """LTD curvature A, pulses (per device)."""
        self._derive()

    def _derive(self) -> None:
        g_range = self.g_max - self.g_min
        # B / range = 1 / (1 - exp(-Pmax/A)); -expm1 keeps precision for nearly linear devices
        self.g_inf_ltp = self.g_min + g_range / -torch.expm1(-self.levels / self.a_ltp)
        self.g_inf_ltd = self.g_max - g_range / -torch.expm1(-self.levels / self.a_ltd)
        self.neg_inv_a_ltp = -1.0 / self.a_ltp
        self.neg_inv_a_ltd = -1.0 / self.a_ltd

    def tensors(self) -> dict[str, Tensor]:
        return {
            **super().tensors(),
            "a_ltp": self.a_ltp,
            "a_ltd": self.a_ltd,
            "g_inf_ltp": self.g_inf_ltp,
            "g_inf_ltd": self.g_inf_ltd,
            "neg_inv_a_ltp": self.neg_inv_a_ltp,
            "neg_inv_a_ltd": self.neg_inv_a_ltd,
        }

    def response(self, g: Tensor, pulses: Tensor) -> Tensor:
        # G + (G - G_inf) * expm1(-n/A) == G_inf + (G - G_inf) exp(-n/A), but stays accurate in
        # float32 for nearly linear devices, where G_inf is far outside the range.
        up = pulses > 0
        # tensors, not floats: torch.where of two Python floats would return float32
        g_inf = torch.where(up, self.g_inf_ltp, self.g_inf_ltd)
        rate = torch.where(up, self.neg_inv_a_ltp, self.neg_inv_a_ltd)
        return g + (g - g_inf) * torch.expm1(pulses.abs() * rate)

    def pulses_to(self, g: Tensor, target: Tensor, ltp: Tensor) -> Tensor:
        """n = A ln((G - G_inf) / (target - G_inf)), the closed form inverted (either direction)."""
        g_inf = torch.where(ltp, self.g_inf_ltp, self.g_inf_ltd)
        a = torch.where(ltp, self.a_ltp, self.a_ltd)
        ratio = (g - g_inf) / (target - g_inf)
        n = a * torch.log(ratio.clamp(min=1e-30))
        # an abrupt curve's asymptote rounds onto its bound in float32: 0/0 there means "no
        # pulse can move it" (0), x/0 "not reachable" (a huge count, capped by the caller)
        return torch.nan_to_num(n, nan=0.0, posinf=1e9).clamp(min=0)

    def pulse_position(self, g: Tensor, ltp: bool) -> Tensor:
        """Invert the curve: P such that G_LTP(P) = g (or G_LTD(P) = g), continuous."""
        if ltp:
            ratio = (self.g_inf_ltp - g) / (self.g_inf_ltp - self.g_min)
            return -self.a_ltp * torch.log(ratio.clamp(min=1e-30))
        ratio = (g - self.g_inf_ltd) / (self.g_max - self.g_inf_ltd)
        return -self.a_ltd * torch.log(ratio.clamp(min=1e-30))
