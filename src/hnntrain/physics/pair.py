"""Differential-pair arrays: every weight is two devices, w = scale * (G+ - G-).

State lives in one tensor ``g`` of shape (in, 2, E, out), input-major: ``g[:, 0]`` holds G+,
``g[:, 1]`` holds G-, E is the ensemble axis (independent replicas in lockstep). Input-major
because at batch 1 only the inputs (crossbar rows) with a non-zero activation receive pulses,
and selecting them is then a copy of contiguous blocks; keeping both devices in one tensor lets
a scheme pulse both with one call. Weights are (in, E, out) accordingly.

:class:`FloatArray` is the floating-point stand-in with the same interface, used by the
``fp`` reference scheme.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hnntrain.physics import rng
from hnntrain.physics.counters import WriteCounter
from hnntrain.physics.devices.base import DeviceModel
from hnntrain.spec.config import PairConfig

PLUS, MINUS = 0, 1


def init_weights(shape: tuple[int, int, int], fan_in: int, cfg: PairConfig, generator: torch.Generator) -> Tensor:
    """(in, E, out) weights uniform in +/- init_scale / sqrt(fan_in), clipped to +/- w_max
    (float64, CPU)."""
    bound = min(cfg.init_scale / math.sqrt(fan_in), cfg.w_max)
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound


class PairArray:
    """Conductances of one layer's device pairs, the true device model, and write counters."""

    uses_devices = True
    extra = False
    """True for a scheme's additional array (Tiki-Taka's A): its writes and reads are counted apart."""

    def __init__(self, g: Tensor, model: DeviceModel, scale: float, max_pulses: int):
        self.g = g
        """(in, 2, E, out) conductances, microsiemens: [:, 0] = G+, [:, 1] = G-."""
        self.model = model
        """True device model, per-device parameters broadcastable to ``g``."""
        self.scale = float(scale)
        """Weight per microsiemens of G+ - G-."""
        self.max_pulses = int(max_pulses) or model.levels
        """Pulse cap per device per update; 0 asks for a full sweep (``levels``), which no
        update needs, so the cap never clips a request (see ``scheme.max_pulses``)."""
        self.counter = WriteCounter(g.shape[2], g.device)
        self.w = self._weight(self.g)
        self.dw_step = self.scale * model.operating_step
        """Weight change of one pulse on one device at mid-range (the device's operating step,
        mean of LTP and LTD): the unit of every open-loop pulse count."""

    @classmethod
    def create(cls, weights: Tensor, model: DeviceModel, cfg: PairConfig, max_pulses: int) -> "PairArray":
        """Program initial ``weights`` (in, E, out) around the common-mode level ``g_ref_fraction``."""
        g_min, g_max = model.g_min.double(), model.g_max.double()
        g_range = (g_max - g_min).mean()
        scale = cfg.w_max / float(g_range)
        g_ref = g_min + cfg.g_ref_fraction * (g_max - g_min)  # scalar or (in, 2, E, out)
        sign = torch.tensor([1.0, -1.0], dtype=torch.float64).view(1, 2, 1, 1)
        g = g_ref + sign * (weights / (2 * scale)).unsqueeze(1)
        g = torch.minimum(torch.maximum(g, g_min), g_max)
        return cls(g.to(model.g_min.dtype), model, scale, max_pulses)

    def _weight(self, g: Tensor) -> Tensor:
        return (g[:, PLUS] - g[:, MINUS]) * self.scale

    @property
    def weight(self) -> Tensor:
        """(in, E, out) weights as the array computes with them (cached, kept current)."""
        return self.w

    def pulse(self, pulses: Tensor, rows: Tensor | None, key: rng.Key | None,
              cap: int | None = None, refresh: bool = False) -> Tensor:
        """Apply signed pulse counts (k, 2, E, out) to the inputs ``rows`` (all when None).

        Counts are capped at ``cap`` (default ``max_pulses``) per device, applied through the
        device model with
        cycle-to-cycle noise, counted, and the weights updated. Returns the new conductances
        of the touched columns. ``refresh`` marks the rewrite after a reset (counted apart).
        """
        cap = self.max_pulses if cap is None else cap
        pulses = pulses.clamp(-cap, cap)
        self.counter.add_pulses(pulses, refresh, self.extra)
        if rows is None:
            self.g = self.model.apply(self.g, pulses, key)
            self.w = self._weight(self.g)
            return self.g
        g_new = self.model.rows_of(rows).apply(self.g.index_select(0, rows), pulses, key, rows)
        self.g.index_copy_(0, rows, g_new)
        self.w.index_copy_(0, rows, self._weight(g_new))
        return g_new

    def set_conductance(self, g_new: Tensor, mask: Tensor) -> None:
        """Program devices where ``mask`` is true to ``g_new`` (resets, refresh), in bounds.
        Counted as program events per device."""
        self.g = torch.where(mask, self.model.clip(g_new), self.g)
        self.w = self._weight(self.g)
        self.counter.add_programs(mask)

    def state_dict(self) -> dict:
        return {"g": self.g, "counter": self.counter.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.g = state["g"].to(self.g.device)
        self.w = self._weight(self.g)
        self.counter.load_state_dict(state["counter"])


class FloatArray:
    """Floating-point weights with the array interface (no devices, no pulses)."""

    uses_devices = False

    def __init__(self, w: Tensor):
        self.w = w
        self.counter = WriteCounter(w.shape[1], w.device)

    @property
    def weight(self) -> Tensor:
        return self.w

    def add(self, dw: Tensor, rows: Tensor | None) -> None:
        self.counter.add_write(dw.shape[0], dw.shape[2])
        if rows is None:
            self.w += dw
        else:
            self.w.index_add_(0, rows, dw)

    def state_dict(self) -> dict:
        return {"w": self.w, "counter": self.counter.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.w = state["w"].to(self.w.device)
        self.counter.load_state_dict(state["counter"])
