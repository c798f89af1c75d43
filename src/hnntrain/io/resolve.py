"""Resolving a run configuration: TOML files, ``--set`` overrides, device presets and measured
curves, then validation (ranges, scheme name and options).

Precedence: dataclass defaults < device preset < config file < ``--set``.
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping

from hnntrain.physics.devices.table import TableError, read_curves
from hnntrain.schemes import check_scheme
from hnntrain.spec.config import (
    SECTION_CLASSES,
    ConfigError,
    CostConfig,
    RunConfig,
    validate,
    validate_cost,
)
from hnntrain.spec.presets import PRESETS, preset_values, pulse_prices

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value as a TOML literal (numbers, booleans, arrays, quoted strings);
    anything else is taken as a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["device.levels=32", ...]`` -> ``{"device.levels": 32, ...}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(item, "expected KEY=VALUE, for example --set device.levels=32")
        out[key.strip()] = parse_value(value.strip())
    return out


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested TOML tables -> dotted keys. ``scheme`` options stay one level deep."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and dotted.count(".") < 1:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def read_toml(path: str | Path, missing: str = "pass an existing .toml file") -> dict[str, Any]:
    """A TOML file's tables; a missing or malformed file is a ConfigError naming it
    (``missing``: what to do when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), f"file not found; {missing}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(path), f"not valid TOML ({err})") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    return flatten(read_toml(path, "pass an existing config .toml file"))


def _coerce(key: str, value: Any, annotation: str) -> Any:
    """Convert TOML values to the field's type, with a message that names the field."""
    ann = annotation.replace(" ", "")
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and "None" in ann):
        if "None" in ann:
            return None
        raise ConfigError(key, "a value is required")
    if ann.startswith("tuple[int"):
        seq = value if isinstance(value, (list, tuple)) else [value]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in seq):
            raise ConfigError(key, f"expected a list of integers, got {value!r}")
        return tuple(seq)
    if ann.startswith("bool"):
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if ann.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return int(value)
    if ann.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"expected a number, got {value!r}")
        return float(value)
    if ann.startswith("str"):
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    return value


def build_config(values: Mapping[str, Any]) -> RunConfig:
    """Dotted keys -> validated :class:`RunConfig`. Applies the device preset first."""
    values = dict(values)
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTION_CLASSES}
    preset = values.get("device.preset")
    if preset is not None:
        for key, val in preset_values(str(preset)).items():
            values.setdefault(f"device.{key}", val)
    if values.get("device.model") == "table" and values.get("device.table"):
        # a measured device brings its own bounds and pulse count unless given explicitly
        try:
            curves = read_curves(str(values["device.table"]))
        except TableError as err:
            raise ConfigError("device.table", str(err)) from None
        values.setdefault("device.g_min", curves.g_min)
        values.setdefault("device.g_max", curves.g_max)
        values.setdefault("device.levels", curves.levels)
    for key, value in values.items():
        section, _, name = key.partition(".")
        if section not in SECTION_CLASSES or not name:
            raise ConfigError(key, f"unknown key; sections are {', '.join(SECTION_CLASSES)}")
        cls = SECTION_CLASSES[section]
        known = {f.name: f for f in fields(cls)}
        if section == "scheme" and name not in known:
            sections["scheme"].setdefault("params", {})[name] = value
            continue
        if name not in known:
            raise ConfigError(key, f"unknown key; {section} has {', '.join(sorted(known))}")
        sections[section][name] = _coerce(key, value, str(known[name].type))
    cfg = RunConfig(**{name: cls(**sections[name]) for name, cls in SECTION_CLASSES.items()})
    validate(cfg)
    check_scheme(cfg.scheme.name, dict(cfg.scheme.params))  # unknown scheme or option: fail before training
    pulse_prices(cfg.cost.pulse_preset, cfg.device.preset)  # an unknown write-pulse technology: fail now
    return cfg


def build_cost(values: Mapping[str, Any], device_preset: str | None = None) -> CostConfig:
    """``cost.*`` dotted keys (a stored run's ``[cost]`` plus ``--set`` overrides) -> validated
    :class:`CostConfig`, without the rest of the run's config (re-pricing a finished run)."""
    known = {f.name: f for f in fields(CostConfig)}
    kwargs = {}
    for key, value in values.items():
        section, _, name = key.partition(".")
        if section != "cost" or name not in known:
            raise ConfigError(key, f"not a price; cost has {', '.join(sorted(known))}")
        kwargs[name] = _coerce(key, value, str(known[name].type))
    cost = CostConfig(**kwargs)
    validate_cost(cost)
    pulse_prices(cost.pulse_preset, device_preset)
    return cost


def resolve(config_file: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(load_toml(config_file))
    values.update(overrides or {})
    return build_config(values)


def device_values(spec: str) -> dict[str, Any]:
    """A device named on the command line -> ``device.*`` values (keys without the section):
    a preset name, a measured-curve CSV (table model) or a TOML file with a [device] table
    (for example one written by ``hnntrain device fit``)."""
    path = Path(spec)
    if spec.lower() in PRESETS:
        return {"preset": spec.lower()}
    if path.suffix.lower() == ".csv":
        return {"model": "table", "table": str(path)}
    if path.suffix.lower() == ".toml":
        return {k[len("device."):]: v for k, v in load_toml(path).items() if k.startswith("device.")}
    raise ConfigError("device", f"{spec!r} is neither a preset ({', '.join(PRESETS)}) nor a .csv/.toml file")


