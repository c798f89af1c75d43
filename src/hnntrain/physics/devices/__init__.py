"""Device models: what n pulses do to a conductance (exponential, linear, measured table), and
their construction from a config (:mod:`hnntrain.physics.devices.build`)."""

from __future__ import annotations

from hnntrain.physics.devices.base import DeviceModel
from hnntrain.physics.devices.build import build_device, nominal_device
from hnntrain.physics.devices.exponential import (
    ExponentialDevice,
    nl_to_norm_a,
    nl_to_pulses,
    norm_a_to_nl,
)
from hnntrain.physics.devices.linear import LinearDevice
from hnntrain.physics.devices.table import (
    MeasuredCurves,
    TableDevice,
    TableError,
    read_curves,
)

__all__ = [
    "DeviceModel",
    "ExponentialDevice",
    "LinearDevice",
    "MeasuredCurves",
    "TableDevice",
    "TableError",
    "build_device",
    "nl_to_norm_a",
    "nl_to_pulses",
    "nominal_device",
    "norm_a_to_nl",
    "read_curves",
]
