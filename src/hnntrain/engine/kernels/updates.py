"""Fused updates: one numba pass per layer and update, over the selected input rows only.

Each kernel does, per synapse, what the scheme's reference ``update`` does with tensors:
request -> pulse counts (stochastic rounding with the ``ROUND`` draw, cap) -> device response
(:func:`~hnntrain.engine.kernels.devices.device_step`, with the ``C2C`` draw) -> write counters
-> weight; devices that receive no pulse are skipped (most of them at batch 1). The random
numbers are those of the reference, taken from the layer's key in the same order.
"""

from __future__ import annotations

import numba
import numpy as np
from torch import Tensor

from hnntrain.engine.kernels.devices import (
    ReplicaParallel,
    device_arguments,
    pulse_device,
    push_pull_pair,
    row_indices,
)
from hnntrain.engine.kernels.refresh import (
    crus_sense_and_refresh,
    crus_update,
    nonlinearity_aware_update,
    refresh_accepts,
    sense,
    sense_and_refresh,
    sense_when_due,
)
from hnntrain.engine.kernels.registry import Kernel
from hnntrain.physics import rng
from hnntrain.physics.rng import bits_nb, uniform_nb


@ReplicaParallel
def push_pull_kernel(g, w, request, rows, to_pulses, cap, w_scale, round_keys, c2c_keys,
                     kind, prm, curve_up, curve_down, grid, c2c, multiplicative, abs_sum, net_sum):
    """``sgd`` on the input rows ``rows`` of one layer, in place::

        n = clip(floor(request * to_pulses + U), -cap, cap);   G+ gets +n, G- gets -n pulses
        w = (G+ - G-) * w_scale
    """
    replicas = g.shape[2]
    out = g.shape[3]
    for e in numba.prange(replicas):
        for a in range(rows.size):
            r = rows[a]
            for j in range(out):
                x = request[a, e, j] * to_pulses
                n = np.floor(x + uniform_nb(bits_nb(round_keys[e], r * out + j)))
                if n == 0:
                    continue
                push_pull_pair(g, w, min(max(n, -cap), cap), r, e, j, w_scale, kind, prm, curve_up, curve_down, grid,
                               c2c, multiplicative, c2c_keys[e], abs_sum, net_sum)


@ReplicaParallel
def gradual_kernel(g, w, request, rows, to_pulses, cap, w_scale, accumulator, step, round_keys, c2c_keys,
                   gradual_ltp, kind, prm, curve_up, curve_down, grid, c2c, multiplicative, abs_sum, net_sum):
    """``unidirectional`` (no accumulator: ``accumulator.size == 0``) or ``mixed_precision`` on
    the input rows ``rows`` of one layer, in place::

        unidirectional   n = floor(request * to_pulses + U)
        mixed precision  chi += request;  n = clip(trunc(chi * to_pulses), -cap, cap);  chi -= n * step
        |n| gradual pulses on the device whose gradual direction moves w the sign of n
    """
    replicas = g.shape[2]
    out = g.shape[3]
    accumulate = accumulator.size > 0
    for e in numba.prange(replicas):
        for a in range(rows.size):
            r = rows[a]
            for j in range(out):
                if accumulate:
                    owed = accumulator[r, e, j] + request[a, e, j]
                    n = np.trunc(owed * to_pulses)
                    n = min(max(n, -cap), cap)
                    accumulator[r, e, j] = owed - n * step
                else:
                    x = request[a, e, j] * to_pulses
                    n = np.floor(x + uniform_nb(bits_nb(round_keys[e], r * out + j)))
                if n == 0:
                    continue
                d = 0 if (n > 0) == gradual_ltp else 1
                p = min(abs(n), cap)
                if not gradual_ltp:
                    p = -p
                pulse_device(g, p, r, d, e, j, kind, prm, curve_up, curve_down, grid, c2c, multiplicative,
                             c2c_keys[e], abs_sum, net_sum)
                w[r, e, j] = (g[r, 0, e, j] - g[r, 1, e, j]) * w_scale


@numba.njit(cache=True, error_model="numpy")
def transfer_kernel(fast_g, fast_scale, g, w, w_scale, rows, chopper, sigma_range, codes, lsb, lo, g_range, read_keys,
                    gain, threshold, keep, accumulator, c2c_keys, kind, prm, curve_up, curve_down, grid, c2c,
                    multiplicative, abs_sum, net_sum):
    """Tiki-Taka's (TTv2) transfer of the input rows ``rows``: read A's pairs,
    H += c_r * A_read * gain; where |H| >= threshold one push-pull pulse of sign(H) on C and
    H <- keep * (H - sign H)."""
    replicas = g.shape[2]
    out = g.shape[3]
    for a in range(rows.size):
        row = rows[a]
        for e in range(replicas):
            for j in range(out):
                key = read_keys[e]
                s0 = sense(fast_g[row, 0, e, j], sigma_range, codes, lsb, lo, g_range, key, (row * 2) * out + j)
                s1 = sense(fast_g[row, 1, e, j], sigma_range, codes, lsb, lo, g_range, key, (row * 2 + 1) * out + j)
                h = accumulator[row, e, j] + (s0 - s1) * fast_scale * chopper[row] * gain
                if not abs(h) >= threshold:
                    accumulator[row, e, j] = h
                    continue
                n = np.float32(1.0) if h > 0 else np.float32(-1.0)
                accumulator[row, e, j] = (h - n) * keep
                push_pull_pair(g, w, n, row, e, j, w_scale, kind, prm, curve_up, curve_down, grid, c2c, multiplicative,
                               c2c_keys[e], abs_sum, net_sum)


def _push_pull(array, request: Tensor, rows, key: rng.Key) -> None:
    device = device_arguments(array.model, tuple(array.g.shape))
    round_keys = key.take(rng.ROUND)
    c2c_keys = key.take(rng.C2C)
    push_pull_kernel(array.g.numpy(), array.w.numpy(), request.detach().numpy(), row_indices(rows, array.g.shape[0]),
                     np.float32(0.5 / array.dw_step), np.float32(array.max_pulses), np.float32(array.scale),
                     round_keys, c2c_keys, *device, array.counter.abs_sum.numpy(), array.counter.net_sum.numpy())
    array.counter.add_write(request.shape[0], array.g.shape[3], array.extra)


def sgd(scheme, request: Tensor, rows: Tensor | None, key: rng.Key) -> None:
    """Fused :class:`~hnntrain.schemes.sgd.OpenLoopSGD` update (same numbers as ``scheme.update``)."""
    _push_pull(scheme.array, request, rows, key)


def tiki_taka(scheme, request: Tensor, rows: Tensor | None, key: rng.Key) -> None:
    """Fused :class:`~hnntrain.schemes.tiki_taka.TikiTaka` update: the push-pull pulses on the
    fast array A (times the chopper signs) and the transfer of the next rows of A to C, drawing
    their numbers in the reference's order (A's, then READ, then C's C2C)."""
    _push_pull(scheme.fast, scheme.fast_request(request, rows), rows, key)
    scheme.updates += 1
    if scheme.updates % scheme.options.transfer_every == 0:
        _transfer(scheme, key)


def _transfer(scheme, key: rng.Key) -> None:
    """``TikiTaka._transfer`` fused (same draws: READ, then C's C2C); ``after_transfer`` is the scheme's."""
    array, fast, sensor, options = scheme.array, scheme.fast, scheme.ctx.sensor, scheme.options
    rows = scheme.transfer_rows()
    fast.counter.add_reads(rows.numel() * fast.g[0].numel(), rows.numel(), fast.extra)
    read_keys = key.take(rng.READ)
    c2c_keys = key.take(rng.C2C)
    transfer_kernel(fast.g.numpy(), np.float32(fast.scale), array.g.numpy(), array.w.numpy(), np.float32(array.scale),
                    rows.numpy(), scheme.chopper.view(-1).numpy(),
                    np.float32(sensor.cfg.read_noise * (sensor.g_max - sensor.g_min)), np.float32(sensor.codes),
                    np.float32(sensor.lsb), np.float32(sensor.g_min), np.float32(sensor.g_max - sensor.g_min),
                    read_keys, np.float32(scheme.transfer_gain), np.float32(options.threshold),
                    np.float32(options.buffer_keep), scheme.accumulator.value.numpy(), c2c_keys,
                    *device_arguments(array.model, tuple(array.g.shape)),
                    array.counter.abs_sum.numpy(), array.counter.net_sum.numpy())
    array.counter.add_write(rows.numel(), array.g.shape[3], array.extra)
    scheme.after_transfer(rows)


def unidirectional(scheme, request: Tensor, rows: Tensor | None, key: rng.Key) -> None:
    """Fused update of :class:`~hnntrain.schemes.unidirectional.Unidirectional` (its refresh,
    in ``before_sample``, stays the reference)."""
    array = scheme.array
    step = array.dw_step
    _gradual(scheme, request, rows, np.float32(1.0 / step), np.zeros((0, 0, 0), np.float32), step,
             key.take(rng.ROUND), key.take(rng.C2C))


def mixed_precision(scheme, request: Tensor, rows: Tensor | None, key: rng.Key) -> None:
    """Fused update of :class:`~hnntrain.schemes.mixed_precision.MixedPrecision`."""
    step = scheme.array.dw_step
    _gradual(scheme, request, rows, np.float32(1.0 / step), scheme.accumulator.value.numpy(), step,
             np.zeros(request.shape[1], np.uint64), key.take(rng.C2C))


def _gradual(scheme, request, rows, to_pulses, accumulator, step, round_keys, c2c_keys) -> None:
    array = scheme.array
    device = device_arguments(array.model, tuple(array.g.shape))
    gradual_kernel(array.g.numpy(), array.w.numpy(), request.detach().numpy(), row_indices(rows, array.g.shape[0]),
                   to_pulses, np.float32(array.max_pulses), np.float32(array.scale), accumulator, np.float32(step),
                   round_keys, c2c_keys, bool(scheme.gradual_ltp), *device,
                   array.counter.abs_sum.numpy(), array.counter.net_sum.numpy())
    array.counter.add_write(request.shape[0], array.g.shape[3], array.extra)


@ReplicaParallel
def threshold_kernel(g, w, request, rows, to_pulses, threshold, deterministic, cap, w_scale, round_keys, c2c_keys,
                     kind, prm, curve_up, curve_down, grid, c2c, multiplicative, abs_sum, net_sum):
    """``threshold`` on the input rows ``rows`` of one layer, in place::

        x = request * to_pulses
        n = clip(round(x) or floor(x + U), -cap, cap)  where |x| >= threshold, else 0;  push-pull n

    U is numbered by the synapse's global input row, as in the reference.
    """
    replicas = g.shape[2]
    out = g.shape[3]
    for e in numba.prange(replicas):
        for a in range(rows.size):
            r = rows[a]
            for j in range(out):
                x = request[a, e, j] * to_pulses
                if not abs(x) >= threshold:
                    continue
                if deterministic:  # np.round of a float32 is a float64 in numba
                    n = np.float32(np.round(x))
                else:
                    n = np.floor(x + uniform_nb(bits_nb(round_keys[e], r * out + j)))
                if n == 0:
                    continue
                push_pull_pair(g, w, min(max(n, -cap), cap), r, e, j, w_scale, kind, prm, curve_up, curve_down, grid,
                               c2c, multiplicative, c2c_keys[e], abs_sum, net_sum)


def threshold(scheme, request: Tensor, rows: Tensor | None, key: rng.Key) -> None:
    """Fused :class:`~hnntrain.schemes.threshold.ThresholdUpdate` update."""
    array, options = scheme.array, scheme.options
    row_index = row_indices(rows, array.g.shape[0])
    round_keys = key.take(rng.ROUND)
    c2c_keys = key.take(rng.C2C)
    threshold_kernel(array.g.numpy(), array.w.numpy(), request.detach().numpy(), row_index,
                     np.float32(0.5 / array.dw_step), np.float32(options.threshold), bool(options.deterministic),
                     np.float32(array.max_pulses), np.float32(array.scale), round_keys, c2c_keys,
                     *device_arguments(array.model, tuple(array.g.shape)),
                     array.counter.abs_sum.numpy(), array.counter.net_sum.numpy())
    array.counter.add_write(row_index.size, array.g.shape[3], array.extra)


def fp(scheme, request: Tensor, rows: Tensor | None, key: rng.Key) -> None:
    """``fp``: w[rows] += request (one torch op already; listed so that every path is fused)."""
    scheme.array.add(request, rows)


KERNELS = {
    "sgd": Kernel(sgd),
    "fp": Kernel(fp),
    "unidirectional": Kernel(unidirectional, before=sense_and_refresh, before_accepts=refresh_accepts),
    "mixed_precision": Kernel(mixed_precision, before=sense_and_refresh, before_accepts=refresh_accepts),
    "tiki_taka": Kernel(tiki_taka),
    "crus": Kernel(crus_update, before=crus_sense_and_refresh, inverts_nominal=True, before_accepts=refresh_accepts),
    "threshold": Kernel(threshold),
    "nonlinearity_aware": Kernel(nonlinearity_aware_update, before=sense_when_due, inverts_nominal=True),
}
"""Scheme name -> what the fused engine has for it."""
