"""The update-scheme interface: how a requested weight change becomes device operations.

A scheme is one small class. The trainer builds one instance per layer and, for every update,
calls :meth:`UpdateScheme.update` with the SGD request ``dW`` (k, E, out) on the inputs
``rows`` of the layer (None: all inputs; at batch 1 only the inputs that are non-zero can
receive pulses, as on a crossbar). Arrays are input-major: conductances (in, 2, E, out). The scheme turns it into pulses through
``array.pulse`` (which caps, applies the device physics, and counts), or programs devices
with ``array.set_conductance``. Everything it keeps between updates is explicit state,
returned by :meth:`state_dict`.

Randomness: both calls receive a :class:`~hnntrain.physics.rng.Key` for this layer, update and
phase; pass it on to ``stochastic_round``, ``array.pulse`` and ``sensor.read_array`` (with the
global input ``rows``), which draw their numbers from it (see :mod:`hnntrain.physics.rng`).

A scheme declares the hardware it needs (:meth:`hardware`) so that comparisons list it next
to accuracy (the "same hardware" rule of docs/baselines.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch
from torch import Tensor

from hnntrain.physics import rng
from hnntrain.physics.devices.base import DeviceModel
from hnntrain.physics.sensing import SensedState, Sensor
from hnntrain.spec.config import ConfigError, DeviceConfig, SensingConfig

SCHEMES: dict[str, type["UpdateScheme"]] = {}


def register(cls: type["UpdateScheme"]) -> type["UpdateScheme"]:
    SCHEMES[cls.name] = cls
    return cls


def stochastic_round(x: Tensor, key: rng.Key, rows: Tensor | None = None) -> Tensor:
    """Unbiased rounding to integers: floor(x + U), U ~ Uniform[0, 1); E[result] = x.

    U is the next ``ROUND`` draw of ``key`` for these elements; ``rows`` are the global input
    rows of ``x``'s first axis (None: 0..k-1), so that a synapse's number does not depend on
    which rows an update selects.
    """
    if key is None:
        raise ValueError("stochastic rounding needs a random key (hnntrain.physics.rng.Key)")
    return torch.floor(x + rng.uniform(key.take(rng.ROUND), x.shape, rows, x.device).to(x.dtype))


@dataclass(frozen=True)
class NoOptions:
    """This scheme has no options."""


@dataclass
class SchemeContext:
    """What a scheme may know besides its array: the nominal device, the sensing hardware."""

    nominal: DeviceModel
    """The device model a controller believes in (no variation; ``controller.*`` may make it
    differ from the true nominal device)."""
    sensing: SensingConfig
    sensor: Sensor
    device: DeviceConfig | None = None
    """The device description the controller believes in (for schemes that optimize against it)."""
    max_pulses: int = 0
    """``scheme.max_pulses`` (0: no clipping; the arrays resolve it to a full sweep)."""
    believed_sensing: SensingConfig | None = None
    """The sensing the controller's optimization assumes (its read-noise belief); None: ``sensing``."""
    reset_noise: float = 0.0
    """Sigma of where a reset lands around the home bound, fraction of the range."""
    lr: float = 0.1
    """The learning rate of the requests (``train.lr``), for internal rates that scale with it
    (Tiki-Taka's transfer rate)."""

    def sensed_state(self, track: bool | None = None) -> SensedState:
        """A controller estimate with this hardware's sensing; ``track`` overrides the config."""
        return SensedState(self.sensor, self.nominal, self.sensing.every,
                           self.sensing.track if track is None else track)


def parse_options(cls: type, values: Mapping[str, Any]) -> Any:
    """Scheme options from ``scheme.<key>`` values, checked against the dataclass ``cls``."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            hint = f"options are {', '.join(sorted(known))}" if known else "this scheme has no options"
            raise ConfigError(f"scheme.{key}", f"unknown option; {hint}")
        default = known[key].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"scheme.{key}", f"expected true or false, got {value!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"scheme.{key}", f"expected a number, got {value!r}")
            value = type(default)(value) if isinstance(default, float) or float(value) == int(value) else value
        kwargs[key] = value
    options = cls(**kwargs)
    check = getattr(options, "check", None)
    if check is not None:
        check()
    return options


class UpdateScheme:
    """Base class; see the module docstring."""

    name: ClassVar[str] = ""
    uses_devices: ClassVar[bool] = True
    """False only for the floating-point reference (its array holds plain weights)."""
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Any, array, ctx: SchemeContext):
        self.options = options
        self.array = array
        self.ctx = ctx

    def hardware(self) -> dict[str, Any]:
        """What this scheme needs beyond the pair array and its pulse drivers."""
        return {"digital_bits_per_synapse": 0, "extra_arrays": 0, "sensing": False, "refresh": False}

    def before_sample(self, samples: int, key: rng.Key) -> None:
        """Called once per update, before it (for example: sensing that is due)."""

    def update(self, request: Tensor, rows: Tensor | None, key: rng.Key) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
