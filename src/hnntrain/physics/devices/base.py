"""What every device model shares: bounds, cycle-to-cycle noise, and the pulse API.

A model answers one question, vectorized over any tensor shape: given conductances ``g`` and
signed pulse counts ``pulses`` (+n: n LTP pulses, -n: n LTD pulses, 0: untouched), what are the
new conductances? Per-device parameters are tensors broadcastable to the state (the
device-to-device draws); a model built without variation holds 0-d tensors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from hnntrain.physics import rng


class DeviceModel(ABC):
    """Base class. Subclasses implement :meth:`response` (deterministic, unclipped is fine)."""

    name: str = "device"
    shared_keys: tuple[str, ...] = ()
    """Tensors that describe the model as a whole, never one per device (e.g. curves)."""

    def __init__(self, g_min: Tensor, g_max: Tensor, levels: int, c2c: float = 0.0, c2c_mode: str = "additive"):
        self.g_min = g_min
        """Lower bound per device, microsiemens."""
        self.g_max = g_max
        """Upper bound per device, microsiemens."""
        self.levels = int(levels)
        """Nominal pulses from g_min to g_max."""
        self.c2c = float(c2c)
        """Cycle-to-cycle sigma, fraction of the (per-device) range."""
        self.c2c_mode = c2c_mode

    # -- parameters -------------------------------------------------------------------------
    def tensors(self) -> dict[str, Tensor]:
        """Per-device parameter tensors (for column selection, device moves, checkpoints)."""
        return {"g_min": self.g_min, "g_max": self.g_max}

    def _replace_tensors(self, tensors: dict[str, Tensor]) -> "DeviceModel":
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.__dict__.update(tensors)
        clone.__dict__.pop("_fast", None)
        return clone

    def param(self, name: str) -> Tensor | float:
        """Parameter ``name`` as a Python float when it is shared by all devices (0-d), else
        the per-device tensor. Scalars keep the hot path free of broadcasts and casts."""
        fast = self.__dict__.setdefault("_fast", {})
        if name not in fast:
            value = getattr(self, name)
            fast[name] = float(value) if value.dim() == 0 else value
        return fast[name]

    def rows_of(self, rows: Tensor | None) -> "DeviceModel":
        """The same model restricted to the inputs (first-axis indices) ``rows``; parameters
        that are shared scalars are kept as they are."""
        if rows is None:
            return self
        return self._replace_tensors({
            k: v.index_select(0, rows)
            for k, v in self.tensors().items()
            if k not in self.shared_keys and v.dim() > 0 and v.shape[0] > 1
        })

    def to(self, device: torch.device | str) -> "DeviceModel":
        return self._replace_tensors({k: v.to(device) for k, v in self.tensors().items()})

    @property
    def g_range(self) -> Tensor:
        return self.g_max - self.g_min

    @property
    def nominal_step(self) -> float:
        """Linear-equivalent step (g_max - g_min) / levels, microsiemens, from the mean bounds."""
        return float((self.g_max.double().mean() - self.g_min.double().mean()) / self.levels)

    # -- physics ----------------------------------------------------------------------------
    @abstractmethod
    def response(self, g: Tensor, pulses: Tensor) -> Tensor:
        """Noise-free conductance after ``pulses`` (signed counts) starting from ``g``."""

    def pulse_position(self, g: Tensor, ltp: bool) -> Tensor:
        """Pulse number at which the LTP (or LTD) curve passes through ``g`` (for plots and
        model-based pulse counts). Subclasses override; the base assumes a linear response."""
        frac = (g - self.g_min) / self.g_range
        return (frac if ltp else 1 - frac) * self.levels

    def pulses_to(self, g: Tensor, target: Tensor, ltp: Tensor) -> Tensor:
        """Continuous number of pulses (>= 0) that moves ``g`` to ``target`` along LTP (where
        ``ltp``) or LTD: the model inverted, for nonlinearity-aware pulse counts."""
        up = self.pulse_position(target, True) - self.pulse_position(g, True)
        down = self.pulse_position(target, False) - self.pulse_position(g, False)
        return torch.where(ltp, up, down).clamp(min=0)

    def apply(self, g: Tensor, pulses: Tensor, key: rng.Key | None = None, rows: Tensor | None = None) -> Tensor:
        """New conductances after signed ``pulses``, with cycle-to-cycle noise, in bounds.

        Additive noise (NeuroSim): G += sigma * range * sqrt(|n|) * xi.
        Multiplicative noise: dG_det * (1 + sigma * xi / sqrt(|n|)).
        Untouched devices (n = 0) get no noise. xi is the ``C2C`` draw of ``key`` for these
        elements (``rows``: their global input rows, see :mod:`hnntrain.physics.rng`).
        """
        g_new = self.response(g, pulses)
        if self.c2c > 0:
            if key is None:
                raise ValueError("cycle-to-cycle noise needs a random key (hnntrain.physics.rng.Key)")
            n = pulses.abs()
            xi = rng.normal(key.take(rng.C2C), g.shape, rows, g.device, where=n > 0).to(g.dtype)
            if self.c2c_mode == "additive":
                g_new = g_new + xi * n.sqrt() * (self.c2c * self.g_range)
            else:
                g_new = g_new + (g_new - g) * xi * (self.c2c / n.clamp(min=1).sqrt())
        return self.clip(g_new)

    def clip(self, g: Tensor) -> Tensor:
        """Clamp into [g_min, g_max] (per device)."""
        lo, hi = self.param("g_min"), self.param("g_max")
        if isinstance(lo, float) and isinstance(hi, float):
            return g.clamp(lo, hi)
        return torch.minimum(torch.maximum(g, self.g_min), self.g_max)

    def mean_model(self) -> "DeviceModel":
        """The model with every per-device parameter replaced by its mean over devices (float64)."""
        return self._replace_tensors({
            k: v.to(torch.float64) if k in self.shared_keys else v.to(torch.float64).mean()
            for k, v in self.tensors().items()
        })

    @property
    def operating_step(self) -> float:
        """Change of G by one pulse at mid-range, mean of one LTP and one LTD pulse (mean
        parameters), microsiemens: (g_max - g_min) / levels on a linear device, larger on a
        curved one (2.5x for a soft-bounds curve whose asymptote is its bound). Open-loop
        schemes size their pulse counts with it, so that a learning rate asks for the same
        conductance change per pulse on every device around the pair's operating point."""
        nominal = self.mean_model()
        mid = (nominal.g_min + nominal.g_max) / 2
        one = torch.ones((), dtype=torch.float64)
        up = nominal.response(mid, one) - mid
        down = mid - nominal.response(mid, -one)
        return float((up + down) / 2)

    def curves(self) -> tuple[Tensor, Tensor]:
        """Noise-free LTP curve from g_min and LTD curve from g_max, ``levels + 1`` points each
        (nominal parameters: the mean over devices)."""
        nominal = self.mean_model()
        steps = torch.arange(self.levels + 1, dtype=torch.float64)
        up = nominal.response(nominal.g_min.expand(self.levels + 1), steps)
        down = nominal.response(nominal.g_max.expand(self.levels + 1), -steps)
        return up.clamp(float(nominal.g_min), float(nominal.g_max)), down.clamp(float(nominal.g_min), float(nominal.g_max))
