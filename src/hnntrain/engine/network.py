"""The network on its arrays: one pair array (or floating-point array) and one update scheme
per layer, built the same way for the trainer and for the PyTorch layers of :mod:`hnntrain.nn`.

Construction order fixes the random numbers: initial weights, then the device-to-device draws,
both on the CPU from generators derived from the run seed (:func:`derive_seeds`), so that the
same seed gives the same devices on any compute device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from hnntrain.engine.model import MLP
from hnntrain.physics.devices import build_device, nominal_device
from hnntrain.physics.pair import FloatArray, PairArray, init_weights
from hnntrain.physics.sensing import Sensor
from hnntrain.schemes import SchemeContext, UpdateScheme, build_scheme, get_scheme
from hnntrain.spec.config import (
    ControllerConfig,
    DeviceConfig,
    PairConfig,
    RunConfig,
    SensingConfig,
    controller_view,
)

DENSE_FRACTION = 0.6
"""Above this share of active input rows an update touches every row: a dense pass is then
cheaper than gathering and scattering the active ones."""


def derive_seeds(seed: int, count: int) -> list[int]:
    """``count`` independent 63-bit seeds from one run seed (numpy SeedSequence spawning)."""
    return [int(s.generate_state(1, dtype=np.uint64)[0] >> 1) for s in np.random.SeedSequence(seed).spawn(count)]


def active_rows(x: Tensor) -> Tensor | None:
    """Indices of the input rows (crossbar lines) that carry a non-zero input in any sample of
    ``x`` (..., rows): only those can receive pulses. None means "every row": on a GPU (where
    gathering does not pay) or when more than :data:`DENSE_FRACTION` of the rows are active."""
    if x.device.type != "cpu":
        return None
    count = x.shape[-1]
    rows = (x != 0).reshape(-1, count).any(0).nonzero().squeeze(1)
    return None if rows.numel() > DENSE_FRACTION * count else rows


def scheme_context(device: DeviceConfig, sensing: SensingConfig, max_pulses: int,
                   where: torch.device | str = "cpu", controller: ControllerConfig | None = None,
                   lr: float = 0.1) -> SchemeContext:
    """What a scheme may know besides its array: the device model and the sensing its controller
    believes in (``controller``; default: the nominal truth), the real sensing hardware and the
    learning rate ``lr`` of the requests."""
    controller = controller or ControllerConfig()
    believed_device, believed_sensing = controller_view(device, sensing, controller)
    nominal = nominal_device(believed_device, device=where)
    return SchemeContext(nominal=nominal, sensing=sensing,
                         sensor=Sensor(sensing, float(nominal.g_min), float(nominal.g_max)),
                         device=believed_device, max_pulses=max_pulses, believed_sensing=believed_sensing,
                         reset_noise=controller.reset_noise, lr=lr)


def program_array(weights: Tensor, device: DeviceConfig, pair: PairConfig, max_pulses: int,
                  d2d_generator: torch.Generator, where: torch.device | str = "cpu",
                  uses_devices: bool = True) -> PairArray | FloatArray:
    """An array holding ``weights`` (rows, E, out): device pairs drawn (device-to-device
    variation, on the CPU from ``d2d_generator``) and programmed around the common-mode level,
    or plain floating-point weights when the scheme uses no devices."""
    if not uses_devices:
        return FloatArray(weights.float().to(where))
    rows, replicas, out = weights.shape
    has_d2d = device.d2d_g > 0 or device.d2d_nl > 0
    shape = (rows, 2, replicas, out) if has_d2d else ()
    model = build_device(device, shape, d2d_generator, device="cpu")
    array = PairArray.create(weights, model, pair, max_pulses)
    return PairArray(array.g.to(where), model.to(where), array.scale, array.max_pulses)


class Network:
    """An MLP whose layers are arrays updated by a scheme, ``cfg.train.replicas`` replicas in
    lockstep. Owns the arrays, the schemes and their context; no training state."""

    def __init__(self, cfg: RunConfig, sizes: list[int], init_generator: torch.Generator,
                 d2d_generator: torch.Generator, where: torch.device):
        self.mlp = MLP(sizes, cfg.model.activation, cfg.model.bias)
        self.ctx = scheme_context(cfg.device, cfg.sensing, cfg.scheme.max_pulses, where, cfg.controller,
                                  cfg.train.lr)
        uses_devices = get_scheme(cfg.scheme.name).uses_devices
        self.arrays: list[Any] = []
        self.schemes: list[UpdateScheme] = []
        for rows, out in self.mlp.weight_shapes():
            weights = init_weights((rows, cfg.train.replicas, out), rows, cfg.pair, init_generator)
            array = program_array(weights, cfg.device, cfg.pair, cfg.scheme.max_pulses, d2d_generator, where,
                                  uses_devices)
            self.arrays.append(array)
            self.schemes.append(build_scheme(cfg.scheme.name, dict(cfg.scheme.params), array, self.ctx))

    def weights(self) -> list[Tensor]:
        """(rows, E, out) weights of every layer, as the arrays compute with them."""
        return [a.weight for a in self.arrays]

    def hardware(self, cfg: RunConfig) -> dict:
        """What the scheme needs (``result.json``'s ``hardware``)."""
        hw = dict(self.schemes[0].hardware())
        hw.update({
            "adc_bits": cfg.sensing.adc_bits if hw.get("sensing") else None,
            "sense_every": cfg.sensing.every if hw.get("sensing") else None,
            "max_pulses": cfg.scheme.max_pulses,
            "devices_per_weight": 2 if self.schemes[0].uses_devices else 0,
            "weight_shapes": [list(shape) for shape in self.mlp.weight_shapes()],
        })
        return hw

    def state_dict(self) -> dict:
        return {"arrays": [a.state_dict() for a in self.arrays], "schemes": [s.state_dict() for s in self.schemes]}

    def load_state_dict(self, state: dict) -> None:
        for array, s in zip(self.arrays, state["arrays"]):
            array.load_state_dict(s)
        for scheme, s in zip(self.schemes, state["schemes"]):
            scheme.load_state_dict(s)
