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
nominal steps) and over the controller's estimate error (ADC quantization and read noise,
two-point quadrature at +/- sigma). Pulse counts are model-based: the nominal curve inverted at
the estimated state. A refresh costs the variance of the weight error it writes. Divided by the
mean squared request, the objective is the expected long-window update noise per update.

The LP's dual values on the balance constraints are the relative values h(s) of the states;
the policy used everywhere (also in states the optimal chain never visits, which a real array
reaches through noise) is the one-step improvement a(s) = argmin_a c(s,a) + sum_s' P(s'|s,a) h(s').
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import linprog

from hnntrain.physics.devices import DeviceModel, nominal_device
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
    expected_un: float
    """Predicted window-1 update noise (mean squared deviation / mean squared request)."""
    occupancy: np.ndarray = field(repr=False)
    """Long-run probability of each state under the optimal policy (L x L)."""

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
            "expected_un": self.expected_un,
            "increase_by_ltd_on_g_minus_at_levels": rev_minus_levels,
            "share_ltd_increases": float((occ * reverse_up).sum()),
            "share_ltd_decreases": float((occ * (self.down == LTD_ACTION)).sum()),
            "refresh_states": refresh_states,
            "refresh_rate_per_update": float((occ * self.refresh).sum()),
            "operating_window_levels_95pct": [int(keep.min()), int(keep.max())],
        }


def _exp_quantiles(mean: float, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-probability representative points of an exponential distribution."""
    edges = np.linspace(0, 1, count + 1)
    mids = (edges[:-1] + edges[1:]) / 2
    return -mean * np.log1p(-mids), np.full(count, 1.0 / count)


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


def build_problem(device: DeviceConfig, sensing: SensingConfig, spec: OptimizeSpec = OptimizeSpec()) -> Problem:
    """Discretize the pair states and tabulate every plan's cost and transitions."""
    model = nominal_device(device, dtype=torch.float64)
    phys = _Physics(model, spec.max_pulses)
    adc_levels = (1 << sensing.adc_bits) if sensing.adc_bits > 0 else 256
    levels = min(adc_levels, MAX_LEVELS)
    lsb = 1.0 / (adc_levels - 1)
    sigma = math.sqrt(lsb**2 / 12 + sensing.read_noise**2) if sensing.adc_bits > 0 else sensing.read_noise
    grid = np.linspace(0, 1, levels)
    step = 1.0 / model.levels  # nominal step, range units
    magnitudes, weights = _exp_quantiles(spec.request_pulses * step, spec.magnitudes)
    home = "g_min" if gradual_is_ltp(model) else "g_max"

    n_states = levels * levels
    ip, im = np.meshgrid(np.arange(levels), np.arange(levels), indexing="ij")
    ip, im = ip.ravel(), im.ravel()

    def code_split(x: np.ndarray):
        t = np.clip(x, 0, 1) * (levels - 1)
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
            for est_err in (-sigma, sigma):
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
                    mean_sq_effect += pn * (realized**2 + n * spec.c2c**2)  # c2c: variance n sigma^2
                    p = 0.5 * pm * pn  # two-point estimate error: each half
                    lo, hi, t = code_split(x_new)
                    for code, pc in ((lo, 1 - t), (hi, t)):
                        nxt = code * levels + im if moves_plus else ip * levels + code
                        rows.append(np.arange(n_states))
                        cols.append(nxt)
                        vals.append(p * pc)
                # systematic error in full; rounding noise of an unbiased count averages out over
                # the window, a wrong step estimate or a saturated device does not
                variance = mean_sq_effect - mean_effect**2
                cost += 0.5 * pm * ((mean_effect - sign * m) ** 2 + variance / spec.noise_window)
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
    refresh_to = np.rint(new_p * (levels - 1)).astype(int) * levels + np.rint(new_m * (levels - 1)).astype(int)
    refresh_map = sp.csr_matrix((np.ones(n_states), (np.arange(n_states), refresh_to)), shape=(n_states, n_states))
    # error of a refresh: both sensed values off by up to half an LSB, plus reprogramming
    refresh_cost = 2 * sigma**2 + step**2 / 12

    plans = [(u, d, r) for r in ((False, True) if spec.refresh else (False,))
             for u in ((LTP_ACTION, LTD_ACTION) if spec.reverse else (LTP_ACTION,))
             for d in ((LTP_ACTION, LTD_ACTION) if spec.reverse else (LTP_ACTION,))]
    costs, transitions = [], []
    for up, down, refresh in plans:
        # increases and decreases are equally likely
        c = 0.5 * (parts[(1, up)][0] + parts[(-1, down)][0])
        t = 0.5 * (parts[(1, up)][1] + parts[(-1, down)][1])
        if refresh:
            c = refresh_map @ c + refresh_cost
            t = refresh_map @ t
        costs.append(c)
        transitions.append(t.tocsr())
    mean_sq = float(np.sum(weights * magnitudes**2))
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
    res = linprog(c_vec, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
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
        expected_un=float(res.fun),
        occupancy=occupancy.reshape(levels, levels),
    )
