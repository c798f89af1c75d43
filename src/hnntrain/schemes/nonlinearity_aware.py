"""``nonlinearity_aware``: push-pull with pulse counts from the device model at the sensed state.

The generic nonlinearity-aware update (NeuroSim's non-identical pulses; Chen et al., ICCAD
2015, "smart programming"): each device of the pair is to deliver half of the request, and
its pulse count inverts the nominal model at the controller's sensed estimate,

    n+ = round_s( pulses_to(G+_est, G+_est +/- dW / 2s) ),   n- likewise in the other direction

with the same ADC, sensing interval and tracking option as every scheme that senses. No
choice of device or direction: that is what CRUS adds.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hnntrain.schemes.base import UpdateScheme, register
from hnntrain.schemes.common import estimate_bits, model_pulses


@register
class NonlinearityAware(UpdateScheme):
    name = "nonlinearity_aware"

    def __init__(self, options, array, ctx):
        super().__init__(options, array, ctx)
        self.sensed = ctx.sensed_state()
        self.g_min, self.g_max = float(ctx.nominal.g_min), float(ctx.nominal.g_max)

    def hardware(self) -> dict:
        return {"digital_bits_per_synapse": estimate_bits(self.ctx.sensing, self.ctx.sensing.track),
                "extra_arrays": 0, "sensing": True, "refresh": False}

    def before_sample(self, samples: int, generator) -> None:
        self.sensed.refresh_if_due(self.array, samples, generator)

    def update(self, request: Tensor, rows: Tensor | None, generator) -> None:
        est = self.sensed.view(rows)
        increase = request > 0
        half = request.abs() * (0.5 / self.array.scale)
        n_plus = model_pulses(self.ctx.nominal, est[:, 0], half, increase, self.g_min, self.g_max, generator,
                              rows)
        n_minus = model_pulses(self.ctx.nominal, est[:, 1], half, ~increase, self.g_min, self.g_max, generator,
                               rows)
        pulses = torch.stack((torch.where(increase, n_plus, -n_plus), torch.where(increase, -n_minus, n_minus)), dim=1)
        pulses = pulses.clamp_(-self.array.max_pulses, self.array.max_pulses)
        self.array.pulse(pulses, rows, generator)
        self.sensed.after_pulses(pulses, rows)

    def state_dict(self) -> dict:
        return {"sensed": self.sensed.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.sensed.load_state_dict(state["sensed"])
