"""The linear optimization behind CRUS: which device and direction to pulse, per sensed pair state.

A synapse is a pair (G+, G-) of which the controller knows only sensed codes (c+, c-) of an
L-level ADC. A weight increase can be made with LTP on G+ or with LTD on G-; a decrease with
LTP on G- or with LTD on G+. Which is better depends on where each device sits on its curves
and on how well the controller knows it. CRUS also may *refresh* a pair (reset both devices
to the "home" bound, the one the abrupt direction reaches exactly, and reprogram the sensed
difference on one device).

We pose the choice as an average-cost Markov decision problem over the L^2 sensed pair states
and solve its linear-programming form with HiGHS (scipy):

    minimize    sum_{s,a} x(s,a) c(s,a)
    subject to  sum_a x(s',a) = sum_{s,a} P(s'|s,a) x(s,a)   for every state s'
                sum_{s,a} x(s,a) = 1,   x >= 0

x(s,a) is the long-run fraction of updates that find the pair in state s and apply plan a. A
plan fixes the action for an increase and for a decrease (and whether to refresh first): 8
plans. c(s,a) is the expected squared deviation of the realized from the requested change of
(G+ - G-) (range units) over a window of ``noise_window`` updates: the squared systematic part
(the mean over stochastic pulse rounding) in full, the rounding variance divided by the window
(an unbiased count's rounding noise averages out; counting it in full, as a window-1 UN does,
rewards policies that park devices where pulses do nothing). It is averaged over the request
distribution (sign +/- equally likely, magnitude exponential with mean ``request_pulses``
nominal steps, Gauss-Laguerre points) and over the controller's estimate error, two-point
quadrature at +/- sigma(t). Pulse counts are model-based: the nominal curve inverted at the
estimated state.

What the controller sees between reads, as a function of the sensing interval K: at a read its
estimate is off by the ADC's quantization and the read noise; every update since adds the
cycle-to-cycle noise of the pulses it issued and its nominal model's step error on the change
it made (device-to-device variation it does not know), or, without tracking, the whole change
(:func:`estimate_sigmas`). The cost is averaged over the age t of the estimate, uniform over the
K updates between reads (three-point quadrature). A refresh can only happen at a read, so the
refresh plan acts on 1/K of the updates. So the policy depends on K, the ADC bits, read noise,
c2c and d2d. A refresh costs the variance of the weight error it writes. The objective divided
by the mean squared request is :attr:`Policy.lp_cost`, a proxy on its own scale (see there).

Checked against a Monte-Carlo run of the same policy by the CRUS scheme itself on nominal
devices (:mod:`hnntrain.schemes.policy_check`, ``tests/test_crus.py``): the program
overestimates the measured objective by about 1.5-2.2x on the nonlinear presets (its chain
over ADC codes spreads faster than the continuous conductance does) and far more on the linear
``ideal`` device, whose steps are much finer than an ADC code.

The LP's dual values on the balance constraints are the relative values h(s) of the states;
the policy used everywhere (also in states the optimal chain never visits, which a real array
reaches through noise) is the one-step improvement a(s) = argmin_a c(s,a) + sum_s' P(s'|s,a) h(s').
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import linprog

from hnntrain.physics.devices import DeviceModel, build_device, nominal_device
from hnntrain.physics.sensing import adc_code, code_position
from hnntrain.schemes.common import gradual_is_ltp
from hnntrain.spec.config import DeviceConfig, SensingConfig

LTP_ACTION, LTD_ACTION = 0, 1
MAX_LEVELS = 32  # LP resolution cap: finer ADCs are optimized on a 32-level grid and mapped


@dataclass(frozen=True)
class OptimizeSpec:
    """What the optimization assumes about the traffic of requests."""

    request_pulses: float = 1.0
    """Mean |requested change of G+ - G-| in nominal device steps (exponential distribution)."""
    magnitudes: int = 6
    """Quadrature points for the request magnitude distribution."""
    max_pulses: int = 16
    """Pulse cap per device per update (hardware)."""
    c2c: float = 0.0
    """Cycle-to-cycle sigma per pulse, fraction of the range (its variance adds n * c2c^2)."""
    refresh: bool = True
    """Allow the refresh plan."""
    reverse: bool = True
    """Allow the LTD-based (reverse, for an abrupt-LTD device) action; False: LTP only."""
    noise_window: float = 100.0
    """Updates over which pulse-rounding noise averages (the long UN window): the cost counts
    rounding variance / noise_window next to the squared systematic error. 1 would be the
    window-1 UN, which rewards parking devices where pulses do nothing; infinity ignores how
    coarse a pulse is."""
    c2c_mode: str = "additive"
    """How c2c scales with the pulse count (as ``device.c2c_mode``)."""
    track: bool = True
    """The controller propagates its estimate through the nominal model between reads (False:
    it keeps the last reading, and the device moves away from it)."""
    updates_per_read: float = 0.0
    """Updates of one synapse between two reads; 0: the sensing interval K (one update per
    sample, the most a synapse can receive)."""
    step_mismatch: float = 0.0
    """Relative sigma of a device's true pulse step around the controller's model (device-to-
    device variation the controller does not know): its tracked estimate drifts by this
    fraction of every change it makes."""


@dataclass
class Policy:
    """Per sensed pair state (c+, c-) on an L-level grid: the action for an increase and for a
    decrease (0 = LTP-based, 1 = LTD-based) and whether to refresh."""

    levels: int
    up: np.ndarray
    down: np.ndarray
    refresh: np.ndarray
    home: str
    """Bound a refresh resets to: ``g_min`` (abrupt LTD) or ``g_max`` (abrupt LTP)."""
    lp_cost: float
    """The program's optimal average cost per update: squared systematic error plus rounding and
    c2c variance / ``noise_window``, divided by the mean squared request. A proxy on its own
    scale, not the window-1 UN and not the measured long-window UN of a training run (whose
    requests are far from this traffic); :func:`hnntrain.schemes.policy_check.simulate_policy`
    measures the same quantity by Monte Carlo."""
    occupancy: np.ndarray = field(repr=False)
    """Long-run probability of each state under the optimal policy (L x L)."""
    reads_per_update: float = 1.0
    """1/K: a refresh state is acted on only at a read."""

    def summary(self) -> dict:
        """The rules in ADC levels, for printing and docs."""
        occ = self.occupancy
        reverse_up = (self.up == LTD_ACTION)
        lvl = np.arange(self.levels)
        # increase by LTD on G-: at which sensed G- levels (any G+)?
        rev_minus_levels = sorted(set(lvl[reverse_up.any(axis=0)].tolist()))
        refresh_states = int(self.refresh.sum())
        # levels that hold 95 % of each device's long-run occupancy (both devices alike)
        marginal = (occ.sum(axis=0) + occ.sum(axis=1)) / 2
        order = np.argsort(-marginal)
        keep = order[: int(np.searchsorted(np.cumsum(marginal[order]), 0.95)) + 1]
        return {
            "levels": self.levels,
            "home": self.home,
            "lp_cost": self.lp_cost,
            "increase_by_ltd_on_g_minus_at_levels": rev_minus_levels,
            "share_ltd_increases": float((occ * reverse_up).sum()),
            "share_ltd_decreases": float((occ * (self.down == LTD_ACTION)).sum()),
            "refresh_states": refresh_states,
            "refresh_rate_per_update": float((occ * self.refresh).sum() * self.reads_per_update),
            "operating_window_levels_95pct": [int(keep.min()), int(keep.max())],
        }


def _exp_quantiles(mean: float, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Laguerre points and weights of an exponential distribution of mean ``mean``:
    exact for polynomials of degree < 2 count (so the mean squared request is exact)."""
    nodes, weights = np.polynomial.laguerre.laggauss(count)
    return mean * nodes, weights


class _Physics:
    """Nominal device on normalized conductance x = (G - g_min) / range, float64."""

    def __init__(self, model: DeviceModel, max_pulses: int):
        self.model = model
        self.g_min = float(model.g_min)
        self.range = float(model.g_max - model.g_min)
        self.cap = max_pulses

    def to_g(self, x):
        return torch.as_tensor(self.g_min + np.clip(x, 0, 1) * self.range, dtype=torch.float64)

    def move(self, x: np.ndarray, pulses: np.ndarray) -> np.ndarray:
        g = self.model.apply(self.to_g(x), torch.as_tensor(pulses, dtype=torch.float64))
        return ((g.numpy() - self.g_min) / self.range).clip(0, 1)

    def count(self, x_est: np.ndarray, delta: np.ndarray, ltp: bool) -> np.ndarray:
        """Continuous pulses to move a device believed at x_est by |delta| in the direction."""
        target = x_est + delta if ltp else x_est - delta
        eps = 1e-9
        g_now = self.to_g(np.clip(x_est, eps, 1 - eps))
        g_target = self.to_g(np.clip(target, eps, 1 - eps))
        n = (self.model.pulse_position(g_target, ltp) - self.model.pulse_position(g_now, ltp)).numpy()
        return np.clip(n, 0, self.cap)


@dataclass
class Problem:
    """The decision problem: per plan, expected cost (S,) and transition matrix (S x S)."""

    levels: int
    home: str
    plans: list[tuple[int, int, bool]]
    costs: list[np.ndarray]
    transitions: list[sp.csr_matrix]
    mean_sq: float
    """Mean squared request: the normalization that turns cost into update noise."""


@lru_cache(maxsize=32)
def step_mismatch(device: DeviceConfig, samples: int = 4096) -> float:
    """Relative sigma of one pulse's step at mid-range across devices (device-to-device
    variation) around the nominal model's: how far a controller that tracks with the nominal
    model drifts per unit of change. 0 without device-to-device variation."""
    if device.d2d_g == 0 and device.d2d_nl == 0:
        return 0.0
    drawn = build_device(device, (samples,), torch.Generator().manual_seed(0), dtype=torch.float64)
    nominal = nominal_device(device, dtype=torch.float64)
    mid = torch.tensor((device.g_min + device.g_max) / 2, dtype=torch.float64)
    one = torch.ones((), dtype=torch.float64)
    rel = []
    for sign in (1.0, -1.0):
        true_step = (drawn.response(mid.expand(samples), sign * one) - mid).abs()
        nominal_step = (nominal.response(mid, sign * one) - mid).abs()
        rel.append(true_step / nominal_step - 1)
    return float(torch.cat(rel).square().mean().sqrt())


def _c2c_variance(n: np.ndarray, realized: np.ndarray, c2c: float, mode: str) -> np.ndarray:
    """Variance (range units squared) that cycle-to-cycle noise adds to a change of ``n``
    pulses whose noise-free size is ``realized`` (as DeviceModel.apply)."""
    if mode == "additive":
        return n * c2c**2
    return realized**2 * c2c**2 / np.maximum(n, 1)


def estimate_ages(updates_per_read: float, points: int = 3) -> list[tuple[float, float]]:
    """(updates since the last read, weight) quadrature of the age of the controller's estimate
    at an update, uniform over 0 .. K-1: exact for K <= ``points``, else midpoints."""
    k = max(float(updates_per_read), 1.0)
    if k <= points:
        count = round(k)
        return [(float(t), 1.0 / count) for t in range(count)]
    return [((j + 0.5) / points * k - 0.5, 1.0 / points) for j in range(points)]


def estimate_sigmas(sensing: SensingConfig, spec: OptimizeSpec, step: float, mean_sq: float) -> list[tuple[float, float]]:
    """(sigma of the controller's estimate of one device, range units; weight) over the ages of
    the estimate between two reads.

    At a read the error is the ADC's quantization (LSB^2 / 12) and the read noise. Every later
    update adds what the controller cannot see: the cycle-to-cycle noise of the pulses it issued
    and its model's step error on the change it made (tracking), or the whole change (no
    tracking). Each device is moved by about half of the updates, on average by
    ``request_pulses`` nominal steps:

        sigma^2(t) = LSB^2/12 + read^2 + t * (c2c^2 n/2 + mismatch^2 E[m^2]/2)       (tracking)
        sigma^2(t) = LSB^2/12 + read^2 + t * (c2c^2 n/2 + E[m^2]/2)                  (no tracking)
    """
    adc_levels = (1 << sensing.adc_bits) if sensing.adc_bits > 0 else 0
    at_read = (1.0 / (adc_levels - 1)) ** 2 / 12 if adc_levels else 0.0
    at_read += sensing.read_noise**2
    pulses = spec.request_pulses
    c2c = float(_c2c_variance(np.array(pulses), np.array(pulses * step), spec.c2c, spec.c2c_mode))
    drift = 0.5 * c2c + 0.5 * (spec.step_mismatch**2 if spec.track else 1.0) * mean_sq
    every = spec.updates_per_read or sensing.every
    return [(math.sqrt(at_read + age * drift), w) for age, w in estimate_ages(every)]


def build_problem(device: DeviceConfig, sensing: SensingConfig, spec: OptimizeSpec = OptimizeSpec()) -> Problem:
    """Discretize the pair states and tabulate every plan's cost and transitions."""
    model = nominal_device(device, dtype=torch.float64)
    phys = _Physics(model, spec.max_pulses)
    adc_levels = (1 << sensing.adc_bits) if sensing.adc_bits > 0 else 256
    levels = min(adc_levels, MAX_LEVELS)
    grid = np.linspace(0, 1, levels)
    step = 1.0 / model.levels  # nominal step, range units
    magnitudes, weights = _exp_quantiles(spec.request_pulses * step, spec.magnitudes)
    mean_sq = float(np.sum(weights * magnitudes**2))
    sigmas = estimate_sigmas(sensing, spec, step, mean_sq)
    home = "g_min" if gradual_is_ltp(model) else "g_max"

    n_states = levels * levels
    ip, im = np.meshgrid(np.arange(levels), np.arange(levels), indexing="ij")
    ip, im = ip.ravel(), im.ravel()

    def code_split(x: np.ndarray):
        """The two codes around x and the weight of the upper one (linear interpolation)."""
        t = code_position(torch.from_numpy(np.clip(x, 0, 1)), 0.0, 1.0, levels - 1).numpy()
        lo = np.floor(t).astype(int).clip(0, levels - 1)
        hi = np.minimum(lo + 1, levels - 1)
        return lo, hi, t - lo

    def sub_action(sign: int, action: int):
        """Expected cost (S,) and transition matrix (S x S) of one sign's action."""
        # which device moves and in which direction: increases use LTP on G+ or LTD on G-
        moves_plus = (sign > 0) == (action == LTP_ACTION)
        ltp = action == LTP_ACTION
        x_dev = grid[ip] if moves_plus else grid[im]
        cost = np.zeros(n_states)
        rows, cols, vals = [], [], []
        for m, pm in zip(magnitudes, weights):
            for sigma, p_age in sigmas:
                for est_err in (-sigma, sigma):  # two-point quadrature of the estimate error
                    p_err = 0.5 * p_age
                    n_cont = phys.count(np.clip(x_dev + est_err, 0, 1), np.full(n_states, m), ltp)
                    lo_n = np.floor(n_cont)
                    frac = n_cont - lo_n
                    mean_effect = np.zeros(n_states)
                    mean_sq_effect = np.zeros(n_states)
                    for n, pn in ((lo_n, 1 - frac), (lo_n + 1, frac)):
                        n = np.minimum(n, spec.max_pulses)
                        x_new = phys.move(x_dev, n if ltp else -n)
                        realized = x_new - x_dev  # change of this device
                        # its effect on G+ - G-: + for G+, - for G-
                        mean_effect += pn * (realized if moves_plus else -realized)
                        mean_sq_effect += pn * (realized**2 + _c2c_variance(n, realized, spec.c2c, spec.c2c_mode))
                        p = p_err * pm * pn
                        lo, hi, t = code_split(x_new)
                        for code, pc in ((lo, 1 - t), (hi, t)):
                            nxt = code * levels + im if moves_plus else ip * levels + code
                            rows.append(np.arange(n_states))
                            cols.append(nxt)
                            vals.append(p * pc)
                    # systematic error in full; rounding noise of an unbiased count averages out
                    # over the window, a wrong step estimate or a saturated device does not
                    variance = mean_sq_effect - mean_effect**2
                    cost += p_err * pm * ((mean_effect - sign * m) ** 2 + variance / spec.noise_window)
        trans = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                              shape=(n_states, n_states))
        return cost, trans

    parts = {(s, a): sub_action(s, a) for s in (1, -1) for a in (LTP_ACTION, LTD_ACTION)}
    # refresh: both devices to home, the sensed difference reprogrammed on one device
    diff = grid[ip] - grid[im]
    if home == "g_min":
        new_p, new_m = np.clip(diff, 0, 1), np.clip(-diff, 0, 1)
    else:
        new_p, new_m = 1 - np.clip(-diff, 0, 1), 1 - np.clip(diff, 0, 1)
    def code(x: np.ndarray) -> np.ndarray:
        return adc_code(torch.from_numpy(x), 0.0, 1.0, levels - 1).numpy().astype(int)

    refresh_to = code(new_p) * levels + code(new_m)
    refresh_map = sp.csr_matrix((np.ones(n_states), (np.arange(n_states), refresh_to)), shape=(n_states, n_states))
    # error of a refresh: both sensed values off by the read error, plus reprogramming
    refresh_cost = 2 * sigmas[0][0] ** 2 + step**2 / 12
    # a refresh happens only at a read: once per read interval of this synapse
    every = spec.updates_per_read or sensing.every
    at_read = 1.0 / max(float(every), 1.0)

    plans = [(u, d, r) for r in ((False, True) if spec.refresh else (False,))
             for u in ((LTP_ACTION, LTD_ACTION) if spec.reverse else (LTP_ACTION,))
             for d in ((LTP_ACTION, LTD_ACTION) if spec.reverse else (LTP_ACTION,))]
    costs, transitions = [], []
    for up, down, refresh in plans:
        # increases and decreases are equally likely
        c = 0.5 * (parts[(1, up)][0] + parts[(-1, down)][0])
        t = 0.5 * (parts[(1, up)][1] + parts[(-1, down)][1])
        if refresh:
            c = at_read * (refresh_map @ c + refresh_cost) + (1 - at_read) * c
            t = at_read * (refresh_map @ t) + (1 - at_read) * t
        costs.append(c)
        transitions.append(sp.csr_matrix(t))
    return Problem(levels=levels, home=home, plans=plans, costs=costs, transitions=transitions, mean_sq=mean_sq)


def solve(device: DeviceConfig, sensing: SensingConfig, spec: OptimizeSpec = OptimizeSpec()) -> Policy:
    """Optimal CRUS policy for a device and sensing specification (see module docstring)."""
    problem = build_problem(device, sensing, spec)
    levels, plans, costs, transitions, mean_sq = (problem.levels, problem.plans, problem.costs,
                                                  problem.transitions, problem.mean_sq)
    home = problem.home
    n_states = levels * levels
    # LP in occupation measures x(s, a), variables ordered plan-major
    n_plans = len(plans)
    c_vec = np.concatenate(costs) / mean_sq
    eye = sp.identity(n_states, format="csr")
    balance = sp.hstack([(eye - t).T for t in transitions], format="csr")  # (S, S*plans)
    norm = sp.csr_matrix(np.ones((1, n_states * n_plans)))
    a_eq = sp.vstack([balance, norm], format="csr")
    b_eq = np.zeros(n_states + 1)
    b_eq[-1] = 1.0
    # HiGHS's own choice, then its dual simplex, then its interior point: on some nearly
    # degenerate programs one ends with an unknown status where another solves it
    for method in ("highs", "highs-ds", "highs-ipm"):
        res = linprog(c_vec, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method=method)
        if res.status == 0:
            break
    if res.status != 0:
        raise RuntimeError(f"CRUS optimization failed: {res.message}")
    occupancy_by_plan = res.x.reshape(n_plans, n_states)
    # relative values from the duals of the balance rows; one-step improvement everywhere
    h = np.asarray(res.eqlin.marginals[:n_states])
    q = np.stack([costs[k] / mean_sq + transitions[k] @ h for k in range(n_plans)])
    # prefer the LP's own choice where it has one (ties broken by occupancy)
    best = np.argmin(q - 1e-12 * occupancy_by_plan, axis=0)
    chosen = np.array(plans)[best]
    occupancy = occupancy_by_plan.sum(axis=0)
    return Policy(
        levels=levels,
        up=chosen[:, 0].reshape(levels, levels).astype(np.int8),
        down=chosen[:, 1].reshape(levels, levels).astype(np.int8),
        refresh=chosen[:, 2].reshape(levels, levels).astype(bool),
        home=home,
        lp_cost=float(res.fun),
        occupancy=occupancy.reshape(levels, levels),
        reads_per_update=1.0 / max(float(spec.updates_per_read or sensing.every), 1.0),
    )
