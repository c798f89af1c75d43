"""Pieces several schemes share: the gradual direction of a device, pair refresh, model-based
pulse counts. One implementation each, so that every scheme pays the same write cost for the
same operation."""

from __future__ import annotations

import torch
from torch import Tensor

from hnntrain.physics import rng
from hnntrain.physics.devices.base import DeviceModel
from hnntrain.schemes.base import stochastic_round

_BEND_TIE = 1e-6  # float32 parameters bend two equal curves by different roundings


def curve_bend(curve: Tensor) -> float:
    """Largest distance of a monotone curve (one point per pulse) from the straight line
    between its ends, as a fraction of its span: 0 for a linear device, towards 1 for a curve
    that covers its range in the first pulses (an abrupt direction)."""
    curve = curve.double()
    span = curve[-1] - curve[0]
    if float(span) == 0:
        return 0.0
    u = (curve - curve[0]) / span
    line = torch.linspace(0, 1, curve.numel(), dtype=torch.float64)
    return float((u - line).abs().max())


def gradual_is_ltp(nominal: DeviceModel) -> bool:
    """True when LTP is the gentler direction: its curve from g_min bends less than the LTD
    curve from g_max (a tie, e.g. a linear device, counts as LTP). Read from the model's own
    curves, so that exponential, linear and measured (table) devices answer alike. The abrupt
    direction then brings a device home exactly: to g_min when LTD is abrupt, else to g_max."""
    up, down = nominal.curves()
    return curve_bend(up) <= curve_bend(down) + _BEND_TIE


def model_pulses(nominal: DeviceModel, g_est: Tensor, change: Tensor, ltp: Tensor, g_min: float, g_max: float,
                 key, rows: Tensor | None = None) -> Tensor:
    """Whole pulses (>= 0) that move a device believed at ``g_est`` by ``change`` microsiemens
    in its direction (LTP where ``ltp``): the nominal model inverted, stochastically rounded
    (``rows``: the global input rows of the first axis, as for :func:`stochastic_round`)."""
    target = torch.where(ltp, g_est + change, g_est - change).clamp_(g_min, g_max)
    return stochastic_round(nominal.pulses_to(g_est, target, ltp), key, rows)


def refresh_pairs(array, estimate: Tensor, mask: Tensor, home_is_min: bool, nominal: DeviceModel,
                  generator: torch.Generator | None, reset_noise: float = 0.0) -> Tensor:
    """Reset the pairs in ``mask`` (in, E, out) to the home bound and reprogram their estimated
    difference onto one device with gradual pulses from home (model-based count). A reset lands
    on the bound plus Gaussian noise of ``reset_noise`` x range (clipped into the range); the
    controller counts from the bound. Counts one refresh per pair, the reset as program events
    and the pulses as usual. Returns the conductances the controller believes it wrote."""
    g_min, g_max = float(nominal.g_min), float(nominal.g_max)
    diff = estimate[:, 0] - estimate[:, 1]
    if home_is_min:  # the larger device carries the difference above g_min
        target = torch.stack((g_min + diff.clamp(min=0), g_min + (-diff).clamp(min=0)), dim=1)
    else:
        target = torch.stack((g_max - (-diff).clamp(min=0), g_max - diff.clamp(min=0)), dim=1)
    target = target.clamp(g_min, g_max)
    home = g_min if home_is_min else g_max
    both = mask.unsqueeze(1).expand_as(estimate)
    start = torch.full_like(estimate, home)
    landed = start
    if reset_noise > 0:
        xi = rng.normal(generator.take(rng.RESET), start.shape, None, start.device).to(start.dtype)
        landed = start + xi * (reset_noise * (g_max - g_min))
    array.set_conductance(landed, both)
    ltp = torch.full_like(estimate, home_is_min, dtype=torch.bool)
    n = stochastic_round(nominal.pulses_to(start, target, ltp), generator)
    n = torch.where(both, n, torch.zeros_like(n))
    # reprogramming from home may take up to the full pulse range (a refresh is a slow write)
    array.pulse(n if home_is_min else -n, None, generator, cap=array.model.levels, refresh=True)
    array.counter.refreshes += int(mask.sum())
    return torch.where(both, target, estimate)


def push_pull_count(request: Tensor, dw_step: float) -> Tensor:
    """A weight change in push-pull pulses (continuous): dW / (2 dw_step), each device of the
    pair delivering half of it with one nominal step per pulse."""
    return request * (0.5 / dw_step)


def push_pull(n: Tensor) -> Tensor:
    """Signed pair pulse counts (k, E, out) -> (k, 2, E, out): +n on G+, -n on G- (LTP on one
    device, LTD on the other, each worth half of the change)."""
    return torch.stack((n, -n), dim=1)


def estimate_bits(sensing, track: bool) -> int:
    """Digital bits per synapse to store a sensed estimate of both devices: the ADC code, or
    a wider register (>= 8 bits) when the controller tracks it between reads."""
    bits = sensing.adc_bits or 8
    return 2 * (max(bits, 8) if track else bits)


def assemble(moves_plus: Tensor, signed: Tensor) -> Tensor:
    """Per-pair signed pulses on one device -> (k, 2, E, out) pulses for (G+, G-)."""
    zero = torch.zeros_like(signed)
    return torch.stack((torch.where(moves_plus, signed, zero), torch.where(moves_plus, zero, signed)), dim=1)


class DigitalAccumulator:
    """A digital register per synapse, (in, E, out), holding what is owed but not yet written:
    mixed precision's chi (Nandakumar et al. 2020), Tiki-Taka v2's H (Gokmen 2021), the
    accumulating CRUS. One rule for all of them:

        owed    <- register + increment                     (:meth:`add`)
        n       <- whole pulses due, at most ``cap`` per device  (:meth:`due`)
        register <- owed - (what those n pulses write)      (:meth:`settle`)

    so nothing the pulse cap holds back is lost: it stays owed for the next update."""

    def __init__(self, like: Tensor, cap: int):
        self.value = torch.zeros_like(like)
        self.cap = int(cap)
        """Pulses per device per update (the array's pulse cap)."""

    def add(self, increment: Tensor, rows: Tensor | None) -> Tensor:
        """Owed amounts of ``rows`` (all when None) after adding ``increment`` (k, E, out)."""
        if rows is None:
            return self.value + increment
        return self.value.index_select(0, rows).add_(increment)

    def due(self, pulses: Tensor, threshold: float = 1.0) -> Tensor:
        """Whole pulses (signed, truncated towards zero) for an owed amount expressed in
        ``pulses``, where it reaches ``threshold``; capped at ``cap``."""
        n = torch.trunc(pulses).clamp_(-self.cap, self.cap)
        if threshold > 1.0:
            n = torch.where(pulses.abs() >= threshold, n, torch.zeros_like(n))
        return n

    def settle(self, owed: Tensor, written: Tensor, rows: Tensor | None) -> None:
        """Keep ``owed - written`` for ``rows``: the register then holds exactly what is still owed."""
        if rows is None:
            self.value = owed - written
        else:
            self.value.index_copy_(0, rows, owed - written)
