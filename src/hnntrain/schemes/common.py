"""Pieces several schemes share: the gradual direction of a device, pair refresh, model-based
pulse counts. One implementation each, so that every scheme pays the same write cost for the
same operation."""

from __future__ import annotations

import torch
from torch import Tensor

from hnntrain.physics.devices.base import DeviceModel
from hnntrain.schemes.base import stochastic_round


def gradual_is_ltp(nominal: DeviceModel) -> bool:
    """True when LTP is the gentler direction (larger curvature A, or a tie / linear device).
    The abrupt direction then brings a device home to g_min exactly (a reset)."""
    a_ltp = getattr(nominal, "a_ltp", None)
    a_ltd = getattr(nominal, "a_ltd", None)
    if a_ltp is None or a_ltd is None:
        return True
    return float(a_ltp) >= float(a_ltd)


def model_pulses(nominal: DeviceModel, g_est: Tensor, change: Tensor, ltp: Tensor, g_min: float, g_max: float,
                 generator: torch.Generator | None) -> Tensor:
    """Whole pulses (>= 0) that move a device believed at ``g_est`` by ``change`` microsiemens
    in its direction (LTP where ``ltp``): the nominal model inverted, stochastically rounded."""
    target = torch.where(ltp, g_est + change, g_est - change).clamp_(g_min, g_max)
    return stochastic_round(nominal.pulses_to(g_est, target, ltp), generator)


def refresh_pairs(array, estimate: Tensor, mask: Tensor, home_is_min: bool, nominal: DeviceModel,
                  generator: torch.Generator | None) -> Tensor:
    """Reset the pairs in ``mask`` (in, E, out) to the home bound and reprogram their estimated
    difference onto one device with gradual pulses from home (model-based count). Counts one
    refresh per pair, the reset as program events and the pulses as usual. Returns the
    conductances the controller believes it wrote (for its estimate)."""
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
    array.set_conductance(start, both)
    ltp = torch.full_like(estimate, home_is_min, dtype=torch.bool)
    n = stochastic_round(nominal.pulses_to(start, target, ltp), generator)
    n = torch.where(both, n, torch.zeros_like(n))
    # reprogramming from home may take up to the full pulse range (a refresh is a slow write)
    array.pulse(n if home_is_min else -n, None, generator, cap=array.model.levels, refresh=True)
    array.counter.refreshes += int(mask.sum())
    return torch.where(both, target, estimate)


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
