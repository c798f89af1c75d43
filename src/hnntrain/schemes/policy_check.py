"""Monte-Carlo check of the CRUS optimization: run the CRUS scheme itself, with the policy the
linear program chose, on a population of nominal devices (their cycle-to-cycle noise, the ADC,
the sensing interval and tracking included; no device-to-device variation), under the request
traffic the program assumes, and measure the program's objective.

The objective per update is the squared systematic error (mean over pulse rounding and c2c
noise, given the state, the request and the controller's estimate) plus that variance divided
by the window W = ``noise_window``, over the mean squared request. Both parts are estimated
without bias from two independent realizations of the same update (same state, request and
estimate; fresh rounding and c2c noise), with errors e1 and e2 of the realized change of
G+ - G- against the requested one:

    E[e1 e2] = bias^2,        E[(e1 - e2)^2] / 2 = variance.

The population continues with the first realization.
"""

from __future__ import annotations

import dataclasses

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from hnntrain.physics import rng
from hnntrain.physics.devices import build_device, nominal_device
from hnntrain.physics.pair import PairArray
from hnntrain.physics.sensing import Sensor
from hnntrain.schemes.base import SchemeContext
from hnntrain.schemes.crus import CRUS, CrusOptions
from hnntrain.spec.config import DeviceConfig, PairConfig, SensingConfig


@dataclass(frozen=True)
class PolicyCost:
    """The program's predicted objective and the one measured by running its policy."""

    predicted: float
    """:attr:`Policy.lp_cost` of the policy CRUS used."""
    measured: float
    """Mean over updates and pairs of bias^2 + variance / W, over the mean squared request."""
    stderr: float
    """Standard error of ``measured`` (from the spread of the per-update means)."""


def _update_error(crus: CRUS, request: Tensor, change: Tensor, seed: int) -> Tensor:
    """Apply one update with its own random stream; the error of G+ - G- per pair."""
    g0 = crus.array.g
    diff0 = g0[:, 0] - g0[:, 1]
    crus.update(request, None, rng.Key.from_seed(seed, 1))
    g1 = crus.array.g
    return (g1[:, 0] - g1[:, 1]) - diff0 - change


def simulate_policy(device: DeviceConfig, sensing: SensingConfig, options: CrusOptions | None = None,
                    max_pulses: int = 0, pairs: int = 1000, updates: int = 1500, burn_in: int = 500,
                    seed: int = 0) -> PolicyCost:
    """Run CRUS (``options``, ``device``, ``sensing``) on ``pairs`` nominal pairs for ``updates``
    updates of random-sign requests with exponential magnitudes of mean ``request_pulses``
    nominal steps (one update per sample), and measure the objective after ``burn_in``. The
    policy stays the one the program solved for (``measure_traffic`` off), the one checked."""
    options = dataclasses.replace(options or CrusOptions(), measure_traffic=False)
    gen = torch.Generator().manual_seed(seed)
    nominal = nominal_device(device, dtype=torch.float64)
    ctx = SchemeContext(nominal=nominal, sensing=sensing, sensor=Sensor(sensing, device.g_min, device.g_max),
                        device=device, max_pulses=max_pulses)
    shape = (pairs, 1, 1)
    array = PairArray.create(torch.zeros(shape, dtype=torch.float64), build_device(device, (), None, torch.float64),
                             PairConfig(), max_pulses)
    crus = CRUS(options, array, ctx)
    mean_change = options.request_pulses * nominal.nominal_step  # microsiemens of G+ - G-
    per_update = []
    for t in range(updates):
        crus.before_sample(1, rng.Key.from_seed(seed, 1).fold(t))
        change = torch.empty(shape, dtype=torch.float64).exponential_(1.0, generator=gen) * mean_change
        change = torch.where(torch.rand(shape, generator=gen, dtype=torch.float64) < 0.5, -change, change)
        request = change * array.scale
        seeds = torch.randint(0, 2**62, (2,), generator=gen).tolist()
        g0, est0 = array.g.clone(), crus.sensed.estimate.clone()
        e2 = _update_error(crus, request, change, seeds[1])  # the second realization, then undone
        array.load_state_dict({"g": g0, "counter": array.counter.state_dict()})
        crus.sensed.estimate = est0
        e1 = _update_error(crus, request, change, seeds[0])
        if t >= burn_in:
            bias_sq = (e1 * e2).mean()
            variance = (e1 - e2).square().mean() / 2
            per_update.append(float(bias_sq + variance / options.noise_window))
    values = torch.tensor(per_update, dtype=torch.float64) / (2 * mean_change**2)  # E[m^2] = 2 mean^2
    return PolicyCost(predicted=crus.policy.lp_cost, measured=float(values.mean()),
                      stderr=float(values.std() / math.sqrt(len(values))))
