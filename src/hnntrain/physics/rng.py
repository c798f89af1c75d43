"""Counter-based random numbers: every number is a hash of where it is used.

Every random number a run draws (pulse rounding, cycle-to-cycle noise, read noise) is a pure
function of the run seed, the replica, the update index, the layer, the purpose of the draw and
the element it is drawn for. Nothing is carried from one draw to the next, so the numbers a
device sees do not depend on thread count, replica packing, execution order, or on which code
path (the readable torch reference, the fused numba kernels, a GPU) computes them; a checkpoint
only needs the update counter.

The stream (SplitMix64; Steele, Lea & Flood, OOPSLA 2014), all arithmetic modulo 2^64::

    mix(z)       = z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB; z ^ (z >> 31)
    fold(k, t)   = mix(k + GAMMA * (t + 1)),            GAMMA = 0x9E3779B97F4A7C15
    replica key  K_e = fold(seed, e)                     (e: replica index within its run)
    a draw key   D_e = fold(fold(fold(K_e, t1), t2) ...) (update, layer, phase, purpose, count)
    element bits h = fold(D_e, i)                        (i: element index, see below)

A tensor drawn for shape (rows, *mid, E, out), replicas on the second-last axis, numbers its
elements without the replica axis, with *global* row indices::

    i = (row * prod(mid) + m) * out + j

so the number a synapse gets does not depend on which rows an update selects. From the 64 bits:

    uniform U in [0, 1), float32:   U = (h >> 40) * 2^-24                        (exact)
    standard normal Z, float64:     p = ((h >> 12) + 1/2) * 2^-52 in (0, 1),  Z = Phi^-1(p)

Phi^-1 is P. J. Acklam's rational approximation (2003; relative error < 1.2e-9, checked against
scipy in the tests) whose tails need log and sqrt; both are computed here from frexp, an atanh
series and Newton's iteration, i.e. with +, -, *, / only (torch's CPU sqrt is not correctly
rounded), so the torch reference and the numba implementation below give bit-identical numbers.
Uniform draws take 24 bits and normal draws 52 bits of the same hash, so a uniform and a normal
drawn with one key for one element are not independent: every purpose folds its own tag.

:class:`Key` is the small object passed down the update path in place of a generator. Each
``take(purpose)`` on one key returns fresh draw keys (a per-purpose counter is folded in), so
two draws for the same purpose in one update never repeat numbers.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch import Tensor

try:  # the fused engine and the fast CPU path; the torch code below is the reference
    import numba
except ImportError:  # pragma: no cover - exercised on platforms without numba wheels
    numba = None
if os.environ.get("HNNTRAIN_NUMBA") == "0":  # run as if numba were missing (tests, comparisons)
    numba = None

GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
_MASK64 = (1 << 64) - 1

# purposes of a draw (folded into the key; new purposes take new numbers, never reuse one)
ROUND = 1
"""Stochastic rounding of pulse counts."""
C2C = 2
"""Cycle-to-cycle noise of a pulsed device."""
READ = 3
"""Read noise of a sensed device."""
RESET = 4
"""Where a reset lands around the home bound."""

# Acklam's inverse normal CDF coefficients (central region and tails)
_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
      1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
      6.680131188771972e+01, -1.328068155288572e+01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
      -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00)
_P_LOW = 0.02425
_LN2 = 0.6931471805599453
_SQRT_HALF = 0.7071067811865476
_NEWTON_STEPS = 6  # from 1.0, for arguments in [0.5, 2): error 0.41 -> 1e-16 in five
_ATANH_TERMS = tuple(2.0 / (2 * k + 1) for k in range(10))  # log m = sum 2 s^(2k+1) / (2k+1)


# -- scalar definition (Python ints): the specification the two implementations follow -------
def mix(z: int) -> int:
    z &= _MASK64
    z = ((z ^ (z >> 30)) * MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * MIX2) & _MASK64
    return z ^ (z >> 31)


def fold(key: int, tag: int) -> int:
    return mix(key + GAMMA * (tag + 1))


class Key:
    """Draw keys for the replicas of one ensemble: a (E,) uint64 array, plus per-purpose counters.

    ``fold(*tags)`` derives the key of a sub-stream (update index, layer, phase);
    ``take(purpose)`` returns the (E,) keys of the next draw for that purpose. The trainer
    passes a key down the update path where a generator would otherwise go.
    """

    __slots__ = ("keys", "_taken")

    def __init__(self, keys: np.ndarray):
        self.keys = np.ascontiguousarray(keys, dtype=np.uint64)
        self._taken: dict[int, int] = {}

    @classmethod
    def from_seed(cls, seed: int, replicas: int) -> "Key":
        """K_e = fold(seed, e) for e = 0..replicas-1."""
        return cls(np.array([fold(int(seed), e) for e in range(replicas)], dtype=np.uint64))

    @property
    def replicas(self) -> int:
        return int(self.keys.size)

    def fold(self, *tags: int) -> "Key":
        return Key(_fold_keys(self.keys, np.array(tags, dtype=np.uint64)))

    def take(self, purpose: int) -> np.ndarray:
        count = self._taken.get(purpose, 0)
        self._taken[purpose] = count + 1
        return _fold_keys(self.keys, np.array((purpose, count), dtype=np.uint64))


def _fold_keys_np(keys: np.ndarray, tags: np.ndarray) -> np.ndarray:
    """fold(...fold(fold(keys, tags[0]), tags[1])...) elementwise (uint64 arrays wrap)."""
    for tag in tags:
        z = keys + np.uint64((GAMMA * (int(tag) + 1)) & _MASK64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
        keys = z ^ (z >> np.uint64(31))
    return keys


# -- torch reference (int64 tensors hold the uint64 bits; shifts made logical) ---------------
def _signed(c: int) -> int:
    return c - (1 << 64) if c >= 1 << 63 else c


def _shr(z: Tensor, k: int) -> Tensor:
    return (z >> k) & ((1 << (64 - k)) - 1)


def _mix_t(z: Tensor) -> Tensor:
    z = (z ^ _shr(z, 30)) * _signed(MIX1)
    z = (z ^ _shr(z, 27)) * _signed(MIX2)
    return z ^ _shr(z, 31)


def element_ids(shape: tuple[int, ...], rows: Tensor | None, device) -> Tensor:
    """(rows, *mid, 1, out) int64 element indices i (without the replica axis, see module doc)."""
    k, out = shape[0], shape[-1]
    mid = math.prod(shape[1:-2])
    row = torch.arange(k, device=device) if rows is None else rows.to(device=device, dtype=torch.int64)
    i = (row.view(k, 1, 1) * mid + torch.arange(mid, device=device).view(1, mid, 1)) * out
    i = i + torch.arange(out, device=device).view(1, 1, out)
    return i.view(k, *shape[1:-2], 1, out)


def bits_torch(keys: np.ndarray, shape: tuple[int, ...], rows: Tensor | None, device) -> Tensor:
    """Element bits h = fold(D_e, i) for a (rows, *mid, E, out) draw, as int64."""
    d = torch.from_numpy(keys.view(np.int64).copy()).to(device).view(len(keys), 1)
    return _mix_t(d + element_ids(shape, rows, device).add(1).mul(_signed(GAMMA)))


def uniform_from_bits(h: Tensor) -> Tensor:
    return _shr(h, 40).to(torch.float32) * 2.0**-24


def _log_tail(p: Tensor) -> Tensor:
    """log(p) for 0 < p <= 1/2 with +, -, *, / only (exactly mirrored in numba)."""
    m, e = torch.frexp(p)
    small = m < _SQRT_HALF
    m = torch.where(small, m * 2.0, m)
    e = torch.where(small, e - 1, e).to(torch.float64)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    acc = torch.full_like(s, _ATANH_TERMS[-1])
    for c in _ATANH_TERMS[-2::-1]:
        acc = acc * s2 + c
    return e * _LN2 + acc * s


def _sqrt(x: Tensor) -> Tensor:
    """sqrt(x) for x > 0 by Newton's iteration from a fixed start (torch's CPU sqrt is not
    correctly rounded, so the reference and numba share this instead)."""
    m, e = torch.frexp(x)
    odd = (e & 1) == 1
    m = torch.where(odd, m * 2.0, m)  # x = m 2^e' with e' even, m in [0.5, 2)
    half_e = torch.where(odd, e - 1, e) // 2
    y = torch.ones_like(m)
    for _ in range(_NEWTON_STEPS):
        y = 0.5 * (y + m / y)
    return torch.ldexp(y, half_e)


def _horner(coefficients: tuple[float, ...], x: Tensor) -> Tensor:
    """c0 x^n + c1 x^(n-1) + ... + cn, evaluated as ((c0 x + c1) x + ...) (mirrored in numba)."""
    acc = torch.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        acc = acc * x + c
    return acc


def normal_from_bits(h: Tensor) -> Tensor:
    p = (_shr(h, 12).to(torch.float64) + 0.5) * 2.0**-52
    q = p - 0.5
    r = q * q
    central = _horner(_A, r) * q / (_horner(_B, r) * r + 1.0)
    tail_p = torch.minimum(p, 1.0 - p)
    t = _sqrt(-2.0 * _log_tail(tail_p))
    tail = _horner(_C, t) / (_horner(_D, t) * t + 1.0)
    tail = torch.where(p < 0.5, tail, -tail)
    return torch.where(tail_p < _P_LOW, tail, central)


def uniform_torch(keys, shape, rows=None, device="cpu") -> Tensor:
    return uniform_from_bits(bits_torch(keys, shape, rows, device))


def normal_torch(keys, shape, rows=None, device="cpu") -> Tensor:
    return normal_from_bits(bits_torch(keys, shape, rows, device))


# -- numba (scalar functions for the fused kernels, and fast CPU fills for the reference) ---
if numba is not None:
    _U30, _U27, _U31, _U40, _U12 = (np.uint64(v) for v in (30, 27, 31, 40, 12))
    _UMIX1, _UMIX2, _UGAMMA, _UONE = np.uint64(MIX1), np.uint64(MIX2), np.uint64(GAMMA), np.uint64(1)
    _A_NP, _B_NP, _C_NP, _D_NP = (np.array(v) for v in (_A, _B, _C, _D))
    _ATANH_NP = np.array(_ATANH_TERMS)

    @numba.njit(inline="always", cache=True)
    def mix_nb(z):
        z = (z ^ (z >> _U30)) * _UMIX1
        z = (z ^ (z >> _U27)) * _UMIX2
        return z ^ (z >> _U31)

    @numba.njit(inline="always", cache=True)
    def bits_nb(key, i):
        """h = fold(key, i) for a uint64 key and an int element index."""
        return mix_nb(key + (np.uint64(i) + _UONE) * _UGAMMA)

    @numba.njit(inline="always", cache=True)
    def uniform_nb(h):
        return np.float32(h >> _U40) * np.float32(2.0**-24)

    @numba.njit(cache=True)
    def _log_tail_nb(p):
        m, e = math.frexp(p)
        if m < _SQRT_HALF:
            m = m * 2.0
            e -= 1
        s = (m - 1.0) / (m + 1.0)
        s2 = s * s
        acc = _ATANH_NP[-1]
        for k in range(_ATANH_NP.size - 2, -1, -1):
            acc = acc * s2 + _ATANH_NP[k]
        return float(e) * _LN2 + acc * s

    @numba.njit(cache=True)
    def _sqrt_nb(x):
        m, e = math.frexp(x)
        if e & 1:
            m = m * 2.0
            e -= 1
        y = 1.0
        for _ in range(_NEWTON_STEPS):
            y = 0.5 * (y + m / y)
        return math.ldexp(y, e // 2)

    @numba.njit(inline="always", cache=True)
    def _horner_nb(coefficients, x):
        acc = coefficients[0]
        for k in range(1, coefficients.size):
            acc = acc * x + coefficients[k]
        return acc

    @numba.njit(cache=True)
    def normal_nb(h):
        p = (float(h >> _U12) + 0.5) * 2.0**-52
        tail_p = min(p, 1.0 - p)
        if tail_p < _P_LOW:
            t = _sqrt_nb(-2.0 * _log_tail_nb(tail_p))
            x = _horner_nb(_C_NP, t) / (_horner_nb(_D_NP, t) * t + 1.0)
            return x if p < 0.5 else -x
        q = p - 0.5
        r = q * q
        return _horner_nb(_A_NP, r) * q / (_horner_nb(_B_NP, r) * r + 1.0)

    @numba.njit(cache=True)
    def _fold_keys_nb(keys, tags):
        out = keys.copy()
        for e in range(out.size):
            z = out[e]
            for tag in tags:
                z = bits_nb(z, tag)
            out[e] = z
        return out

    @numba.njit(cache=True)
    def _fill_nb(keys, rows, mid, out, normal, where, dst):
        """dst (k, mid, E, out) from element bits (rows: global row indices); where ``where``
        (same shape, or empty: everywhere) is false, 0."""
        masked = where.size > 0
        for a in range(rows.size):
            for m in range(mid):
                base = (rows[a] * mid + m) * out
                for e in range(keys.size):
                    for j in range(out):
                        if masked and not where[a, m, e, j]:
                            dst[a, m, e, j] = 0
                            continue
                        h = bits_nb(keys[e], base + j)
                        dst[a, m, e, j] = normal_nb(h) if normal else uniform_nb(h)


_fold_keys = _fold_keys_np if numba is None else _fold_keys_nb


def _layout(keys: np.ndarray, shape) -> tuple[int, ...]:
    """The (rows, mid, E, out) layout a draw of ``shape`` is numbered in. A single-replica key
    also draws any other shape, numbered by its flat index (the same numbers as (rows, ..., 1, out))."""
    shape = tuple(int(s) for s in shape)
    if len(shape) >= 2 and shape[-2] == len(keys):
        return shape
    if len(keys) == 1 and len(shape) >= 1:
        return (shape[0], math.prod(shape[1:]), 1, 1)
    raise ValueError(f"a draw of shape {shape} needs the replica axis second-last, with {len(keys)} replicas")


def _draw(keys: np.ndarray, shape, rows, device, normal: bool, where: Tensor | None = None) -> Tensor:
    shape, layout = tuple(shape), _layout(keys, shape)
    device = torch.device(device)
    if numba is None or device.type != "cpu":
        out = (normal_torch if normal else uniform_torch)(keys, layout, rows, device).view(shape)
        return out if where is None else torch.where(where, out, torch.zeros((), dtype=out.dtype, device=device))
    k, out = layout[0], layout[-1]
    mid = math.prod(layout[1:-2])
    row_idx = np.arange(k, dtype=np.int64) if rows is None else rows.to(torch.int64).numpy()
    dst = np.empty((k, mid, len(keys), out), dtype=np.float64 if normal else np.float32)
    mask = np.zeros((0, 0, 0, 0), np.bool_) if where is None else where.expand(shape).reshape(dst.shape).numpy()
    _fill_nb(keys, row_idx, mid, out, normal, mask, dst)
    return torch.from_numpy(dst).view(*shape)


def uniform(keys: np.ndarray, shape, rows: Tensor | None = None, device="cpu") -> Tensor:
    """float32 uniforms in [0, 1) for a (rows, *mid, E, out) draw with keys ``keys`` (E,)."""
    return _draw(keys, shape, rows, device, False)


def normal(keys: np.ndarray, shape, rows: Tensor | None = None, device="cpu", where: Tensor | None = None) -> Tensor:
    """float64 standard normals for a (rows, *mid, E, out) draw with keys ``keys`` (E,); 0 where
    the boolean ``where`` (broadcastable to ``shape``) is false (the CPU path skips them)."""
    return _draw(keys, shape, rows, device, True, where)
