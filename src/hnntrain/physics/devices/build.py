"""Device models built from a :class:`~hnntrain.spec.config.DeviceConfig`.

``build_device(cfg, shape, generator)`` draws the device-to-device variation once, for every
device of an array of the given shape; ``nominal_device(cfg)`` is the model a controller
believes in (no variation, scalar parameters).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from hnntrain.physics.devices.base import DeviceModel
from hnntrain.physics.devices.exponential import (
    ExponentialDevice,
    nl_to_norm_a,
    nl_to_pulses,
)
from hnntrain.physics.devices.linear import LinearDevice
from hnntrain.physics.devices.table import (
    MeasuredCurves,
    TableDevice,
    TableError,
    read_curves,
)
from hnntrain.spec.config import ConfigError, DeviceConfig


def _curves(cfg: DeviceConfig) -> MeasuredCurves:
    try:
        return read_curves(cfg.table)
    except TableError as err:
        raise ConfigError("device.table", str(err)) from None


def build_device(
    cfg: DeviceConfig,
    shape: tuple[int, ...] = (),
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> DeviceModel:
    """A model whose per-device parameters have ``shape`` (one draw per device, on CPU from
    ``generator`` so that results do not depend on the compute device)."""
    vary = generator is not None and shape != ()

    def draw(mean: float, sigma: float) -> torch.Tensor:
        if vary and sigma > 0:
            return mean + sigma * torch.randn(shape, generator=generator, dtype=torch.float64)
        return torch.tensor(mean, dtype=torch.float64)

    g_range = cfg.g_max - cfg.g_min
    g_min = draw(cfg.g_min, cfg.d2d_g * g_range).clamp(min=0.0)
    g_max = draw(cfg.g_max, cfg.d2d_g * g_range)
    g_max = torch.maximum(g_max, g_min + 0.05 * g_range)  # keep every device's range open
    c2c_args = {"c2c": cfg.c2c, "c2c_mode": cfg.c2c_mode}
    if cfg.model == "linear":
        model: DeviceModel = LinearDevice(g_min, g_max, cfg.levels, **c2c_args)
    elif cfg.model == "exponential":
        curvature = []
        for direction in ("ltp", "ltd"):
            a_pulses = getattr(cfg, f"a_{direction}")
            if a_pulses is not None:
                a = draw(a_pulses, 0.0)
            elif vary and cfg.d2d_nl > 0:
                nl = draw(abs(getattr(cfg, f"nl_{direction}")), cfg.d2d_nl).abs().clamp(max=9.0)
                a = nl_to_pulses(nl, cfg.levels)
            else:
                a = torch.tensor(nl_to_norm_a(getattr(cfg, f"nl_{direction}")) * cfg.levels, dtype=torch.float64)
            curvature.append(a)
        model = ExponentialDevice(g_min, g_max, cfg.levels, curvature[0], curvature[1], **c2c_args)
    elif cfg.model == "table":
        curves = _curves(cfg)
        model = TableDevice(g_min, g_max, curves, **c2c_args)
    else:  # validated earlier
        raise ConfigError("device.model", f"unknown model {cfg.model!r}")
    return model._replace_tensors({k: v.to(dtype=dtype, device=device) for k, v in model.tensors().items()})


def nominal_device(cfg: DeviceConfig, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> DeviceModel:
    """The model without device-to-device or cycle-to-cycle variation."""
    return build_device(replace(cfg, c2c=0.0), (), None, dtype, device)
