"""``mixed_precision``: digital accumulation, pulses when a whole step is due (Nandakumar et al.,
Front. Neurosci. 14:406, 2020).

    chi <- chi + dW                      (digital, per synapse)
    n   <- trunc(chi / epsilon)          (epsilon = one nominal device step, dw_step)
    n   <- clamp(n, -cap, cap)           (the array's pulse cap; the rest stays owed)
    apply |n| gradual pulses (as ``unidirectional``, with its refresh);  chi <- chi - n * epsilon

The accumulator keeps every sub-step request instead of rounding it away; pulses follow the
gradual direction only and periodic refresh fights the drift, as in the PCM experiments of the
original. Hardware: one digital accumulator per synapse (16 bits listed).
"""

from __future__ import annotations

from torch import Tensor

from hnntrain.schemes.base import register
from hnntrain.schemes.common import DigitalAccumulator
from hnntrain.schemes.unidirectional import Unidirectional, UnidirectionalOptions


@register
class MixedPrecision(Unidirectional):
    name = "mixed_precision"
    Options = UnidirectionalOptions

    def __init__(self, options, array, ctx):
        super().__init__(options, array, ctx)
        self.accumulator = DigitalAccumulator(array.weight, array.max_pulses)
        """chi: owed weight change, weight units, (in, E, out)."""

    def hardware(self) -> dict:
        return {**super().hardware(), "digital_bits_per_synapse": 16}

    def update(self, request: Tensor, rows: Tensor | None, generator) -> None:
        eps = self.array.dw_step
        chi = self.accumulator.add(request, rows)
        n = self.accumulator.due(chi * (1.0 / eps))
        self.accumulator.settle(chi, n * eps, rows)
        self.apply_gradual(n, rows, generator)

    @property
    def chi(self) -> Tensor:
        """The accumulator's owed weight change, (in, E, out)."""
        return self.accumulator.value

    def state_dict(self) -> dict:
        return {**super().state_dict(), "chi": self.accumulator.value}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.accumulator.value = state["chi"].to(self.accumulator.value.device)
