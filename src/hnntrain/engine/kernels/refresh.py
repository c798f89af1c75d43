"""Fused sensing and refresh of ``unidirectional``, ``mixed_precision``, ``crus`` and
``nonlinearity_aware`` (their ``before_sample``): one pass over the array instead of a dozen
whole-array tensor operations; and the updates that decide from the sensed estimate (``crus``,
``nonlinearity_aware``).

Per pair, as :meth:`Unidirectional.before_sample <hnntrain.schemes.unidirectional.Unidirectional.before_sample>`,
:meth:`CRUS.before_sample <hnntrain.schemes.crus.CRUS.before_sample>` and
:func:`~hnntrain.schemes.common.refresh_pairs` do with tensors::

    read        G_sensed = ADC(G + sigma_read * range * xi_READ)            (both devices)
    due         unidirectional: both devices sensed farther than threshold * range from home;
                crus: the policy's refresh table at the pair's sensed codes
    reset       G = clip(home) per device (a program event each)
    reprogram   n = floor(pulses_to(home -> target) + U_ROUND), target from the sensed difference
                on one device, |n| <= levels, applied with the device physics (C2C noise)

Controller-side arithmetic (the nominal device's inverse) uses the nominal exponential or
linear model; a measured (table) nominal device keeps the reference path.
"""

from __future__ import annotations

import math
import weakref

import numba
import numpy as np
import torch

from hnntrain.engine.kernels.devices import (
    ReplicaParallel,
    device_arguments,
    device_step,
    expm1_f32,
    log_f32,
    pulse_device,
    row_indices,
)
from hnntrain.physics import rng
from hnntrain.physics.rng import bits_nb, normal_nb, uniform_nb

NOMINAL_LINEAR, NOMINAL_EXPONENTIAL = 0, 1


@numba.njit(inline="always", cache=True, error_model="numpy")
def sense(g, sigma_range, codes, lsb, lo, g_range, read_key, elem):
    if sigma_range > 0:
        g = g + np.float32(normal_nb(bits_nb(read_key, elem))) * sigma_range
    if codes == 0:
        return g
    # np.round of a float32 is a float64 in numba: cast back, or the sum below rounds once
    # instead of twice and the reading differs from the reference in the last bit
    code = np.float32(min(max(np.round((g - lo) / g_range * codes), np.float32(0.0)), codes))
    return np.float32(lo + code * lsb)


@numba.njit(inline="always", cache=True, error_model="numpy")
def pulses_between(start, target, ltp, nominal_kind, nominal):
    """The nominal model inverted (``DeviceModel.pulses_to``): continuous pulses (>= 0) from
    ``start`` to ``target`` along LTP (``ltp``) or LTD."""
    if nominal_kind == NOMINAL_LINEAR:
        change = target - start if ltp else start - target
        return max(change / nominal[4], np.float32(0.0))
    g_inf = nominal[0] if ltp else nominal[1]
    a = nominal[2] if ltp else nominal[3]
    ratio = (start - g_inf) / (target - g_inf)
    n = a * log_f32(max(ratio, np.float32(1e-30)))
    if math.isnan(n):
        return np.float32(0.0)
    if math.isinf(n) and n > 0:
        return np.float32(1e9)
    return max(n, np.float32(0.0))


@numba.njit(inline="always", cache=True, error_model="numpy")
def policy_code(g, lo, g_range, levels):
    """ADC level of a sensed conductance for a CRUS policy lookup (``adc_code`` with levels - 1)."""
    top = np.float32(levels - 1)
    return int(min(max(np.round((g - lo) / g_range * top), np.float32(0.0)), top))


@ReplicaParallel
def refresh_kernel(g, w, w_scale, sigma_range, codes, lsb, lo, hi, g_range, read_keys, threshold, home_is_min,
                   due_table, levels, estimate, stats,
                   nominal_kind, nominal, cap, round_keys, c2c_keys, kind, prm, curve_up, curve_down, grid,
                   c2c, multiplicative, abs_sum, net_sum, programs):
    """Sense every pair of ``g`` (rows, 2, E, out) and refresh the due ones in place; returns
    the number of refreshed pairs. ``due_table`` ((E, levels^2) booleans; empty: the threshold
    rule) flags pairs by their sensed codes; ``estimate`` (empty: not kept) receives what the
    controller believes afterwards: the reading, or the target of a refreshed device.
    ``stats`` (4, E) receives per replica [pairs refreshed, rows with a reset, LTP and LTD
    pulses of the rewrite]."""
    rows, _, replicas, out = g.shape
    home = lo if home_is_min else hi
    for e in numba.prange(replicas):
        for r in range(rows):
            row_reset = False
            for j in range(out):
                s0 = sense(g[r, 0, e, j], sigma_range, codes, lsb, lo, g_range, read_keys[e], (r * 2) * out + j)
                s1 = sense(g[r, 1, e, j], sigma_range, codes, lsb, lo, g_range, read_keys[e], (r * 2 + 1) * out + j)
                if estimate.size > 0:
                    estimate[r, 0, e, j] = s0
                    estimate[r, 1, e, j] = s1
                if due_table.size > 0:
                    due = due_table[e, policy_code(s0, lo, g_range, levels) * levels
                                    + policy_code(s1, lo, g_range, levels)]
                else:
                    away0 = s0 - lo if home_is_min else hi - s0
                    away1 = s1 - lo if home_is_min else hi - s1
                    due = away0 > threshold and away1 > threshold
                if not due:
                    continue
                stats[0, e] += 1
                row_reset = True
                diff = s0 - s1
                up = max(diff, np.float32(0.0))
                down = max(-diff, np.float32(0.0))
                for d in range(2):
                    if home_is_min:
                        target = lo + (up if d == 0 else down)
                    else:
                        target = hi - (down if d == 0 else up)
                    target = min(max(target, lo), hi)
                    if estimate.size > 0:
                        estimate[r, d, e, j] = target
                    start = min(max(home, prm[0][r, d, e, j]), prm[1][r, d, e, j])
                    programs[d, e] += 1
                    x = pulses_between(home, target, home_is_min, nominal_kind, nominal)
                    n = np.floor(x + uniform_nb(bits_nb(round_keys[e], (r * 2 + d) * out + j)))
                    p = min(n, cap) if home_is_min else -min(n, cap)
                    if p != 0:
                        start = device_step(start, p, r, d, e, j, kind, prm, curve_up, curve_down, grid, c2c,
                                            multiplicative, c2c_keys[e], (r * 2 + d) * out + j)
                        abs_sum[d, e] += abs(p)
                        net_sum[d, e] += p
                        stats[2 if p > 0 else 3, e] += abs(p)
                    g[r, d, e, j] = start
                w[r, e, j] = (g[r, 0, e, j] - g[r, 1, e, j]) * w_scale
            if row_reset:
                stats[1, e] += 1


_NOMINAL_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def nominal_arguments(nominal) -> tuple[int, np.ndarray] | None:
    """(kind, [g_inf_ltp, g_inf_ltd, a_ltp, a_ltd, step, -1/a_ltp, -1/a_ltd]) of a nominal
    exponential or linear model (float32, as the model holds them); None for others (the
    reference then runs). Kept per model: the nominal device never changes during a run."""
    if nominal in _NOMINAL_CACHE:
        return _NOMINAL_CACHE[nominal]
    _NOMINAL_CACHE[nominal] = _nominal_arguments(nominal)
    return _NOMINAL_CACHE[nominal]


def _nominal_arguments(nominal) -> tuple[int, np.ndarray] | None:
    if nominal.name == "exponential":
        names = ("g_inf_ltp", "g_inf_ltd", "a_ltp", "a_ltd", None, "neg_inv_a_ltp", "neg_inv_a_ltd")
        values = [float(getattr(nominal, n)) if n else 0.0 for n in names]
        return NOMINAL_EXPONENTIAL, np.array(values, np.float32)
    if nominal.name == "linear":
        return NOMINAL_LINEAR, np.array([0.0, 0.0, 0.0, 0.0, float(nominal.step), 0.0, 0.0], np.float32)
    return None


_NO_TABLE = np.zeros((0, 0), np.bool_)
_NO_ESTIMATE = np.zeros((0, 0, 0, 0), np.float32)


def refresh_accepts(scheme) -> bool:
    """Whether the fused sensing and refresh implements ``scheme``: a nominal device it can
    invert, and resets that land exactly on the bound (no ``controller.reset_noise``)."""
    return nominal_arguments(scheme.ctx.nominal) is not None and scheme.ctx.reset_noise == 0


def sense_and_refresh(scheme, samples: int, key: rng.Key) -> None:
    """Fused ``before_sample`` of a Unidirectional (or MixedPrecision) ``scheme`` whose nominal
    device is exponential or linear (see :func:`nominal_arguments`)."""
    if scheme.refresh_due(samples):
        threshold = np.float32(scheme.options.refresh_threshold * (scheme.g_max - scheme.g_min))
        _run(scheme, key, threshold, bool(scheme.gradual_ltp), _NO_TABLE, 1, _NO_ESTIMATE)


def crus_sense_and_refresh(scheme, samples: int, key: rng.Key) -> None:
    """Fused ``before_sample`` of :class:`~hnntrain.schemes.crus.CRUS`: the read into the sensed
    estimate when due, and the policy's refresh."""
    _read_when_due(scheme, samples, key, lambda: _policy_tables(scheme)[2], scheme.levels, bool(scheme.home_is_min),
                   scheme.after_read)


def sense_when_due(scheme, samples: int, key: rng.Key) -> None:
    """Fused ``before_sample`` of a scheme that only senses (``SensedState.refresh_if_due``,
    e.g. :class:`~hnntrain.schemes.nonlinearity_aware.NonlinearityAware`): the read into the
    sensed estimate when due, no refresh."""
    replicas = scheme.array.g.shape[2]
    _read_when_due(scheme, samples, key, lambda: np.zeros((replicas, 1), np.bool_), 1, True)


def _read_when_due(scheme, samples: int, key: rng.Key, due_table, levels: int, home_is_min: bool,
                   after_read=None) -> None:
    """The read when due, then the refresh of the pairs ``due_table()`` ((E, levels^2) booleans,
    asked for after ``after_read``, which may re-solve a policy) flags."""
    sensed = scheme.sensed
    sensed.samples_since_read += samples
    if sensed.estimate is not None and sensed.samples_since_read < sensed.every:
        return
    sensed.samples_since_read = 0
    if sensed.estimate is None:
        sensed.estimate = torch.empty_like(scheme.array.g)
    if after_read is not None:
        after_read()  # the traffic since the last read, from counters the read does not change
    _run(scheme, key, np.float32(0.0), home_is_min, due_table(), levels, sensed.estimate.numpy())


def _run(scheme, key, threshold, home_is_min, table, levels, estimate) -> None:
    nominal = nominal_arguments(scheme.ctx.nominal)
    array, sensor = scheme.array, scheme.ctx.sensor
    lo, hi = sensor.g_min, sensor.g_max
    read_keys = key.take(rng.READ)
    round_keys = key.take(rng.ROUND)
    c2c_keys = key.take(rng.C2C)
    device = device_arguments(array.model, tuple(array.g.shape))
    counter = array.counter
    counter.add_reads(array.g.numel(), array.g.shape[0], array.extra)
    stats = np.zeros((4, array.g.shape[2]))
    refresh_kernel(
        array.g.numpy(), array.w.numpy(), np.float32(array.scale), np.float32(sensor.cfg.read_noise * (hi - lo)),
        np.float32(sensor.codes), np.float32(sensor.lsb), np.float32(lo), np.float32(hi), np.float32(hi - lo),
        read_keys, threshold, home_is_min, table, levels, estimate, stats, nominal[0], nominal[1],
        np.float32(array.model.levels), round_keys, c2c_keys, *device,
        counter.abs_sum.numpy(), counter.net_sum.numpy(), counter.programs.numpy())
    stats = stats.sum(axis=1)  # over replicas, in a fixed order: the same for any thread count
    if stats[0] > 0:  # the reference's refresh_pairs: resets counted as programs, one rewrite
        counter.refreshes += int(stats[0])
        counter.program_rows += float(stats[1])
        counter.refresh_calls += 1
        counter.refresh_ltp += float(stats[2])
        counter.refresh_ltd += float(stats[3])


@numba.njit(inline="always", cache=True, error_model="numpy")
def nominal_step(g, p, lo, hi, nominal_kind, nominal):
    """The controller's model of ``p`` pulses from ``g`` (``DeviceModel.apply`` without noise
    on the nominal device; ``p = 0`` only clips): the tracked estimate."""
    if nominal_kind == NOMINAL_LINEAR:
        g = g + p * nominal[4]
    elif p > 0:
        g = g + (g - nominal[0]) * expm1_f32(abs(p) * nominal[5])
    else:
        g = g + (g - nominal[1]) * expm1_f32(abs(p) * nominal[6])
    return min(max(g, lo), hi)


@ReplicaParallel
def crus_kernel(g, w, w_scale, inv_scale, request, rows, estimate, table_up, table_down, levels, g_range, lo, hi,
                nominal_kind, nominal, cap, track, accumulator, round_keys, c2c_keys, kind, prm, curve_up, curve_down,
                grid, c2c, multiplicative, abs_sum, net_sum):
    """``crus`` on the input rows ``rows`` of one layer, in place (``CRUS.update``): the
    policy's direction at the sensed codes, the nominal model inverted for the count, one
    device pulsed, the estimate tracked::

        without accumulate (``accumulator.size == 0``)   n = min(floor(pulses_to + U), cap)
        with accumulate    owed = chi + request;  n = min(trunc(pulses_to(owed)), cap);
                           chi = owed -/+ (nominal(G_est, n) - G_est) * w_scale

    (the sign of the delivered change is that of the pulsed device in w). Tracking passes
    every estimate of the rows through the nominal model, which clips the untouched ones too.
    """
    replicas = g.shape[2]
    out = g.shape[3]
    accumulate = accumulator.size > 0
    for e in numba.prange(replicas):
        for a in range(rows.size):
            r = rows[a]
            for j in range(out):
                est0 = estimate[r, 0, e, j]
                est1 = estimate[r, 1, e, j]
                idx = policy_code(est0, lo, g_range, levels) * levels + policy_code(est1, lo, g_range, levels)
                req = request[a, e, j]
                if accumulate:
                    req = accumulator[r, e, j] + req  # decide on everything owed so far
                increase = req > 0
                ltp = not (table_up[e, idx] if increase else table_down[e, idx])
                moves_plus = increase == ltp
                g_est = est0 if moves_plus else est1
                change = abs(req) * inv_scale
                target = g_est + change if ltp else g_est - change
                target = min(max(target, lo), hi)
                x = pulses_between(g_est, target, ltp, nominal_kind, nominal)
                if accumulate:  # whole pulses only; what they do not deliver stays owed
                    n = min(np.trunc(x), cap)
                    p = n if ltp else -n
                    # no pulse: the nominal model only clips (skips an expm1 at most synapses)
                    believed = min(max(g_est, lo), hi) if n == 0 else nominal_step(g_est, p, lo, hi, nominal_kind,
                                                                                   nominal)
                    delivered = (believed - g_est) * w_scale
                    accumulator[r, e, j] = req - delivered if moves_plus else req + delivered
                else:
                    n = np.floor(x + uniform_nb(bits_nb(round_keys[e], r * out + j)))
                    p = min(n, cap) if ltp else -min(n, cap)
                d = 0 if moves_plus else 1
                if track:  # the untouched device (both, without a pulse) is clipped into the range
                    estimate[r, 1 - d, e, j] = min(max(est1 if moves_plus else est0, lo), hi)
                    if n == 0:
                        estimate[r, d, e, j] = min(max(g_est, lo), hi)
                    else:
                        estimate[r, d, e, j] = nominal_step(g_est, p, lo, hi, nominal_kind, nominal)
                if n == 0:
                    continue
                pulse_device(g, p, r, d, e, j, kind, prm, curve_up, curve_down, grid, c2c, multiplicative,
                             c2c_keys[e], abs_sum, net_sum)
                w[r, e, j] = (g[r, 0, e, j] - g[r, 1, e, j]) * w_scale


def _policy_tables(scheme) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CRUS's per-replica (up, down, refresh) policy tables, (E, levels^2) booleans, as numpy
    views of the scheme's tensors (no copy; they change when the scheme re-solves its policy)."""
    return scheme.table_up.numpy(), scheme.table_down.numpy(), scheme.table_refresh.numpy()


_NO_ACCUMULATOR = np.zeros((0, 0, 0), np.float32)


def crus_update(scheme, request, rows, key: rng.Key) -> None:
    """Fused :meth:`CRUS.update <hnntrain.schemes.crus.CRUS.update>`, with or without ``accumulate``."""
    array = scheme.array
    nominal = nominal_arguments(scheme.ctx.nominal)
    levels = scheme.levels
    row_index = row_indices(rows, array.g.shape[0])
    round_keys = key.take(rng.ROUND)
    c2c_keys = key.take(rng.C2C)
    crus_kernel(array.g.numpy(), array.w.numpy(), np.float32(array.scale), np.float32(1.0 / array.scale),
                request.detach().numpy(), row_index, scheme.sensed.estimate.numpy(),
                *_policy_tables(scheme)[:2], levels,
                np.float32(scheme.g_max - scheme.g_min), np.float32(scheme.g_min),
                np.float32(scheme.g_max), nominal[0], nominal[1], np.float32(array.max_pulses),
                bool(scheme.sensed.track),
                _NO_ACCUMULATOR if scheme.accumulator is None else scheme.accumulator.value.numpy(),
                round_keys, c2c_keys,
                *device_arguments(array.model, tuple(array.g.shape)),
                array.counter.abs_sum.numpy(), array.counter.net_sum.numpy())
    array.counter.add_write(row_index.size, array.g.shape[3], array.extra)


@ReplicaParallel
def nonlinearity_aware_kernel(g, w, w_scale, half_scale, request, rows, estimate, lo, hi, nominal_kind, nominal,
                              cap, track, plus_keys, minus_keys, c2c_keys, kind, prm, curve_up, curve_down, grid,
                              c2c, multiplicative, abs_sum, net_sum):
    """``nonlinearity_aware`` on the input rows ``rows`` of one layer, in place
    (``NonlinearityAware.update``): each device of the pair asked for half of the request, its
    count the nominal model inverted at its sensed estimate::

        n+- = min(floor(pulses_to(G_est, G_est +- |dW| / 2s) + U+-), cap)   (LTP on G+ for dW > 0)

    U+ and U- are the first and second ``ROUND`` draws, numbered by the synapse's global input
    row as in the reference; the estimate is tracked.
    """
    replicas = g.shape[2]
    out = g.shape[3]
    for e in numba.prange(replicas):
        for a in range(rows.size):
            r = rows[a]
            for j in range(out):
                req = request[a, e, j]
                increase = req > 0
                half = abs(req) * half_scale
                pulsed = False
                for d in range(2):
                    ltp = increase if d == 0 else not increase
                    g_est = estimate[r, d, e, j]
                    target = g_est + half if ltp else g_est - half
                    target = min(max(target, lo), hi)
                    x = pulses_between(g_est, target, ltp, nominal_kind, nominal)
                    key = plus_keys[e] if d == 0 else minus_keys[e]
                    n = min(np.floor(x + uniform_nb(bits_nb(key, r * out + j))), cap)
                    p = n if ltp else -n
                    if track:
                        estimate[r, d, e, j] = min(max(g_est, lo), hi) if n == 0 else nominal_step(
                            g_est, p, lo, hi, nominal_kind, nominal)
                    if n == 0:
                        continue
                    pulsed = True
                    pulse_device(g, p, r, d, e, j, kind, prm, curve_up, curve_down, grid, c2c, multiplicative,
                                 c2c_keys[e], abs_sum, net_sum)
                if pulsed:
                    w[r, e, j] = (g[r, 0, e, j] - g[r, 1, e, j]) * w_scale


def nonlinearity_aware_update(scheme, request, rows, key: rng.Key) -> None:
    """Fused :meth:`NonlinearityAware.update <hnntrain.schemes.nonlinearity_aware.NonlinearityAware.update>`."""
    array = scheme.array
    nominal = nominal_arguments(scheme.ctx.nominal)
    row_index = row_indices(rows, array.g.shape[0])
    plus_keys = key.take(rng.ROUND)
    minus_keys = key.take(rng.ROUND)
    c2c_keys = key.take(rng.C2C)
    nonlinearity_aware_kernel(array.g.numpy(), array.w.numpy(), np.float32(array.scale), np.float32(0.5 / array.scale),
                              request.detach().numpy(), row_index, scheme.sensed.estimate.numpy(),
                              np.float32(scheme.g_min), np.float32(scheme.g_max), nominal[0], nominal[1],
                              np.float32(array.max_pulses), bool(scheme.sensed.track), plus_keys, minus_keys,
                              c2c_keys, *device_arguments(array.model, tuple(array.g.shape)),
                              array.counter.abs_sum.numpy(), array.counter.net_sum.numpy())
    array.counter.add_write(row_index.size, array.g.shape[3], array.extra)
