"""What a pair layer is built from: a device given in any of the forms users hold (preset name,
fitted ``.toml``, measured ``.csv``, :class:`~hnntrain.spec.config.DeviceConfig`, mapping), the
pair and sensing settings, and a scheme given by name, class or factory. Everything resolves
through :func:`hnntrain.io.resolve.build_config`, as for ``hnntrain run``."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

from hnntrain.io.resolve import build_config
from hnntrain.io.resolve import device_values as resolve_device_values
from hnntrain.schemes import (
    SCHEMES,
    SchemeContext,
    UpdateScheme,
    build_scheme,
    get_scheme,
    parse_options,
)
from hnntrain.spec.config import DeviceConfig, PairConfig, RunConfig, SensingConfig

DeviceSpec = str | os.PathLike | DeviceConfig | Mapping[str, Any]
"""A preset name, a ``.toml`` file with a ``[device]`` table (as ``hnntrain device fit``
writes), a measured-curve ``.csv``, a :class:`DeviceConfig`, or a mapping of ``device.*`` keys."""

SchemeSpec = str | type | Callable[[Any, SchemeContext], UpdateScheme]
"""A registered scheme name, an :class:`UpdateScheme` subclass, or a factory
``f(array, ctx) -> UpdateScheme`` (one call per layer: a scheme instance belongs to one array)."""

def _device_values(device: DeviceSpec) -> dict[str, Any]:
    if isinstance(device, DeviceConfig):
        # only what differs from the defaults, so that a preset's values are not overridden
        defaults = DeviceConfig()
        return {f.name: getattr(device, f.name) for f in dataclasses.fields(DeviceConfig)
                if getattr(device, f.name) != getattr(defaults, f.name)}
    if isinstance(device, Mapping):
        return {str(k).removeprefix("device."): v for k, v in device.items()}
    if isinstance(device, (str, os.PathLike)):
        return resolve_device_values(os.fspath(device))  # the one resolver the CLI uses
    raise TypeError(f"device: expected a preset name, a .toml/.csv path, a DeviceConfig or a mapping, "
                    f"got {type(device).__name__}")


def _section_values(section: str, value: Any, cls: type) -> dict[str, Any]:
    if isinstance(value, cls):
        return {f"{section}.{f.name}": getattr(value, f.name) for f in dataclasses.fields(cls)}
    if isinstance(value, Mapping):
        return {f"{section}.{str(k).removeprefix(section + '.')}": v for k, v in value.items()}
    raise TypeError(f"{section}: expected a {cls.__name__} or a mapping, got {type(value).__name__}")


def layer_config(device: DeviceSpec = "abrupt-ltd", pair: PairConfig | Mapping[str, Any] = PairConfig(),
                 sensing: SensingConfig | Mapping[str, Any] = SensingConfig(), max_pulses: int = 0) -> RunConfig:
    """The validated run configuration of one layer (``device``, ``pair``, ``sensing`` and
    ``scheme.max_pulses``; everything else default), resolved by :func:`~hnntrain.io.resolve.build_config`
    as for ``hnntrain run``: presets first, explicit keys over them."""
    values = {f"device.{k}": v for k, v in _device_values(device).items()}
    values.update(_section_values("pair", pair, PairConfig))
    values.update(_section_values("sensing", sensing, SensingConfig))
    values["scheme.max_pulses"] = max_pulses
    return build_config(values)


def scheme_builder(scheme: SchemeSpec, params: Mapping[str, Any] | None):
    """(uses_devices, build(array, ctx)) for a scheme given by name, class or factory."""
    params = dict(params or {})
    if isinstance(scheme, str):
        cls = get_scheme(scheme)
        return cls.uses_devices, lambda array, ctx: build_scheme(scheme, params, array, ctx)
    if isinstance(scheme, UpdateScheme):
        raise TypeError("scheme: pass the scheme's class or a factory f(array, ctx), not an instance "
                        "(an instance is bound to one array, and every layer needs its own)")
    if isinstance(scheme, type) and issubclass(scheme, UpdateScheme):
        if SCHEMES.get(scheme.name) is scheme:  # registered: the same path as the trainer
            return scheme.uses_devices, lambda array, ctx: build_scheme(scheme.name, params, array, ctx)
        return scheme.uses_devices, lambda array, ctx: scheme(parse_options(scheme.Options, params), array, ctx)
    if callable(scheme):
        if params:
            raise TypeError("scheme: options are for a scheme given by name or class; a factory takes none")
        return bool(getattr(scheme, "uses_devices", True)), scheme
    raise TypeError(f"scheme: expected a name, an UpdateScheme subclass or a factory, got {type(scheme).__name__}")


