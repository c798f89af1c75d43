"""``neurosim``: the open-loop update of NeuroSim's MLP simulator (Chen & Yu, IEEE Design & Test
2019; the ``RealDevice::Write`` rule of MLP+NeuroSim V2/V3): one device per weight, a pulse
count from the ideal linear mapping, rounded to the nearest whole pulse.

    n = round(dW / dw_step)         (half away from zero; dw_step: one nominal pulse's weight)
    G+ <- device(G+, n)             (LTP for n > 0, LTD for n < 0; cycle-to-cycle noise)

On our pair arrays the second device of each pair is a fixed reference at the common-mode
level (``pair.g_ref_fraction``), programmed once before the first update and never pulsed, so that
w = scale * (G+ - G_ref) takes both signs, as NeuroSim's signed weight range does with one
device. Weights therefore span +/- w_max/2 (one device's range) instead of the pair's +/- w_max.

This is the baseline published device studies quote. ``sgd`` is a stronger open-loop scheme on
the same hardware: push-pull on both devices and stochastic rounding (unbiased on a linear
device); ``neurosim`` loses every request under half a pulse.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hnntrain.schemes.base import UpdateScheme, register


def round_half_away(x: Tensor) -> Tensor:
    """Nearest integer, halves away from zero (NeuroSim's ``truncate`` with threshold 0.5)."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


@register
class NeuroSimSGD(UpdateScheme):
    name = "neurosim"

    def __init__(self, options, array, ctx):
        super().__init__(options, array, ctx)
        self.reference_programmed = False
        """Whether G- was moved to the reference level (explicit state: a scheme rebuilt on an
        array restored from a checkpoint must not move the devices again)."""

    def _program_reference(self) -> None:
        # G- becomes the reference at the pair's common-mode level (g_ref_fraction of the range
        # when nothing was clipped); G+ alone carries the weight, which stays as it was
        g = self.array.g
        ref = (g[:, 0] + g[:, 1]) / 2
        self.array.g = self.array.model.clip(torch.stack((ref + (g[:, 0] - g[:, 1]), ref), dim=1))
        self.array.w = self.array._weight(self.array.g)
        self.reference_programmed = True

    def state_dict(self) -> dict:
        return {"reference_programmed": self.reference_programmed}

    def load_state_dict(self, state: dict) -> None:
        self.reference_programmed = bool(state.get("reference_programmed", False))

    def hardware(self) -> dict:
        return {"digital_bits_per_synapse": 0, "extra_arrays": 0, "sensing": False, "refresh": False,
                "note": "one device per weight against a fixed reference device, deterministic rounding"}

    def update(self, request: Tensor, rows: Tensor | None, generator) -> None:
        if not self.reference_programmed:  # before the first write, not at construction
            self._program_reference()
        n = round_half_away(request * (1.0 / self.array.dw_step))
        self.array.pulse(torch.stack((n, torch.zeros_like(n)), dim=1), rows, generator)
