"""``unidirectional``: gradual direction only, with optional periodic refresh.

Burr et al., IEEE TED 62(11) 2015 (2-PCM synapse, partial-SET only, "occasional RESET");
Lim et al., Neural Comput. Appl. 31:8101 (2019) (unidirectional weight updates). A weight
increase is gradual pulses on the device whose growth raises w, a decrease is gradual pulses
on its partner; counts come open loop from the nominal step (stochastic rounding of
|dW| / dw_step). Both devices only ever move away from home (g_min when LTD is the abrupt
direction), so without refresh every pair drifts into saturation, where steps vanish.

Refresh (``refresh = true``): every ``refresh_every`` samples (0: the sensing interval K) the
controller reads all devices with the ADC; pairs whose two devices are both farther than
``refresh_threshold`` of the range from home are reset to home and their sensed difference is
reprogrammed onto one device (model-based count from home).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from hnntrain.schemes.base import UpdateScheme, register, stochastic_round
from hnntrain.schemes.common import assemble, gradual_is_ltp, refresh_pairs
from hnntrain.spec.config import ConfigError


@dataclass(frozen=True)
class UnidirectionalOptions:
    refresh: bool = True
    """Periodically reset and reprogram pairs whose devices both drifted away from home."""
    refresh_every: int = 0
    """Samples between refresh checks; 0 uses the sensing interval (sensing.every)."""
    refresh_threshold: float = 0.5
    """Refresh a pair when both devices are farther than this fraction of the range from home."""

    def check(self) -> None:
        if self.refresh_every < 0:
            raise ConfigError("scheme.refresh_every", "must be >= 0 samples (0: sensing.every)")
        if not 0 <= self.refresh_threshold <= 1:
            raise ConfigError("scheme.refresh_threshold", "must be a fraction of the range in 0..1")


@register
class Unidirectional(UpdateScheme):
    name = "unidirectional"
    Options = UnidirectionalOptions

    def __init__(self, options, array, ctx):
        super().__init__(options, array, ctx)
        self.gradual_ltp = gradual_is_ltp(ctx.nominal)
        self.g_min, self.g_max = float(ctx.nominal.g_min), float(ctx.nominal.g_max)
        self.every = options.refresh_every or ctx.sensing.every
        self.samples_since_refresh = 0

    def hardware(self) -> dict:
        return {"digital_bits_per_synapse": 0, "extra_arrays": 0, "sensing": self.options.refresh,
                "refresh": self.options.refresh}

    def apply_gradual(self, signed_n: Tensor, rows: Tensor | None, generator) -> None:
        """``signed_n`` > 0 raises w, < 0 lowers it; both by gradual pulses on one device."""
        increase = signed_n > 0
        moves_plus = increase == self.gradual_ltp  # gradual LTP raises w on G+, gradual LTD on G-
        n = signed_n.abs()
        self.array.pulse(assemble(moves_plus, n if self.gradual_ltp else -n), rows, generator)

    def update(self, request: Tensor, rows: Tensor | None, generator) -> None:
        self.apply_gradual(stochastic_round(request * (1.0 / self.array.dw_step), generator, rows), rows, generator)

    def refresh_due(self, samples: int) -> bool:
        """Count ``samples``; true when a refresh check is due (then the count restarts)."""
        if not self.options.refresh:
            return False
        self.samples_since_refresh += samples
        if self.samples_since_refresh < self.every:
            return False
        self.samples_since_refresh = 0
        return True

    def before_sample(self, samples: int, generator) -> None:
        if not self.refresh_due(samples):
            return
        array = self.array
        estimate = self.ctx.sensor.read_array(array, generator)
        away = (estimate - self.g_min) if self.gradual_ltp else (self.g_max - estimate)
        mask = (away > self.options.refresh_threshold * (self.g_max - self.g_min)).all(dim=1)
        if bool(mask.any()):
            refresh_pairs(array, estimate, mask, self.gradual_ltp, self.ctx.nominal, generator, self.ctx.reset_noise)

    def state_dict(self) -> dict:
        return {"samples_since_refresh": self.samples_since_refresh}

    def load_state_dict(self, state: dict) -> None:
        self.samples_since_refresh = state["samples_since_refresh"]
