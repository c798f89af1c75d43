"""Conductance sensing: b-bit ADC, read noise, sensing interval, and the controller's estimate.

A read returns, per device,

    G_sensed = g_min + range * round(clip((G + sigma_read * range * xi - g_min) / range, 0, 1) * (2^b - 1)) / (2^b - 1)

i.e. 2^b codes spread evenly over the nominal [g_min, g_max] (b = 0: exact, noise only).
A scheme never sees true conductances: it sees a :class:`SensedState`, refreshed every K
training samples and, between reads, either held or propagated through the nominal device
model for every pulse the controller issued (``track``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hnntrain.physics import rng
from hnntrain.physics.devices.base import DeviceModel
from hnntrain.spec.config import SensingConfig


def code_position(g: Tensor, g_min: float, g_max: float, codes: int) -> Tensor:
    """Position of ``g`` on ``codes + 1`` levels spread evenly over [g_min, g_max] (continuous,
    unclipped): (g - g_min) / (g_max - g_min) * codes."""
    return (g - g_min) / (g_max - g_min) * codes


def adc_code(g: Tensor, g_min: float, g_max: float, codes: int) -> Tensor:
    """The ADC: nearest of ``codes + 1`` levels over [g_min, g_max], clipped to 0..codes (as a
    float tensor). The one quantizer of the project: reads, CRUS's policy index and the
    optimization's state grid all use it."""
    return torch.round(code_position(g, g_min, g_max, codes)).clamp(0, codes)


class Sensor:
    """The read path (ADC + noise) for one nominal conductance range."""

    def __init__(self, cfg: SensingConfig, g_min: float, g_max: float):
        self.cfg = cfg
        self.g_min = float(g_min)
        self.g_max = float(g_max)
        self.codes = (1 << cfg.adc_bits) - 1 if cfg.adc_bits > 0 else 0
        """Highest ADC code (2^b - 1); 0 for an exact read."""

    @property
    def lsb(self) -> float:
        """Conductance per ADC code, microsiemens (0 for an exact read)."""
        return (self.g_max - self.g_min) / self.codes if self.codes else 0.0

    def read(self, g: Tensor, key: rng.Key | None = None, rows: Tensor | None = None) -> Tensor:
        """Sensed conductances of ``g``; the read noise is the ``READ`` draw of ``key`` for these
        elements (``rows``: their global input rows)."""
        g_range = self.g_max - self.g_min
        if self.cfg.read_noise > 0:
            if key is None:
                raise ValueError("read noise needs a random key (hnntrain.physics.rng.Key)")
            xi = rng.normal(key.take(rng.READ), g.shape, rows, g.device).to(g.dtype)
            g = g + xi * (self.cfg.read_noise * g_range)
        if not self.codes:
            return g.clone()  # a reading, never an alias of the physical state
        code = adc_code(g, self.g_min, self.g_max, self.codes)
        return self.g_min + code * (g_range / self.codes)

    def read_array(self, array, key: rng.Key | None = None, rows: Tensor | None = None) -> Tensor:
        """Read every device of ``array`` (or of its input ``rows``) and count the reads in
        the array's write counter: the one way schemes sense."""
        g = array.g if rows is None else array.g.index_select(0, rows)
        array.counter.add_reads(g.numel(), g.shape[0], array.extra)
        return self.read(g, key, rows)


class SensedState:
    """What a controller knows about one array: the last reading, optionally tracked.

    ``refresh_if_due`` is called once per training sample; every ``every`` samples it reads
    all devices (counted in the array's write counter as senses).
    """

    def __init__(self, sensor: Sensor, nominal: DeviceModel, every: int, track: bool):
        self.sensor = sensor
        self.nominal = nominal
        self.every = int(every)
        self.track = bool(track)
        self.estimate: Tensor | None = None
        self.samples_since_read = 0

    def refresh_if_due(self, array, samples: int, key: rng.Key | None) -> bool:
        """Read ``array`` when ``every`` samples have passed since the last read (or never read)."""
        self.samples_since_read += samples
        if self.estimate is not None and self.samples_since_read < self.every:
            return False
        self.estimate = self.sensor.read_array(array, key)
        self.samples_since_read = 0
        return True

    def view(self, rows: Tensor | None) -> Tensor:
        assert self.estimate is not None, "refresh_if_due() must run before the first update"
        return self.estimate if rows is None else self.estimate.index_select(0, rows)

    def after_pulses(self, pulses: Tensor, rows: Tensor | None) -> None:
        """Propagate the estimate through the nominal model for the issued pulses."""
        if not self.track or self.estimate is None:
            return
        old = self.view(rows)
        new = self.nominal.apply(old, pulses)
        if rows is None:
            self.estimate = new
        else:
            self.estimate.index_copy_(0, rows, new)

    def state_dict(self) -> dict:
        return {"estimate": self.estimate, "samples_since_read": self.samples_since_read}

    def load_state_dict(self, state: dict) -> None:
        self.estimate = state["estimate"]
        self.samples_since_read = state["samples_since_read"]
