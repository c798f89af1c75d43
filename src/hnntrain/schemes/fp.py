"""``fp``: the floating-point reference. Same network, same loop, exact weight updates."""

from __future__ import annotations

from torch import Tensor

from hnntrain.physics import rng
from hnntrain.schemes.base import UpdateScheme, register


@register
class FloatingPoint(UpdateScheme):
    """w <- w + dW exactly (no devices, no pulses). The accuracy every scheme is held against."""

    name = "fp"
    uses_devices = False

    def hardware(self) -> dict:
        return {"digital_bits_per_synapse": 32, "extra_arrays": 0, "sensing": False, "refresh": False,
                "note": "floating-point weights; no device array"}

    def update(self, request: Tensor, rows: Tensor | None, key: rng.Key) -> None:
        self.array.add(request, rows)
