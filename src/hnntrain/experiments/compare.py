"""Scheme comparison under identical hardware: a sweep over schemes.

Every scheme runs on the same device model and the same device-to-device draws (they derive
from the run seed, which all schemes share), with the same pulse cap, ADC resolution and
sensing interval; seeds are replicas trained in lockstep.

A comparison is a small sweep (grid: the scheme specs) with the sweep's store, executor,
resume and progress: finished schemes are committed to ``OUT/compare.sqlite`` and skipped when
the same comparison is started again, an interrupted scheme continues from its checkpoint in
``OUT/<scheme>/``, and ``--workers`` trains several schemes at once. ``compare.json``,
``compare.md`` and the figures are rewritten from the store each time.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Callable

from hnntrain.experiments.pricing import cost_figures, cost_rows
from hnntrain.experiments.store import ResultStore
from hnntrain.experiments.summary import describe_hardware, markdown_table, summarize
from hnntrain.experiments.sweep import SCHEME_KEY, Sweep, SweepRun, execute
from hnntrain.spec.config import ConfigError

DEFAULT_SCHEMES = ("fp", "sgd", "unidirectional", "threshold", "manhattan", "mixed_precision", "tiki_taka",
                   "nonlinearity_aware", "crus", "crus:accumulate=true")
STORE = "compare.sqlite"


def run_label(spec: str) -> str:
    """A file-system-safe directory name for a scheme spec."""
    return "".join(c if c.isalnum() or c in "_-" else "-" for c in spec)


def compare_sweep(base: dict[str, Any], schemes: list[str], tuned: dict[str, dict[str, Any]] | None = None) -> Sweep:
    """The comparison as a sweep: the shared hardware ``base``, one run per scheme spec; with
    ``tuned`` (``hnntrain tune``'s choice per spec: ``train.lr``, ``scheme.<option>``) each spec
    runs with its own settings on top of ``base``."""
    if any(k.startswith("scheme.") and k != "scheme.max_pulses" for k in base):
        raise ConfigError("scheme", "use --schemes (with name:option=value variants) to choose schemes")
    if tuned:
        points = tuple({SCHEME_KEY: spec, **tuned.get(spec, {})} for spec in schemes)
        return Sweep(name="compare", base=dict(base), points=points, source="--schemes with --tuned")
    return Sweep(name="compare", base=dict(base), grid={SCHEME_KEY: list(schemes)}, source="--schemes")


def recorded_settings(base: dict[str, Any], tuned: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """What compare.json records as the comparison's settings (and ``check_out`` compares):
    the shared ``base``, plus the tuned settings when there are any."""
    return {**base, "tuned": tuned} if tuned else base


def _settings(base: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(base, sort_keys=True, default=str))


def check_out(out: Path, base: dict[str, Any], force: bool) -> None:
    """Refuse to write over a comparison of other settings in ``out`` unless ``force``."""
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} is a file; pass a folder for the comparison")
    earlier = out / "compare.json"
    if force or not earlier.is_file():
        return
    try:
        settings = json.loads(earlier.read_text()).get("hardware")
    except (OSError, ValueError, AttributeError):
        settings = None
    if settings != _settings(base):
        raise ConfigError("--out", f"{out} holds a comparison of other settings ({earlier}); pass --force to "
                                   "replace its tables and figures (its finished runs stay in its store), "
                                   "or another --out")


def compare(base: dict[str, Any], schemes: list[str], out: Path,
            run_sweep: Callable[..., Any] | None = None,
            tuned: dict[str, dict[str, Any]] | None = None) -> tuple[list[dict], str]:
    """Run ``schemes`` on the shared ``base`` settings in ``out`` (resuming what an earlier
    call left), write compare.json/md and the figures; returns (rows, title).
    ``run_sweep(sweep, store, run_dir)`` executes the comparison's sweep (default: in this
    process, :func:`hnntrain.experiments.sweep.execute`). ``tuned``: per-spec settings from
    ``hnntrain tune``; the title says whether the schemes were tuned."""
    sweep = compare_sweep(base, schemes, tuned)
    runs = sweep.runs()  # every scheme and option validated before the first run starts
    out.mkdir(parents=True, exist_ok=True)
    with ResultStore(out / STORE) as store:
        (run_sweep or functools.partial(execute, workers=1))(sweep, store, run_dir=lambda run: out / _spec_label(run))
        stored = {r.config_hash: r for r in store.runs()}
    results = {run.point[SCHEME_KEY]: stored[run.config_hash].result for run in runs if run.config_hash in stored}
    title = describe_hardware(stored[runs[0].config_hash].config) if runs[0].config_hash in stored else "compare"
    title += "; tuned settings (hnntrain tune)" if tuned else "; not tuned"
    rows = write_outputs(out, results, recorded_settings(base, tuned), title)
    return rows, title


def _spec_label(run: SweepRun) -> str:
    return run_label(str(run.point[SCHEME_KEY]))


def write_outputs(out: Path, results: dict[str, dict], base: dict[str, Any], title: str) -> list[dict]:
    from hnntrain.experiments.figures import plot_accuracy, plot_update_noise

    rows = [summarize(r, label) for label, r in results.items()]
    priced = cost_rows(list(results.items()))
    on_front = {r["label"]: r["pareto"] for r in priced}
    for row in rows:  # on the accuracy-energy Pareto front of this comparison
        row["pareto_energy"] = on_front.get(row["scheme"], False)
    (out / "compare.json").write_text(json.dumps({"title": title, "hardware": _settings(base), "schemes": rows},
                                                 indent=2) + "\n")
    cost_md = cost_figures(priced, out, title)  # accuracy-energy front and energy breakdown
    (out / "compare.md").write_text(markdown_table(rows, title) + "".join(f"\n{line}" for line in cost_md))
    plot_accuracy(results, out / "accuracy.png", title=title)
    plot_update_noise(results, out / "update-noise.png", title=title)
    return rows
