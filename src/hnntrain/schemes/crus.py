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

from dataclasses import dataclass
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

    def check(self) -> None:
        if self.reverse_levels < 0:
            raise ConfigError("scheme.reverse_levels", "must be >= 0 ADC levels")
        if self.request_pulses <= 0:
            raise ConfigError("scheme.request_pulses", "must be > 0 nominal steps")
        if self.noise_window < 1:
            raise ConfigError("scheme.noise_window", "must be >= 1 update")


def policy_spec(options: CrusOptions, device: DeviceConfig, max_pulses: int) -> OptimizeSpec:
    """What the optimization assumes, from the scheme's options and the hardware: the device's
    c2c, the controller's tracking, and its model's step error from the device-to-device spread."""
    return OptimizeSpec(request_pulses=options.request_pulses, max_pulses=max_pulses or device.levels, c2c=device.c2c,
                        c2c_mode=device.c2c_mode, refresh=options.refresh, reverse=options.reverse,
                        noise_window=options.noise_window, track=options.track,
                        step_mismatch=step_mismatch(device))


@lru_cache(maxsize=32)
def _optimized(device, sensing, spec: OptimizeSpec) -> Policy:
    return solve(device, sensing, spec)


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
        spec = policy_spec(options, ctx.device, array.max_pulses)
        optimal = _optimized(ctx.device, ctx.believed_sensing or ctx.sensing, spec)  # the controller's beliefs
        if options.optimize:
            self.policy = optimal
        else:
            self.policy = hand_policy(optimal.levels, optimal.home, options.reverse_levels, options.window_levels,
                                      options.reverse, options.refresh)
        device = array.g.device
        self.levels = self.policy.levels
        self.table_up = torch.as_tensor(self.policy.up.ravel(), device=device).bool()  # True: LTD-based
        self.table_down = torch.as_tensor(self.policy.down.ravel(), device=device).bool()
        self.table_refresh = torch.as_tensor(self.policy.refresh.ravel(), device=device)
        self.sensed = ctx.sensed_state(track=options.track)
        nominal = ctx.nominal
        self.g_min, self.g_max = float(nominal.g_min), float(nominal.g_max)
        self.home_is_min = self.policy.home == "g_min"
        self.accumulator = DigitalAccumulator(array.weight, array.max_pulses) if options.accumulate else None
        """Owed weight change (weight units), with ``accumulate``."""

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
        if self.sensed.refresh_if_due(self.array, samples, generator) and self.options.refresh:
            self._refresh(generator)

    def _refresh(self, generator) -> None:
        """Reset flagged pairs to home and reprogram the sensed difference on one device."""
        est = self.sensed.estimate
        mask = self.table_refresh[self._codes(est)]  # (in, E, out)
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
        use_ltd = torch.where(increase, self.table_up[idx], self.table_down[idx])
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
        return {"sensed": self.sensed.state_dict(), "chi": self.chi}

    def load_state_dict(self, state: dict) -> None:
        self.sensed.load_state_dict(state["sensed"])
        if state.get("chi") is not None and self.accumulator is not None:
            self.accumulator.value = state["chi"].to(self.array.weight.device)
