"""Linear device: a constant step (g_max - g_min) / levels per pulse, hard bounds.

    G_n = clip(G + n * (g_max - g_min) / levels, g_min, g_max)

The ideal reference device: the only non-ideality left is the finite number of levels.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hnntrain.physics.devices.base import DeviceModel


class LinearDevice(DeviceModel):
    name = "linear"

    def __init__(self, g_min: Tensor, g_max: Tensor, levels: int, **c2c_args):
        super().__init__(g_min, g_max, levels, **c2c_args)
        self.step = (g_max - g_min) / levels
        """Conductance change per pulse, microsiemens (per device)."""

    def tensors(self) -> dict[str, Tensor]:
        return {**super().tensors(), "step": self.step}

    def pulses_to(self, g: Tensor, target: Tensor, ltp: Tensor) -> Tensor:
        change = torch.where(ltp, target - g, g - target)
        return (change / self.step).clamp(min=0)

    def response(self, g: Tensor, pulses: Tensor) -> Tensor:
        return g + pulses * self.param("step")
