"""Device physics for the fused kernels: one device, one update, in numba.

:func:`device_step` is :meth:`DeviceModel.apply <hnntrain.physics.devices.base.DeviceModel.apply>`
for one device that receives ``p != 0`` signed pulses, in float32 and in the same order of
operations as the torch reference, so that both agree to float rounding (exactly where no
transcendental function is involved):

    exponential   G' = G + (G - G_inf) * expm1(-|p| / A)        (G_inf, A of the pulse direction)
    linear        G' = G + p * step
    table         G' = curve(curve^-1(G) + |p|)                 (piecewise linear, per direction)
    c2c           G' += xi * sqrt|p| * sigma * range            (additive)
                  G' += (G' - G) * xi * sigma / sqrt(max(|p|, 1))  (multiplicative)
    clip          G' = min(max(G', g_min), g_max)

xi is the ``C2C`` normal of :mod:`hnntrain.physics.rng` for the device's element index.
Per-device parameters are passed as (rows, 2, E, out) arrays; a parameter shared by all devices
is a zero-stride view, so one compiled kernel serves both.
"""

from __future__ import annotations

import math
import types
import weakref

import numba
import numpy as np

from hnntrain.physics.devices.base import DeviceModel
from hnntrain.physics.rng import bits_nb, normal_nb

LINEAR, EXPONENTIAL, TABLE = 0, 1, 2
_KINDS = {"linear": LINEAR, "exponential": EXPONENTIAL, "table": TABLE}
_PARAMS = {
    LINEAR: ("g_min", "g_max", "step"),
    EXPONENTIAL: ("g_min", "g_max", "g_inf_ltp", "g_inf_ltd", "neg_inv_a_ltp", "neg_inv_a_ltd"),
    TABLE: ("g_min", "g_max"),
}
_CACHE: "weakref.WeakKeyDictionary[DeviceModel, tuple]" = weakref.WeakKeyDictionary()


_ALL_ROWS: dict[int, np.ndarray] = {}


def row_indices(rows, count: int) -> np.ndarray:
    """The global input rows a kernel updates, as int64 numpy: ``rows`` (a tensor or an array),
    or every row 0..count-1 when None (kept per count, not rebuilt at every update; kernels only
    read it)."""
    if rows is None:
        every = _ALL_ROWS.get(count)
        if every is None:
            every = _ALL_ROWS[count] = np.arange(count, dtype=np.int64)
        return every
    return rows if isinstance(rows, np.ndarray) else rows.numpy()


def supported(model: DeviceModel) -> bool:
    """True for the device models the kernels implement (float32 parameters on the CPU)."""
    return model.name in _KINDS and model.g_min.device.type == "cpu" and model.g_min.dtype.is_floating_point


def device_arguments(model: DeviceModel, shape: tuple[int, ...]) -> tuple:
    """(kind, params, curve_up, curve_down, grid, c2c, multiplicative) for :func:`device_step`,
    params as six (rows, 2, E, out) float32 views (cached per model and shape)."""
    cached = _CACHE.get(model)
    if cached is not None and cached[0] == shape:
        return cached[1]
    kind = _KINDS[model.name]
    tensors = model.tensors()
    views = [np.broadcast_to(tensors[name].to("cpu").float().numpy(), shape) for name in _PARAMS[kind]]
    views += [views[0]] * (6 - len(views))  # unused slots
    if kind == TABLE:
        up = tensors["u_ltp"].float().numpy()
        down = tensors["u_ltd"].float().numpy()
    else:
        up = down = np.zeros(2, np.float32)
    grid = np.arange(up.size, dtype=np.float32)
    args = (kind, tuple(views), up, down, grid, np.float32(model.c2c), model.c2c_mode == "multiplicative")
    _CACHE[model] = (shape, args)
    return args


class ReplicaParallel:
    """A per-layer kernel compiled twice: serially, and with its replica loop (``numba.prange``,
    the outermost loop of every such kernel) split across numba's threads. Replicas share no
    state (each has its own keys, devices, weights and counters ``[..., e]``), so the numbers
    are the same for any thread count; the threaded form runs when there are several replicas
    and several threads (``numba.set_num_threads``, ``runtime.threads``)."""

    def __init__(self, fn):
        self.serial = numba.njit(cache=True, error_model="numpy")(fn)
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_threaded", fn.__defaults__,
                                  fn.__closure__)
        twin.__qualname__ = fn.__qualname__ + "_threaded"  # its own on-disk cache entry
        twin.__doc__ = fn.__doc__
        self.threaded = numba.njit(cache=True, error_model="numpy", parallel=True)(twin)
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __call__(self, g, *args):
        """``g`` (rows, 2, E, out) first, as in every per-layer kernel."""
        if g.shape[2] > 1 and numba.get_num_threads() > 1:
            return self.threaded(g, *args)
        return self.serial(g, *args)


@numba.njit(inline="always", cache=True, error_model="numpy")
def expm1_f32(x):
    """float32 expm1 of a float32 argument, evaluated in float64 and rounded once. The torch
    reference's float32 expm1 and log (SLEEF, within 1 ulp) differ from numba's float32 ones in
    the last bit for 8 % (expm1) and 0.6 % of arguments, from the once-rounded float64 results
    for 0.3 % and 0.05 %: nearer numbers, and fewer whole-pulse counts (CRUS with ``accumulate``
    truncates them) that fall on the other side of an integer than in the reference."""
    return np.float32(math.expm1(np.float64(x)))


@numba.njit(inline="always", cache=True, error_model="numpy")
def log_f32(x):
    """float32 natural log of a float32 argument, evaluated in float64 (see :func:`expm1_f32`)."""
    return np.float32(math.log(np.float64(x)))


@numba.njit(inline="always", cache=True, error_model="numpy")
def _interp(x, xp, fp, sign):
    """Piecewise-linear interpolation of increasing ``sign * xp`` -> ``fp`` at ``x``, clamped:
    the reference's ``_interp`` (left-sided search, index clamped to 1..n-1)."""
    n = xp.size
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if sign * xp[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    idx = min(max(lo, 1), n - 1)
    x0 = sign * xp[idx - 1]
    x1 = sign * xp[idx]
    t = (x - x0) / max(x1 - x0, np.float32(1e-12))
    t = min(max(t, np.float32(0.0)), np.float32(1.0))
    return fp[idx - 1] + t * (fp[idx] - fp[idx - 1])


@numba.njit(inline="always", cache=True, error_model="numpy")
def device_step(g, p, r, d, e, j, kind, prm, curve_up, curve_down, grid, c2c, multiplicative, c2c_key, elem):
    """Conductance of device (r, d, e, j) at ``g`` after ``p != 0`` signed pulses (float32)."""
    g_min = prm[0][r, d, e, j]
    g_max = prm[1][r, d, e, j]
    if kind == EXPONENTIAL:
        if p > 0:
            g_inf = prm[2][r, d, e, j]
            rate = prm[4][r, d, e, j]
        else:
            g_inf = prm[3][r, d, e, j]
            rate = prm[5][r, d, e, j]
        gn = g + (g - g_inf) * expm1_f32(abs(p) * rate)
    elif kind == LINEAR:
        gn = g + p * prm[2][r, d, e, j]
    else:
        g_range = g_max - g_min
        u = (g - g_min) / g_range
        if p > 0:
            pos = _interp(u, curve_up, grid, np.float32(1.0))
            un = _interp(pos + p, grid, curve_up, np.float32(1.0))
        else:
            pos = _interp(-u, curve_down, grid, np.float32(-1.0))
            un = _interp(pos - p, grid, curve_down, np.float32(1.0))
        gn = g_min + un * g_range
    if c2c > 0:
        xi = np.float32(normal_nb(bits_nb(c2c_key, elem)))
        n = abs(p)
        if multiplicative:
            gn = gn + (gn - g) * xi * (c2c / np.float32(math.sqrt(max(n, np.float32(1.0)))))
        else:
            gn = gn + xi * np.float32(math.sqrt(n)) * (c2c * (g_max - g_min))
    return min(max(gn, g_min), g_max)


@numba.njit(inline="always", cache=True, error_model="numpy")
def pulse_device(g, p, r, d, e, j, kind, prm, curve_up, curve_down, grid, c2c, multiplicative, c2c_key,
                 abs_sum, net_sum):
    """Apply ``p != 0`` pulses to device (r, d, e, j) of ``g`` in place and count them
    (``PairArray.pulse`` for one device)."""
    g[r, d, e, j] = device_step(g[r, d, e, j], p, r, d, e, j, kind, prm, curve_up, curve_down, grid, c2c,
                                multiplicative, c2c_key, (r * 2 + d) * g.shape[3] + j)
    abs_sum[d, e] += abs(p)
    net_sum[d, e] += p


@numba.njit(inline="always", cache=True, error_model="numpy")
def push_pull_pair(g, w, n, r, e, j, w_scale, kind, prm, curve_up, curve_down, grid, c2c, multiplicative, c2c_key,
                   abs_sum, net_sum):
    """One push-pull step on pair (r, e, j) of ``g`` in place: ``n != 0`` pulses on G+, ``-n``
    on G-, counted, and the pair's weight (G+ - G-) * w_scale."""
    for d in range(2):
        pulse_device(g, n if d == 0 else -n, r, d, e, j, kind, prm, curve_up, curve_down, grid, c2c, multiplicative,
                     c2c_key, abs_sum, net_sum)
    w[r, e, j] = (g[r, 0, e, j] - g[r, 1, e, j]) * w_scale
