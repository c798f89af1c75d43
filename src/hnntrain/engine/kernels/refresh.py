"""Fused sensing and refresh of ``unidirectional`` and ``mixed_precision`` (their
``before_sample``): one pass over the array instead of a dozen whole-array tensor operations.

Per pair, as :meth:`Unidirectional.before_sample <hnntrain.schemes.unidirectional.Unidirectional.before_sample>`
and :func:`~hnntrain.schemes.common.refresh_pairs` do with tensors::

    read        G_sensed = ADC(G + sigma_read * range * xi_READ)            (both devices)
    due         both devices sensed farther than threshold * range from home
    reset       G = clip(home) per device (a program event each)
    reprogram   n = floor(pulses_to(home -> target) + U_ROUND), target from the sensed difference
                on one device, |n| <= levels, applied with the device physics (C2C noise)

Controller-side arithmetic (the nominal device's inverse) uses the nominal exponential or
linear model; a measured (table) nominal device keeps the reference path.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from hnntrain.engine.kernels.devices import device_arguments, device_step
from hnntrain.physics import rng
from hnntrain.physics.rng import bits_nb, normal_nb, uniform_nb

NOMINAL_LINEAR, NOMINAL_EXPONENTIAL = 0, 1


@numba.njit(inline="always", cache=True)
def _sense(g, sigma_range, codes, lsb, lo, g_range, read_key, elem):
    if sigma_range > 0:
        g = g + np.float32(normal_nb(bits_nb(read_key, elem))) * sigma_range
    if codes == 0:
        return g
    code = min(max(np.round((g - lo) / g_range * codes), np.float32(0.0)), codes)
    return lo + code * lsb


@numba.njit(inline="always", cache=True)
def _pulses_from(home, target, ltp, nominal_kind, nominal):
    """The nominal model inverted: continuous pulses (>= 0) from ``home`` to ``target``."""
    if nominal_kind == NOMINAL_LINEAR:
        change = target - home if ltp else home - target
        return max(change / nominal[4], np.float32(0.0))
    g_inf = nominal[0] if ltp else nominal[1]
    a = nominal[2] if ltp else nominal[3]
    ratio = (home - g_inf) / (target - g_inf)
    n = a * np.float32(math.log(max(ratio, np.float32(1e-30))))
    if math.isnan(n):
        return np.float32(0.0)
    if math.isinf(n) and n > 0:
        return np.float32(1e9)
    return max(n, np.float32(0.0))


@numba.njit(cache=True)
def refresh_kernel(g, w, w_scale, sigma_range, codes, lsb, lo, hi, read_keys, threshold, home_is_min,
                   nominal_kind, nominal, cap, round_keys, c2c_keys, kind, prm, curve_up, curve_down, grid,
                   c2c, multiplicative, abs_sum, net_sum, programs):
    """Sense every pair of ``g`` (rows, 2, E, out) and refresh the due ones in place; returns
    the number of refreshed pairs."""
    rows, _, replicas, out = g.shape
    g_range = hi - lo
    home = lo if home_is_min else hi
    refreshed = 0
    for r in range(rows):
        for e in range(replicas):
            for j in range(out):
                s0 = _sense(g[r, 0, e, j], sigma_range, codes, lsb, lo, g_range, read_keys[e], (r * 2) * out + j)
                s1 = _sense(g[r, 1, e, j], sigma_range, codes, lsb, lo, g_range, read_keys[e], (r * 2 + 1) * out + j)
                away0 = s0 - lo if home_is_min else hi - s0
                away1 = s1 - lo if home_is_min else hi - s1
                if not (away0 > threshold and away1 > threshold):
                    continue
                refreshed += 1
                diff = s0 - s1
                up = max(diff, np.float32(0.0))
                down = max(-diff, np.float32(0.0))
                for d in range(2):
                    if home_is_min:
                        target = lo + (up if d == 0 else down)
                    else:
                        target = hi - (down if d == 0 else up)
                    target = min(max(target, lo), hi)
                    start = min(max(home, prm[0][r, d, e, j]), prm[1][r, d, e, j])
                    programs[d, e] += 1
                    x = _pulses_from(home, target, home_is_min, nominal_kind, nominal)
                    n = np.floor(x + uniform_nb(bits_nb(round_keys[e], (r * 2 + d) * out + j)))
                    p = min(n, cap) if home_is_min else -min(n, cap)
                    if p != 0:
                        start = device_step(start, p, r, d, e, j, kind, prm, curve_up, curve_down, grid, c2c,
                                            multiplicative, c2c_keys[e], (r * 2 + d) * out + j)
                        abs_sum[d, e] += abs(p)
                        net_sum[d, e] += p
                    g[r, d, e, j] = start
                w[r, e, j] = (g[r, 0, e, j] - g[r, 1, e, j]) * w_scale
    return refreshed


def nominal_arguments(nominal) -> tuple[int, np.ndarray] | None:
    """(kind, [g_inf_ltp, g_inf_ltd, a_ltp, a_ltd, step]) of a nominal exponential or linear
    model; None for others (the reference refresh then runs)."""
    if nominal.name == "exponential":
        values = [float(nominal.g_inf_ltp), float(nominal.g_inf_ltd), float(nominal.a_ltp), float(nominal.a_ltd), 0.0]
        return NOMINAL_EXPONENTIAL, np.array(values, np.float32)
    if nominal.name == "linear":
        return NOMINAL_LINEAR, np.array([0.0, 0.0, 0.0, 0.0, float(nominal.step)], np.float32)
    return None


def sense_and_refresh(scheme, samples: int, key: rng.Key) -> None:
    """Fused ``before_sample`` of a Unidirectional (or MixedPrecision) ``scheme`` whose nominal
    device is exponential or linear (see :func:`nominal_arguments`)."""
    if not scheme.refresh_due(samples):
        return
    nominal = nominal_arguments(scheme.ctx.nominal)
    array, sensor = scheme.array, scheme.ctx.sensor
    lo, hi = sensor.g_min, sensor.g_max
    read_keys = key.take(rng.READ)
    round_keys = key.take(rng.ROUND)
    c2c_keys = key.take(rng.C2C)
    device = device_arguments(array.model, tuple(array.g.shape))
    counter = array.counter
    counter.senses += array.g.numel()
    refreshed = refresh_kernel(
        array.g.numpy(), array.w.numpy(), np.float32(array.scale), np.float32(sensor.cfg.read_noise * (hi - lo)),
        np.float32(sensor.codes), np.float32(sensor.lsb), np.float32(lo), np.float32(hi), read_keys,
        np.float32(scheme.options.refresh_threshold * (hi - lo)), bool(scheme.gradual_ltp), nominal[0], nominal[1],
        np.float32(array.model.levels), round_keys, c2c_keys, *device,
        counter.abs_sum.numpy(), counter.net_sum.numpy(), counter.programs.numpy())
    counter.refreshes += int(refreshed)
