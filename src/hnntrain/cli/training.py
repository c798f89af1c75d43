"""Commands that train: ``run`` (one config), ``compare`` (schemes on the same hardware),
``sweep`` (a grid) and ``reproduce`` (the paper's claim sweeps). ``compare``, ``sweep`` and
``reproduce`` execute through :func:`hnntrain.experiments.sweep.execute`: one store, one
executor, one resume, one progress display.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from hnntrain.cli.common import (
    CommonFlags,
    DataDirOption,
    DeviceOption,
    ForceOption,
    SchedulerOption,
    SetOption,
    TorchDeviceOption,
    WorkersOption,
    app,
    check_out_folder,
    console,
    device_values,
    fail,
    user_input,
    with_common_flags,
)
from hnntrain.cli.display import RunsProgress, print_results


def _run_values(config: Optional[Path], device: Optional[str], scheme: Optional[str], set_: list[str],
                flags: CommonFlags, torch_device: Optional[str], data_dir: Optional[Path]) -> dict[str, Any]:
    """What the user asked for, as dotted values: file < --device/--scheme < --set < flags."""
    from hnntrain.experiments.sweep import parse_scheme_spec
    from hnntrain.io.resolve import load_toml, parse_assignments

    values = load_toml(config) if config is not None else {}
    values.update(device_values(device))
    if scheme:
        values.update(parse_scheme_spec(scheme))
    explicit = parse_assignments(set_)
    values.update(explicit)
    if torch_device:
        values["runtime.device"] = torch_device
    if data_dir:
        values["data.dir"] = str(data_dir)
    return flags.apply(values, explicit)


def _resume_config(out: Path, asked: dict[str, Any]):
    """The config to continue in ``out``: the interrupted run's, with what the user asked on top;
    asking for a different value of anything that changes results is a conflict."""
    import json

    from hnntrain.engine.run import CHECKPOINT, RESULT, checkpoint_config
    from hnntrain.io.resolve import build_config
    from hnntrain.spec.config import ConfigError, config_hash, dotted_config

    if not (out / CHECKPOINT).exists():
        try:
            finished = json.loads((out / RESULT).read_text()).get("status") == "ok"
        except (OSError, ValueError, AttributeError):
            finished = False
        if finished:
            raise ConfigError("--resume", f"{out} holds a finished run ({out / RESULT}); nothing to continue (pass "
                                          "--force without --resume to train it again)")
    saved = checkpoint_config(out)
    if saved is None:
        raise ConfigError("--resume", f"{out} holds no checkpoint of an interrupted run; run without --resume")
    before = dotted_config(saved)
    cfg = build_config({**before, **asked})
    if config_hash(cfg) != config_hash(build_config(before)):
        after = dotted_config(cfg.to_dict())
        changed = [k for k in asked if not k.startswith("runtime.") and after.get(k) != before.get(k)]
        what = ", ".join(f"{k}={asked[k]!r} (the run has {before.get(k)!r})" for k in changed) or "the config"
        raise ConfigError("--resume", f"{out} was started with other settings: {what}; drop those flags to "
                                      "continue it, or start a new run with another --out (or --force)")
    return cfg


@app.command("run")
@with_common_flags
def run_command(
    config: Annotated[Optional[Path], typer.Argument(metavar="CONFIG", help="TOML config file (tables [device], "
                                                     "[scheme], [train] ...).", show_default=False)] = None,
    device: DeviceOption = None,
    scheme: Annotated[Optional[str], typer.Option("--scheme", metavar="SPEC", help="Update scheme, with options "
                                                  "after a colon: crus:accumulate=true (hnntrain schemes).")] = None,
    set_: SetOption = [],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", metavar="DIR", help="Folder for result.json and the "
                                                "checkpoint (default: runs/<scheme>-<config hash>).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted run in --out from its "
                                         "checkpoint; its config comes from there.")] = False,
    force: ForceOption = False,
    keep_checkpoint: Annotated[bool, typer.Option("--keep-checkpoint", help="Keep OUT/checkpoint.pt after the "
                                                  "run finishes.")] = False,
    torch_device: TorchDeviceOption = None,
    data_dir: DataDirOption = None,
    flags: CommonFlags = CommonFlags(),
) -> None:
    """Train one configuration and write OUT/result.json."""
    from hnntrain.engine.run import CHECKPOINT, RESULT, load_datasets, run
    from hnntrain.experiments.compare import run_label
    from hnntrain.experiments.summary import describe_hardware, summarize
    from hnntrain.io.resolve import build_config
    from hnntrain.spec.config import ConfigError, config_hash, flatten_config

    with user_input():
        asked = _run_values(config, device, scheme, set_, flags, torch_device, data_dir)
        if resume:
            if out is None and not asked:
                raise ConfigError("--resume", "name the interrupted run's folder with --out DIR")
            if out is None:  # the default folder of exactly these settings
                out = Path("runs") / f"{run_label(build_config(asked).scheme.name)}-{config_hash(build_config(asked))[:8]}"
            cfg = _resume_config(out, asked)
        else:
            cfg = build_config(asked)
            out = out or Path("runs") / f"{run_label(cfg.scheme.name)}-{config_hash(cfg)[:8]}"
            check_out_folder(out)
            for name, what in ((RESULT, "a finished run"), (CHECKPOINT, "an interrupted run (continue it with --resume)")):
                if (out / name).exists() and not force:
                    raise ConfigError("--out", f"{out} already holds {what}: {out / name}; pass --force to "
                                               "overwrite it, or another --out")
        console.print(f"{cfg.scheme.name} on {describe_hardware(flatten_config(cfg))} -> {out}", highlight=False,
                      markup=False)
        datasets = load_datasets(cfg)  # a data error is one line before the run folder exists
        label = cfg.scheme.name
        try:
            with RunsProgress(epochs={label: cfg.train.epochs}) as display:
                result = run(cfg, out, resume=resume, keep_checkpoint=keep_checkpoint, datasets=datasets,
                             progress=lambda *p: display.update(label, label, *p),
                             on_epoch=lambda record: display.epoch_line(label, record))
        except KeyboardInterrupt:
            fail(f"interrupted; checkpoint in {out}; continue with: hnntrain run --resume --out {out}")
    print_results([summarize(result)], f"result: {out / RESULT}")
    if result["status"] != "ok":
        fail(result["error"])


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


def _execute(sweep, store, store_path: Path, workers: int, scheduler: Optional[str], retry_failed: bool = False,
             **execute_args):
    """Execute a sweep (or a comparison) with the progress display; returns the outcome."""
    from hnntrain.experiments.executors import check_data
    from hnntrain.experiments.summary import describe_hardware
    from hnntrain.experiments.sweep import execute
    from hnntrain.io.resolve import build_config
    from hnntrain.spec.config import flatten_config

    runs = sweep.runs()
    epochs = {r.config_hash: build_config(r.values).train.epochs for r in runs}
    check_data(runs)  # a missing dataset is one line now, not a failed run per worker
    n_workers = workers or os.cpu_count() or 1
    state: dict[str, Any] = {}

    def on_start(total: int, skipped: int, todo: int) -> None:
        where = f"Dask at {scheduler}" if scheduler else f"{max(min(n_workers, todo), 1)} local process(es)"
        console.print(f"{sweep.name}: {describe_hardware(flatten_config(build_config(runs[0].values)), set(sweep.grid))}",
                      highlight=False, markup=False)
        console.print(f"{sweep.name}: {total} runs, {skipped} already in {store_path}, "
                      + (f"{todo} to do on {where}" if todo else "nothing to do"), highlight=False, markup=False)
        noun = "schemes" if set(sweep.grid) == {"scheme"} else "runs"
        state["display"] = display = RunsProgress(total, skipped, {h: epochs[h] for h in epochs}, noun=noun)
        display.__enter__()

    labels = execute_args.pop("labels", {})

    def label(run) -> str:
        return labels.get(run.config_hash, run.label)

    hooks = dict(on_start=on_start,
                 on_progress=lambda run, *p: state["display"].update(run.config_hash, label(run), *p),
                 on_epoch=lambda run, record: state["display"].epoch_line(label(run), record),
                 on_finish=lambda run, result, lost: state["display"].finish(run.config_hash, label(run), result, lost))
    try:
        outcome = execute(sweep, store, workers=n_workers, scheduler=scheduler, retry_failed=retry_failed,
                          **hooks, **execute_args)
    finally:
        if "display" in state:
            state["display"].__exit__(None, None, None)
    if outcome.lost:
        fail(f"{len(outcome.lost)} run(s) lost to dead workers; run the same command again to finish them")
    return outcome


def shared_settings(device: Optional[str], set_: list[str], flags: CommonFlags, torch_device: Optional[str],
                    data_dir: Optional[Path]) -> dict[str, Any]:
    """The settings every run of a comparison (or a tuning) shares, as dotted values:
    --device (default abrupt-ltd) < --set < the common flags (a flag contradicting --set is an
    error); the torch device; the data."""
    from hnntrain.io.resolve import parse_assignments

    base: dict[str, Any] = device_values(device or "abrupt-ltd")
    explicit = parse_assignments(set_)
    base.update(explicit)
    base = flags.apply(base, explicit)
    if torch_device:
        base["runtime.device"] = torch_device
    if data_dir:  # absolute: the same data gives the same config hash from any folder
        base["data.dir"] = str(data_dir.resolve())
    return base


@app.command("compare")
@with_common_flags
def compare_command(
    device: DeviceOption = None,
    schemes: Annotated[str, typer.Option("--schemes", metavar="SPECS", help="Schemes separated by spaces (or commas "
                                         "between plain names); a variant takes options after a colon: "
                                         "crus:accumulate=true,track=false")] = " ".join(
        __import__("hnntrain.experiments.compare", fromlist=["x"]).DEFAULT_SCHEMES),
    set_: SetOption = [],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", metavar="DIR", help="Folder (default: "
                                                "runs/compare-<settings hash>); the same command again continues "
                                                "there.")] = None,
    workers: WorkersOption = 0,
    scheduler: SchedulerOption = None,
    force: ForceOption = False,
    wide: Annotated[bool, typer.Option("--wide", help="Every column, full headers (wider than 80 columns).")] = False,
    torch_device: TorchDeviceOption = None,
    data_dir: DataDirOption = None,
    tuned: Annotated[Optional[Path], typer.Option("--tuned", metavar="FILE", help="tuned.toml from hnntrain tune: "
                                                  "each scheme's chosen learning rate and options (every scheme "
                                                  "must be in it).")] = None,
    flags: CommonFlags = CommonFlags(),
) -> None:
    """Compare update schemes on the same hardware: table, compare.md/json, figures. Resumable:
    finished schemes are kept, an interrupted one continues from its checkpoint."""
    import hashlib
    import json

    from hnntrain.experiments.compare import (
        STORE,
        check_out,
        compare,
        compare_sweep,
        recorded_settings,
    )

    names = _scheme_specs(schemes)
    with user_input():
        settings = None
        if tuned is not None:
            from hnntrain.experiments.tune import load_tuned, tuned_for

            settings = tuned_for(load_tuned(tuned), names, str(tuned))
        base = shared_settings(device, set_, flags, torch_device, data_dir)
        if not base.get("train.eval_every"):  # ten accuracy points per epoch for the figure
            base["train.eval_every"] = max((base.get("train.samples") or 60000) // 10, 1)
        if out is None:
            digest = hashlib.sha256(json.dumps([recorded_settings(base, settings), names], sort_keys=True,
                                               default=str).encode()).hexdigest()
            out = Path("runs") / f"compare-{digest[:8]}"
        check_out_folder(out)
        check_out(out, recorded_settings(base, settings), force)
        labels = {r.config_hash: str(r.point["scheme"]) for r in compare_sweep(base, names, settings).runs()}

        def run_sweep(sweep, store, run_dir):
            return _execute(sweep, store, out / STORE, workers, scheduler, labels=labels, run_dir=run_dir)

        try:
            rows, title = compare(base, names, out, run_sweep, settings)
        except KeyboardInterrupt:
            fail(f"interrupted; finished schemes are kept in {out / STORE} and the interrupted one has its "
                 f"checkpoint in {out}/<scheme>/; continue with the same command (--out {out})")
    print_results(rows, title, wide=wide)
    console.print(f"written: {out / 'compare.md'}, {out / 'compare.json'}, {out / 'accuracy.png'}, "
                  f"{out / 'update-noise.png'}; runs in {out}/<scheme>/", highlight=False, markup=False)


def _open_store(path: Path, create: bool = False):
    from hnntrain.experiments.store import ResultStore

    with user_input():
        return ResultStore(path, create=create)


def _execute_sweep(sweep, results, store_path: Path, workers: int, scheduler: Optional[str],
                   retry_failed: bool = False) -> None:
    """A sweep with progress, its summary line, and the Ctrl-C message that says how to continue."""
    import time

    from hnntrain.experiments.sweep import runs_folder

    started = time.monotonic()
    try:
        with user_input():
            outcome = _execute(sweep, results, store_path, workers, scheduler, retry_failed)
    except KeyboardInterrupt:
        fail(f"interrupted; {len(results)} runs are stored in {store_path}; run the same command again to "
             f"continue (runs in flight continue from their checkpoints in {runs_folder(results)}/)")
    console.print(f"sweep {sweep.name}: {outcome.finished} finished, {outcome.failed} failed, {outcome.skipped} "
                  f"skipped (stored) in {time.monotonic() - started:.0f} s; store: {store_path}",
                  highlight=False, markup=False)


@app.command("sweep")
@with_common_flags
def sweep_command(
    sweep_file: Annotated[Path, typer.Argument(metavar="SWEEP.toml", help='Sweep file: [base] "dotted.key" = value, '
                                               '[grid] "dotted.key" = [values] (docs/sweeps.md).')],
    store: Annotated[Optional[Path], typer.Option("--store", metavar="FILE", help="Results store (SQLite); "
                                                  "default: runs/<sweep name>.sqlite.")] = None,
    workers: WorkersOption = 0,
    scheduler: SchedulerOption = None,
    data_dir: DataDirOption = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run again the runs stored as failed.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the runs and what is already stored; "
                                          "train nothing.")] = False,
    flags: CommonFlags = CommonFlags(),
) -> None:
    """Run a grid of configs; every finished run is committed to the store; rerun to resume.
    The common flags set every run's value (a key the grid varies cannot be set)."""
    from hnntrain.experiments.sweep import load_sweep, plan

    with user_input():
        sweep = load_sweep(sweep_file)
        sweep.base.update(flags.apply(sweep.base, grid=sweep.grid, where=str(sweep_file)))
        if data_dir:  # absolute, so that the same data gives the same config hash from any directory
            sweep.base["data.dir"] = str(data_dir.resolve())
        runs = sweep.runs()  # every point validated before anything starts
    store_path = store or Path("runs") / f"{sweep.name}.sqlite"
    if dry_run:
        todo, done = (runs, []) if not store_path.exists() else plan(sweep, _open_store(store_path), retry_failed)
        done_hashes = {r.config_hash for r in done}
        for run in runs:
            console.print(f"{'stored' if run.config_hash in done_hashes else 'to do '}  {run.config_hash}  {run.label}",
                          highlight=False, markup=False)
        console.print(f"{len(runs)} runs: {len(done)} stored, {len(todo)} to do ({store_path})", highlight=False,
                      markup=False)
        return
    _execute_sweep(sweep, _open_store(store_path, create=True), store_path, workers, scheduler, retry_failed)


@app.command("reproduce")
@with_common_flags
def reproduce_command(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder: store.sqlite, claims.md/json, "
                                      "report/ (the same command again continues there).")] = Path("runs/reproduce"),
    only: Annotated[Optional[str], typer.Option("--only", metavar="NAMES", help="Comma-separated subset of: "
                                                "schemes, sensing, c2c, nonlinearity.")] = None,
    workers: WorkersOption = 0,
    scheduler: SchedulerOption = None,
    data_dir: DataDirOption = None,
    flags: CommonFlags = CommonFlags(),
) -> None:
    """Run the sweeps behind the paper's claims and write the claims table (resumable). Below
    the full protocol (all 60,000 samples, 3 seeds, the shipped hardware) verdicts are
    marked indicative."""
    from hnntrain.experiments.report import store_report
    from hnntrain.experiments.reproduce import (
        claim_sweeps,
        describe_scale,
        evaluate,
        full_protocol,
        planned_runs,
        qualify,
        write_claims,
    )

    with user_input():
        check_out_folder(out)
        sweeps = claim_sweeps(None, None, str(data_dir.resolve()) if data_dir else None,
                              [s.strip() for s in only.split(",")] if only else None)
        for sweep in sweeps:
            sweep.base.update(flags.apply(sweep.base, grid=sweep.grid, where=f"claim sweep {sweep.name}"))
            sweep.runs()  # validate every sweep before the first run
    store_path = out / "store.sqlite"
    results = _open_store(store_path, create=True)
    for sweep in sweeps:
        _execute_sweep(sweep, results, store_path, workers, scheduler)
    runs = planned_runs(sweeps, results)
    for sweep in sweeps:
        store_report([r for r in runs if r.sweep == sweep.name], out / "report" / sweep.name, title=sweep.name)
    claims = qualify(evaluate(runs), {s.name for s in sweeps}, full_protocol(sweeps))
    path = write_claims(claims, out, describe_scale(sweeps))
    console.print(path.read_text(), highlight=False, markup=False)
    console.print(f"written: {path}, {out / 'claims.json'}, reports in {out / 'report'}/<sweep>/report.md",
                  highlight=False, markup=False)
