"""``crus``: conditional reverse update (Lee et al., arXiv 2111.07113; our reconstruction).

A weight increase can be made *directly* (the gradual direction on the device whose change
raises w) or in *reverse* (the other direction, on the partner device); a decrease likewise.
CRUS chooses per synapse and per update, from **sensed** conductances only:

    codes    = ADC codes of the controller's estimate of (G+, G-)   (refreshed every K samples,
               tracked through the nominal model between reads)
    action   = policy_up[codes] if dW > 0 else policy_down[codes]   (0: LTP-based, 1: LTD-based)
    device   = the one whose LTP (or LTD) moves w the requested way
    n        = stochastic_round(A * ln((G_est - G_inf) / (G_target - G_inf)))   (model inverted)
    refresh  = at each read, pairs in policy_refresh states are reset to the home bound and the
               sensed difference is reprogrammed on one device

The policy tables come from :mod:`hnntrain.schemes.optimize` (the linear optimization over sensed pair
states that minimizes the expected update noise for this device and sensing spec) or, with
``optimize = false``, from hand thresholds (``reverse_levels``, ``window_levels``). See
``docs/crus.md`` for the reasoning, the assumptions and the ablations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from hnntrain.physics.sensing import adc_code
from hnntrain.schemes.base import UpdateScheme, register
from hnntrain.schemes.common import (
    DigitalAccumulator,
    assemble,
    estimate_bits,
    model_pulses,
    refresh_pairs,
)
from hnntrain.schemes.optimize import (
    LTD_ACTION,
    LTP_ACTION,
    OptimizeSpec,
    Policy,
    solve,
    step_mismatch,
)
from hnntrain.spec.config import ConfigError, DeviceConfig


@dataclass(frozen=True)
class CrusOptions:
    reverse: bool = True
    """Allow reverse (abrupt-direction) updates; false: gradual direction only."""
    refresh: bool = True
    """Allow pair refresh at sensing time."""
    optimize: bool = True
    """Policy from the linear optimization (true) or from the hand thresholds below (false)."""
    reverse_levels: int = 2
    """Hand rule: reverse when the partner is sensed 1..reverse_levels ADC levels from home."""
    window_levels: int = -1
    """Hand rule: refresh a pair when both devices are sensed more than this many levels from
    home; -1 means half the ADC range."""
    track: bool = True
    """Propagate the estimate through the nominal model between reads."""
    request_pulses: float = 1.0
    """Optimization: mean request size in nominal steps."""
    noise_window: float = 100.0
    """Optimization: updates over which rounding noise averages (see hnntrain.schemes.optimize)."""
    accumulate: bool = False
    """Not in the paper: keep a digital accumulator per synapse (as ``mixed_precision``) and
    pulse only whole model-based pulses, subtracting what the model predicts they deliver.
    Costs 16 more bits per synapse; opposite-sign requests cancel before any pulse is spent."""
    measure_traffic: bool = True
    """Optimization: at every read from the second on, re-solve with the traffic measured since
    the previous read, the pulses a pair of this layer and replica received (its write counters),
    as the number of requests between reads. False: K requests between reads (one per sample, the
    most a synapse can receive), which overstates how far the estimate drifts for the many
    synapses that are seldom pulsed and so undervalues refresh."""

    def check(self) -> None:
        if self.reverse_levels < 0:
            raise ConfigError("scheme.reverse_levels", "must be >= 0 ADC levels")
        if self.request_pulses <= 0:
            raise ConfigError("scheme.request_pulses", "must be > 0 nominal steps")
        if self.noise_window < 1:
            raise ConfigError("scheme.noise_window", "must be >= 1 update")


def traffic_bucket(pulses_per_pair: float, every: int) -> float:
    """Requests between reads from the measured pulses per pair since the last read: K when at
    least K, else the nearest half power of two, at least 1 (few distinct policies, so the
    solver's cache serves most re-solves)."""
    every = max(int(every), 1)
    if pulses_per_pair >= every:
        return float(every)
    clipped = max(float(pulses_per_pair), 1.0)
    return float(min(2.0 ** (round(2.0 * np.log2(clipped)) / 2.0), every))


def policy_spec(options: CrusOptions, device: DeviceConfig, max_pulses: int) -> OptimizeSpec:
    """What the optimization assumes, from the scheme's options and the hardware: the device's
    c2c, the controller's tracking, and its model's step error from the device-to-device spread."""
    return OptimizeSpec(request_pulses=options.request_pulses, max_pulses=max_pulses or device.levels, c2c=device.c2c,
                        c2c_mode=device.c2c_mode, refresh=options.refresh, reverse=options.reverse,
                        noise_window=options.noise_window, track=options.track,
                        step_mismatch=step_mismatch(device))


_UNSOLVED: set = set()
"""Programs the solver gave up on in this process: not tried again (a failure can take minutes)."""


@lru_cache(maxsize=32)
def _optimized(device, sensing, spec: OptimizeSpec) -> Policy:
    if (device, sensing, spec) in _UNSOLVED:
        raise RuntimeError("CRUS optimization failed earlier in this process for this program")
    try:
        return solve(device, sensing, spec)
    except RuntimeError:
        _UNSOLVED.add((device, sensing, spec))
        raise


def hand_policy(levels: int, home: str, reverse_levels: int, window_levels: int, reverse: bool, refresh: bool) -> Policy:
    """Thresholds in ADC levels counted from the home bound (g_min for abrupt LTD)."""
    lvl = np.arange(levels)
    dist = lvl if home == "g_min" else levels - 1 - lvl  # levels from home
    d_plus, d_minus = np.meshgrid(dist, dist, indexing="ij")
    # the abrupt direction brings a device home: LTD for home g_min, LTP for home g_max
    abrupt = LTD_ACTION if home == "g_min" else LTP_ACTION
    gradual = 1 - abrupt
    in_reverse = lambda d: (d >= 1) & (d <= reverse_levels)  # noqa: E731
    # increase: abrupt on G- (home g_min: LTD on G-) when G- is in the reverse window
    up = np.where(reverse & in_reverse(d_minus if home == "g_min" else d_plus), abrupt, gradual)
    down = np.where(reverse & in_reverse(d_plus if home == "g_min" else d_minus), abrupt, gradual)
    window = window_levels if window_levels >= 0 else levels // 2
    ref = refresh & (d_plus > window) & (d_minus > window)
    return Policy(levels=levels, up=up.astype(np.int8), down=down.astype(np.int8), refresh=ref, home=home,
                  lp_cost=float("nan"), occupancy=np.zeros((levels, levels)))


@register
class CRUS(UpdateScheme):
    name = "crus"
    Options = CrusOptions

    def __init__(self, options: CrusOptions, array, ctx):
        super().__init__(options, array, ctx)
        self._sensing = ctx.believed_sensing or ctx.sensing  # the controller's beliefs
        spec = policy_spec(options, ctx.device, array.max_pulses)
        self._spec = replace(spec, updates_per_read=float(spec.updates_per_read or self._sensing.every))
        optimal = _optimized(ctx.device, self._sensing, self._spec)
        if options.optimize:
            policy = optimal
        else:
            policy = hand_policy(optimal.levels, optimal.home, options.reverse_levels, options.window_levels,
                                 options.reverse, options.refresh)
        self.levels = policy.levels
        self.home_is_min = policy.home == "g_min"
        replicas = array.g.shape[2]
        self.policies: list[Policy] = [policy] * replicas
        """The policy of each replica (they differ once measured traffic differs)."""
        self.requests_per_read = [self._spec.updates_per_read] * replicas
        """Requests between reads each replica's policy assumes (measured from the second read)."""
        self._pulses_at_read: Tensor | None = None  # each replica's pulse total at the last read
        self._set_tables()
        self.sensed = ctx.sensed_state(track=options.track)
        nominal = ctx.nominal
        self.g_min, self.g_max = float(nominal.g_min), float(nominal.g_max)
        self.accumulator = DigitalAccumulator(array.weight, array.max_pulses) if options.accumulate else None
        """Owed weight change (weight units), with ``accumulate``."""

    @property
    def policy(self) -> Policy:
        """The first replica's policy (all replicas start with the same one)."""
        return self.policies[0]

    def _set_tables(self) -> None:
        """Per-replica policy tables (E, levels^2), booleans: True = LTD-based; refresh flags all
        False when ``refresh`` is off."""
        device = self.array.g.device
        stack = lambda name: torch.as_tensor(np.stack([getattr(p, name).ravel() for p in self.policies]),  # noqa: E731
                                             device=device).bool()
        self.table_up, self.table_down, self.table_refresh = stack("up"), stack("down"), stack("refresh")
        if not self.options.refresh:
            self.table_refresh.zero_()
        self._replica = torch.arange(len(self.policies), device=device).view(-1, 1)  # (E, 1) row index

    def _lookup(self, table: Tensor, idx: Tensor) -> Tensor:
        """table[e, idx[..., e, :]] for policy indices ``idx`` (..., E, out)."""
        return table[self._replica, idx]

    def after_read(self) -> None:
        """At a read: measure each replica's traffic since the previous read (pulses per pair, from
        the write counters) and re-solve its policy for that many requests between reads. The
        counters include refresh rewrites (a few percent of the pulses in the runs we measured)."""
        totals = self.array.counter.abs_sum.sum(0).cpu()  # (E,) pulses written so far
        previous, self._pulses_at_read = self._pulses_at_read, totals.clone()
        if previous is None or not (self.options.optimize and self.options.measure_traffic):
            return
        pairs = self.array.g.shape[0] * self.array.g.shape[3]
        every = self._sensing.every
        buckets = [traffic_bucket(float(d) / pairs, every) for d in (totals - previous)]
        if buckets != self.requests_per_read:
            self._retune(buckets)

    def _retune(self, buckets: list[float]) -> None:
        policies = []
        for e, bucket in enumerate(buckets):
            try:
                policies.append(_optimized(self.ctx.device, self._sensing, replace(self._spec, updates_per_read=bucket)))
            except RuntimeError:  # the solver gave up on this traffic: keep what the replica had
                policies.append(self.policies[e])
                buckets[e] = self.requests_per_read[e]
        self.requests_per_read = buckets
        self.policies = policies
        self._set_tables()

    def hardware(self) -> dict:
        return {
            "digital_bits_per_synapse": estimate_bits(self.ctx.sensing, self.options.track)
            + (16 if self.options.accumulate else 0),
            "extra_arrays": 0,
            "sensing": True,
            "refresh": self.options.refresh,
            "note": "stores a sensed (tracked) estimate of both devices; policy table in the controller",
        }

    # -- state --------------------------------------------------------------------------------
    def _codes(self, g: Tensor) -> Tensor:
        """Flat policy index of each pair from conductances (..., 2, E, out) -> (..., E, out)."""
        codes = adc_code(g, self.g_min, self.g_max, self.levels - 1).long()
        return codes[:, 0] * self.levels + codes[:, 1]

    def before_sample(self, samples: int, generator) -> None:
        if self.sensed.refresh_if_due(self.array, samples, generator):
            self.after_read()
            if self.options.refresh:
                self._refresh(generator)

    def _refresh(self, generator) -> None:
        """Reset flagged pairs to home and reprogram the sensed difference on one device."""
        est = self.sensed.estimate
        mask = self._lookup(self.table_refresh, self._codes(est))  # (in, E, out)
        if bool(mask.any()):
            self.sensed.estimate = refresh_pairs(self.array, est, mask, self.home_is_min, self.ctx.nominal, generator,
                                                 self.ctx.reset_noise)

    # -- one update -----------------------------------------------------------------------------
    def update(self, request: Tensor, rows: Tensor | None, generator) -> None:
        if self.accumulator is not None:
            chi = self.accumulator.add(request, rows)
            request = chi  # decide on everything owed so far
        est = self.sensed.view(rows)  # (k, 2, E, out)
        idx = self._codes(est)
        increase = request > 0
        use_ltd = torch.where(increase, self._lookup(self.table_up, idx), self._lookup(self.table_down, idx))
        ltp = ~use_ltd
        # increases: LTP on G+ or LTD on G-; decreases: LTP on G- or LTD on G+
        moves_plus = increase == ltp
        g_est = torch.where(moves_plus, est[:, 0], est[:, 1])
        change = request.abs() * (1.0 / self.array.scale)  # microsiemens on one device
        if self.accumulator is None:
            n = model_pulses(self.ctx.nominal, g_est, change, ltp, self.g_min, self.g_max, generator, rows)
        else:  # whole pulses only; the remainder stays owed
            target = torch.where(ltp, g_est + change, g_est - change).clamp_(self.g_min, self.g_max)
            n = self.accumulator.due(self.ctx.nominal.pulses_to(g_est, target, ltp))
            signed = torch.where(ltp, n, -n)
            delivered = (self.ctx.nominal.apply(g_est, signed) - g_est) * self.array.scale
            self.accumulator.settle(chi, torch.where(moves_plus, delivered, -delivered), rows)
        pulses = assemble(moves_plus, torch.where(ltp, n, -n))
        pulses = pulses.clamp_(-self.array.max_pulses, self.array.max_pulses)  # tracked as issued
        self.array.pulse(pulses, rows, generator)
        self.sensed.after_pulses(pulses, rows)

    @property
    def chi(self) -> Tensor | None:
        """The owed weight change (in, E, out), or None without ``accumulate``."""
        return None if self.accumulator is None else self.accumulator.value

    def state_dict(self) -> dict:
        return {"sensed": self.sensed.state_dict(), "chi": self.chi, "pulses_at_read": self._pulses_at_read,
                "requests_per_read": list(self.requests_per_read)}

    def load_state_dict(self, state: dict) -> None:
        self.sensed.load_state_dict(state["sensed"])
        self._pulses_at_read = state.get("pulses_at_read")
        buckets = state.get("requests_per_read")
        if buckets is not None and buckets != self.requests_per_read:
            self._retune([float(b) for b in buckets])
        if state.get("chi") is not None and self.accumulator is not None:
            self.accumulator.value = state["chi"].to(self.array.weight.device)
