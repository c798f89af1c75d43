"""Commands that read finished runs: ``results`` (a store as a table, CSV or JSON), ``report``
(Markdown and figures of a store), ``plot-un`` (update noise of result.json files) and
``cost`` (price finished runs again)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from hnntrain.cli.common import app, check_out_folder, console, fail, user_input
from hnntrain.cli.display import print_results
from hnntrain.cli.training import _open_store

StoreArgument = Annotated[Path, typer.Argument(metavar="STORE", help="Results store (.sqlite) written by hnntrain "
                                                                     "sweep, compare or reproduce.")]
SweepOption = Annotated[Optional[str], typer.Option("--sweep", metavar="NAME", help="Only the runs of this sweep.")]


@app.command("results")
def results_command(
    store: StoreArgument,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV: a header, then one row per run.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: every run with its full resolved config, "
                                          "summary and status.")] = False,
    sweep: SweepOption = None,
    wide: Annotated[bool, typer.Option("--wide", help="Every column, full headers.")] = False,
) -> None:
    """List the runs in a results store (a table, CSV or JSON)."""
    from hnntrain.experiments.store import runs_csv
    from hnntrain.experiments.summary import varying_keys

    runs = _open_store(store).runs(sweep)
    if csv:
        sys.stdout.write(runs_csv(runs))
        return
    if as_json:
        rows = [{"config_hash": r.config_hash, "sweep": r.sweep, "status": r.status, "config": r.config,
                 "summary": r.summary, "seconds": r.seconds, "host": r.host, "finished_at": r.finished_at}
                for r in runs]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from hnntrain.experiments.report import scheme_label

    keys = [k for k in varying_keys(runs) if not k.startswith("scheme.")]
    rows = [{**r.summary, "scheme": scheme_label(r.config), "status": r.status} for r in runs]
    extra = [("hash", [r.config_hash[:8] for r in runs])] + [(k, [str(r.config.get(k, "")) for r in runs])
                                                              for k in keys]
    print_results(rows, f"{store}: {len(runs)} runs", wide=wide, extra=extra)


@app.command("report")
def report_command(
    store: StoreArgument,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for report.md and the figures "
                                      "(rewritten: they are derived from the store).")] = Path("runs/report"),
    sweep: SweepOption = None,
) -> None:
    """Markdown and PNG report of a results store: accuracy versus every swept key, UN versus epoch."""
    from hnntrain.experiments.report import store_report

    runs = _open_store(store).runs(sweep)
    if not runs:
        fail(f"{store}: holds no runs{' of sweep ' + sweep if sweep else ''}; run hnntrain sweep first")
    with user_input():
        check_out_folder(out)
        path = store_report(runs, out, title=f"{store.name}{': ' + sweep if sweep else ''}")
    figures = sorted(p.name for p in out.glob("*.png"))
    console.print(f"report written: {path} ({len(runs)} runs; figures: {', '.join(figures)})", highlight=False,
                  markup=False)


def _load_result(path: Path) -> dict:
    """A result.json (or a run folder holding one), checked enough to plot."""
    from hnntrain.spec.config import ConfigError

    file = path / "result.json" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(str(file), "no result.json there; pass a run folder or its result.json")
    try:
        result = json.loads(file.read_text())
        result["config"]["scheme"]["name"], result["config"]["device"]  # noqa: B018 - the keys plot-un needs
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(str(file), "not JSON; pass a result.json written by hnntrain run") from None
    except (KeyError, TypeError):
        raise ConfigError(str(file), "JSON, but not an hnntrain result (no config); pass a result.json written "
                                     "by hnntrain run") from None
    return result


@app.command("plot-un")
def plot_un_command(
    results: Annotated[list[Path], typer.Argument(metavar="RESULT...", help="result.json files (or run folders).")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="PNG", help="PNG to write (rewritten: a figure is "
                                      "derived from the results).")] = Path("update-noise.png"),
) -> None:
    """Plot update noise versus training samples for finished runs."""
    from hnntrain.experiments.figures import plot_update_noise

    with user_input():
        loaded = {}
        for path in results:
            res = _load_result(path)
            cfg = res["config"]
            loaded[f"{cfg['scheme']['name']} / {cfg['device'].get('preset') or cfg['device']['model']} ({path})"] = res
        plot_update_noise(loaded, out)
    console.print(f"plot written to {out}", highlight=False, markup=False)


@app.command("cost")
def cost_command(
    target: Annotated[Path, typer.Argument(metavar="TARGET", help="A result.json, a run folder, or a results store "
                                           "(.sqlite).")],
    set_: Annotated[list[str], typer.Option("--set", "-s", metavar="KEY=VALUE", help="Another price: --set "
                                            "cost.pulse_preset=ecram, --set cost.adc_fom_j_per_step=5e-15 "
                                            "(repeatable).")] = [],
    sweep: SweepOption = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", metavar="FILE", help="Also write the priced runs to "
                                                     "this JSON file.")] = None,
) -> None:
    """Price finished runs (energy, latency per sample; area per synapse) without training again."""
    from rich.markup import escape
    from rich.table import Table

    from hnntrain.experiments.pricing import (
        cost_rows,
        format_energy,
        format_latency,
        same_hardware,
    )
    from hnntrain.experiments.report import scheme_label
    from hnntrain.io.resolve import parse_assignments
    from hnntrain.spec.config import dotted_config

    with user_input():
        overrides = parse_assignments(set_)
        if target.suffix in (".sqlite", ".db") or (target.is_file() and target.suffix != ".json"):
            entries = [(f"{r.config_hash[:8]} {scheme_label(r.config)}", r.result) for r in _open_store(target).runs(sweep)]
        else:
            result = _load_result(target)
            entries = [(scheme_label(dotted_config(result["config"])), result)]
        rows = cost_rows(entries, overrides, group=same_hardware)
    if not rows:
        fail(f"{target}: no finished run to price")
    table = Table(title=escape(f"hardware cost of {target}" + (f" with {', '.join(set_)}" if set_ else "")))
    for column in ("run", "test acc. %", "energy/sample", "latency/sample", "µm²/synapse", "overhead µm²", "Pareto",
                   "pulses", "sensing", "digital", "refresh", "extra array", "fwd/bwd"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for r in rows:
        e = r["energy_breakdown"]
        table.add_row(escape(r["label"]), f"{100 * r['test_accuracy']:.2f}", format_energy(r["energy_j_per_sample"]),
                      format_latency(r["latency_s_per_sample"]), f"{r['area_um2_per_synapse']:.3g}",
                      f"{r['area_overhead_um2_per_synapse']:.3g}", "★" if r["pareto"] else "",
                      *(format_energy(e[k]) for k in ("pulses", "sensing", "digital", "refresh", "extra_array_reads",
                                                      "forward_backward")))
    console.print(table)
    console.print("★: on the accuracy-energy Pareto front among runs on the same hardware; energy in J per training "
                  "sample, area per synapse (docs/cost.md)", highlight=False, markup=False)
    if json_out is not None:
        with user_input():
            json_out.write_text(json.dumps(rows, indent=2) + "\n")
        console.print(f"written: {json_out}", highlight=False, markup=False)
