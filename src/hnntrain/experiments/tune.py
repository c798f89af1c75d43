"""Equal tuning for every scheme: the same search budget on a validation split, then the test set.

A comparison is only as fair as its least tuned scheme. ``hnntrain tune`` gives every scheme the
same protocol:

1. **Split.** ``validation`` images at the end of the training set are held out
   (``train.validation``); every trial trains on the images before them (``train.samples``
   counts within those) and is scored on the held-out ones. No trial ever sees the test set.
2. **Budget.** Every scheme gets the same number of ``trials``, each with the same training
   samples, epochs, seeds and hardware. A trial is one run of the sweep executor, so the search
   is parallel and resumable (trials are stored by config hash in the results store).
3. **Search.** The searched dimensions are the learning rate ``train.lr`` and the scheme's own
   key options (:data:`SEARCH_SPACES`); options fixed in a scheme spec
   (``crus:accumulate=true``) stay fixed. Trial ``i`` of ``n`` is the point

       u_0 = (i + 1/2) / n,    u_k = phi_{b_k}(i + 1)   (b = 2, 3, 5, 7, 11, 13)

   of a Hammersley set (Hammersley & Handscomb, *Monte Carlo Methods*, 1964; ``phi_b`` is the
   base-b radical inverse), mapped to each dimension's range on a log (or linear) scale and
   rounded to 3 significant digits. The learning rate alone therefore takes the same ``n``
   values, an even log grid, for every scheme; the other dimensions are spread evenly across
   those trials instead of multiplying them, so a scheme with more options gets the same number
   of runs, not more (a product grid would give it more).
4. **Choice.** Per scheme, the trial with the best validation accuracy (mean over seeds) wins;
   ties go to the earlier trial. A diverged trial counts as a trial with no accuracy.
5. **Test.** Each scheme is trained once more with its chosen settings on the whole training
   set (no split) and scored on the test set, as ``hnntrain compare`` would run it.

The choice is written to a TOML file (``tuned.toml``) that ``hnntrain compare --tuned`` reads.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hnntrain.experiments.store import ResultStore
from hnntrain.experiments.sweep import SCHEME_KEY, Sweep, SweepRun
from hnntrain.spec.config import ConfigError

TUNED = "tuned.toml"

@dataclass(frozen=True)
class Dimension:
    """One searched config key over [low, high]."""

    key: str
    """Dotted key: ``train.lr`` or ``scheme.<option>``."""
    low: float
    high: float
    log: bool = True
    """Spread on a log scale (for rates and thresholds: their effect is multiplicative)."""
    integer: bool = False

    def value(self, u: float) -> float | int:
        """The value at ``u`` in [0, 1): ``low * (high/low)**u`` (log) or ``low + u (high - low)``."""
        x = self.low * (self.high / self.low) ** u if self.log else self.low + u * (self.high - self.low)
        if self.integer:
            return round(x)
        return float(f"{x:.3g}")


LEARNING_RATE = Dimension("train.lr", 0.01, 1.0)
"""Every scheme's learning rate: two decades around the default 0.1."""

SEARCH_SPACES: dict[str, tuple[Dimension, ...]] = {
    "fp": (),
    "sgd": (),
    "neurosim": (),
    "nonlinearity_aware": (),
    "unidirectional": (Dimension("scheme.refresh_threshold", 0.2, 0.8, log=False),),
    "mixed_precision": (Dimension("scheme.refresh_threshold", 0.2, 0.8, log=False),),
    "threshold": (Dimension("scheme.threshold", 0.05, 1.0),),
    "manhattan": (Dimension("scheme.batch", 4, 256, integer=True), Dimension("scheme.pulses", 1, 4, integer=True)),
    "tiki_taka": (Dimension("scheme.transfer_lr", 0.02, 2.0), Dimension("scheme.transfer_every", 1, 10, integer=True)),
    "crus": (Dimension("scheme.request_pulses", 0.5, 4.0), Dimension("scheme.noise_window", 10.0, 1000.0)),
}
"""The key options searched per scheme besides ``train.lr``. A scheme without an entry is tuned
on its learning rate only (and gets the same number of trials). Manhattan's step is ``pulses``
whatever the gradient's size (with its default ``min_request = 0`` the learning rate has no
effect), so its trials search the mini-batch and the pulse count."""

_BASES = (2, 3, 5, 7, 11, 13)


def radical_inverse(i: int, base: int) -> float:
    """phi_b(i): the digits of i in base b mirrored behind the radix point (phi_2(6) = 0.011b)."""
    out, scale = 0.0, 1.0 / base
    while i:
        i, digit = divmod(i, base)
        out += digit * scale
        scale /= base
    return out


def dimensions(spec: str) -> tuple[Dimension, ...]:
    """The searched dimensions of a scheme spec: the learning rate, then the scheme's options
    that the spec does not fix."""
    from hnntrain.experiments.sweep import parse_scheme_spec

    values = parse_scheme_spec(spec)
    own = tuple(d for d in SEARCH_SPACES.get(values["scheme.name"], ()) if d.key not in values)
    if len(own) + 1 > len(_BASES):
        raise ConfigError(f"scheme {spec!r}", f"at most {len(_BASES) - 1} options can be searched")
    return (LEARNING_RATE, *own)


def trial_points(spec: str, trials: int) -> list[dict[str, Any]]:
    """The ``trials`` sweep points of one scheme spec (see the module docstring)."""
    dims = dimensions(spec)
    points = []
    for i in range(trials):
        point: dict[str, Any] = {SCHEME_KEY: spec}
        point[dims[0].key] = dims[0].value((i + 0.5) / trials)
        for dim, base in zip(dims[1:], _BASES):
            point[dim.key] = dim.value(radical_inverse(i + 1, base))
        points.append(point)
    return points


def search_sweep(base: dict[str, Any], schemes: list[str], trials: int, validation: int, name: str = "tune") -> Sweep:
    """Every scheme's trials as one sweep on the validation split; checks that each scheme gets
    exactly ``trials`` distinct runs (the equal budget)."""
    if trials < 1:
        raise ConfigError("--trials", f"must be >= 1 trial per scheme (got {trials})")
    if validation < 1:
        raise ConfigError("--validation", f"must be >= 1 held-out training image (got {validation})")
    if len(set(schemes)) != len(schemes):
        raise ConfigError("--schemes", "a scheme spec is listed twice")
    points = tuple(p for spec in schemes for p in trial_points(spec, trials))
    sweep = Sweep(name=f"{name}:search", base={**base, "train.validation": validation}, points=points,
                  source="--schemes")
    for spec, runs in trials_by_spec(sweep).items():
        distinct = len(runs)
        if distinct != trials:
            raise ConfigError("--trials", f"{spec}: {trials} trials give only {distinct} distinct settings (values "
                                          "are rounded to 3 digits); use fewer trials")
    return sweep


def trials_by_spec(sweep: Sweep) -> dict[str, list[SweepRun]]:
    """Each scheme spec's trials, in order. Two specs may share a trial (``tiki_taka`` trying
    transfer_every = 3 next to ``tiki_taka:transfer_every=3``): the sweep runs it once and it
    counts for both."""
    specs = list(dict.fromkeys(p[SCHEME_KEY] for p in sweep.points))
    return {spec: Sweep(sweep.name, sweep.base, points=tuple(p for p in sweep.points if p[SCHEME_KEY] == spec),
                        source=sweep.source).runs() for spec in specs}


@dataclass(frozen=True)
class Choice:
    """What the search chose for one scheme spec."""

    spec: str
    settings: dict[str, Any]
    """The chosen values of the searched keys (``train.lr``, ``scheme.<option>``)."""
    validation_accuracy: float | None
    """Mean over seeds on the validation split; None when every trial failed."""
    trials: int
    failed: int
    """Trials that diverged or failed (they count towards the budget)."""
    test_accuracy: float | None = None
    test_accuracy_std: float | None = None


def choose(sweep: Sweep, store: ResultStore) -> dict[str, Choice]:
    """The best stored trial per scheme spec of a search sweep (in trial order, ties to the
    earlier); a spec none of whose trials finished gets ``settings`` of its first trial and no
    accuracy."""
    stored = {r.config_hash: r for r in store.runs()}
    choices = {}
    for spec, runs in trials_by_spec(sweep).items():
        missing = [r.label for r in runs if r.config_hash not in stored]
        if missing:
            raise ConfigError("tune", f"{spec}: {len(missing)} trial(s) not in the store yet (e.g. {missing[0]}); "
                                      "run the search first")
        best, best_acc, failed = runs[0], None, 0
        for run in runs:
            result = stored[run.config_hash].result
            acc = result.get("validation_accuracy") if result.get("status") == "ok" else None
            if acc is None or not math.isfinite(acc):
                failed += 1
            elif best_acc is None or acc > best_acc:
                best, best_acc = run, acc
        settings = {k: v for k, v in best.point.items() if k != SCHEME_KEY}
        choices[spec] = Choice(spec, settings, best_acc, len(runs), failed)
    return choices


def test_sweep(base: dict[str, Any], choices: dict[str, Choice], name: str = "tune") -> Sweep:
    """Each scheme with its chosen settings, trained on the whole training set, scored on the
    test set (schemes whose trials all failed have nothing to test)."""
    base = {k: v for k, v in base.items() if k != "train.validation"}
    points = tuple({SCHEME_KEY: spec, **choice.settings} for spec, choice in choices.items()
                   if choice.validation_accuracy is not None)
    return Sweep(name=f"{name}:test", base=base, points=points, source="tuned settings")


def with_test_results(sweep: Sweep, store: ResultStore, choices: dict[str, Choice]) -> dict[str, Choice]:
    """``choices`` with the test accuracy of their stored test runs filled in."""
    stored = {r.config_hash: r for r in store.runs()}
    out = dict(choices)
    for spec, (run,) in trials_by_spec(sweep).items():  # by spec: two specs may have chosen one config
        row = stored.get(run.config_hash)
        acc = row.summary.get("test_accuracy") if row else None
        std = row.summary.get("test_accuracy_std") if row else None
        out[spec] = dataclasses.replace(choices[spec], test_accuracy=acc, test_accuracy_std=std)
    return out


# -- the tuned-settings file -------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else
                                                          ("inf" if value > 0 else "-inf"))
    if isinstance(value, str):
        return json.dumps(value)  # JSON's string escapes are TOML basic-string escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def write_tuned(path: Path, base: dict[str, Any], trials: int, validation: int, choices: dict[str, Choice]) -> None:
    """The tuned settings as TOML: the protocol in ``[tune]`` (with the shared settings every
    trial used), one ``[schemes."<spec>"]`` table per scheme with its ``settings``."""
    lines = ["# Written by `hnntrain tune` (protocol: docs/tuning.md). Use with `hnntrain compare --tuned FILE`.",
             "[tune]", f"trials = {trials}", f"validation = {validation}",
             "search = " + _toml_value("lr: log grid; options: Hammersley set; best mean validation accuracy"),
             "base = " + _toml_value({k: v for k, v in sorted(base.items()) if v is not None}), ""]
    for spec, choice in choices.items():
        if choice.validation_accuracy is None:
            lines += [f"# {spec}: all {choice.trials} trials failed; nothing chosen", ""]
            continue
        lines.append(f"[schemes.{json.dumps(spec)}]")
        lines.append(f"settings = {_toml_value(choice.settings)}")
        for key in ("validation_accuracy", "test_accuracy", "test_accuracy_std"):
            if getattr(choice, key) is not None:
                lines.append(f"{key} = {_toml_value(getattr(choice, key))}")
        lines += [f"trials = {choice.trials}", f"failed_trials = {choice.failed}", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def load_tuned(path: str | Path) -> dict[str, dict[str, Any]]:
    """``{scheme spec: {dotted key: value}}`` from a file :func:`write_tuned` wrote."""
    from hnntrain.io.resolve import read_toml

    data = read_toml(path, "write the tuned settings with `hnntrain tune`")
    schemes = data.get("schemes")
    if not isinstance(schemes, dict) or not schemes:
        raise ConfigError(f"{path}: schemes", "no [schemes.\"<spec>\"] tables; write the file with `hnntrain tune`")
    out = {}
    for spec, table in schemes.items():
        settings = table.get("settings") if isinstance(table, dict) else None
        if not isinstance(settings, dict):
            raise ConfigError(f"{path}: schemes.{spec}.settings", "expected a table of dotted keys, "
                                                                  'e.g. settings = { "train.lr" = 0.1 }')
        bad = [k for k in settings if not (k == "train.lr" or k.startswith("scheme."))]
        if bad:
            raise ConfigError(f"{path}: schemes.{spec}.settings.{bad[0]}", "only train.lr and scheme.<option> keys "
                                                                           "are tuned settings")
        out[spec] = dict(settings)
    return out


def tuned_for(tuned: dict[str, dict[str, Any]], schemes: list[str], source: str) -> dict[str, dict[str, Any]]:
    """The tuned settings of each of ``schemes``; a scheme the file does not hold is an error
    (a table must not mix tuned and untuned schemes silently)."""
    missing = [s for s in schemes if s not in tuned]
    if missing:
        raise ConfigError(f"{source}: schemes", f"no tuned settings for {missing[0]!r} (the file has "
                                                f"{', '.join(tuned)}); tune it with `hnntrain tune --schemes "
                                                f"{missing[0]}`, or leave it out of --schemes")
    return {s: tuned[s] for s in schemes}


# -- the whole protocol --------------------------------------------------------------------------

def tune_markdown(choices: dict[str, Choice], title: str) -> str:
    """The tuning table: per scheme its budget, the chosen settings, validation and test accuracy."""
    lines = [f"## {title}", "", "| scheme | trials (failed) | chosen settings | validation acc. % | test acc. % |",
             "| --- | --- | --- | --- | --- |"]
    for spec, c in choices.items():
        settings = ", ".join(f"{k.split('.', 1)[1]}={v}" for k, v in c.settings.items())
        val = f"{c.validation_accuracy * 100:.2f}" if c.validation_accuracy is not None else "all failed"
        test = "-" if c.test_accuracy is None else f"{c.test_accuracy * 100:.2f}" + (
            f" ± {c.test_accuracy_std * 100:.2f}" if c.test_accuracy_std else "")
        lines.append(f"| {spec} | {c.trials} ({c.failed}) | {settings if c.validation_accuracy is not None else '-'} | "
                     f"{val} | {test} |")
    return "\n".join(lines) + "\n"


def tune_title(base: dict[str, Any], trials: int, validation: int) -> str:
    from hnntrain.io.resolve import build_config

    cfg = build_config(base)
    device = cfg.device.preset or cfg.device.table or cfg.device.model
    return (f"tuned on {device}: {trials} trials per scheme, {cfg.train.epochs} epoch(s) of "
            f"{cfg.train.samples or 'all'} samples, {cfg.train.replicas} seed(s), validation = last {validation} "
            "training images; test: the chosen settings trained without the split, scored on the test set")


def tune(base: dict[str, Any], schemes: list[str], trials: int, validation: int, store: ResultStore, out: Path,
         run_sweep: Callable[[Sweep, ResultStore], Any] | None = None, name: str = "tune") -> dict[str, Choice]:
    """The whole protocol: search on the validation split, choose, test; writes
    ``out/tuned.toml`` and ``out/tune.md``. ``run_sweep(sweep, store)`` executes a sweep (default:
    in this process); stored trials are skipped, so calling again resumes."""
    from hnntrain.engine.run import load_datasets
    from hnntrain.experiments.sweep import execute
    from hnntrain.io.resolve import build_config

    run_sweep = run_sweep or functools.partial(execute, workers=1)
    search = search_sweep(base, schemes, trials, validation, name)
    size = load_datasets(build_config(base))[0].images.shape[0]
    if validation >= size:
        raise ConfigError("--validation", f"holds out {validation} of the {size} training images; it must be "
                                          f"smaller (e.g. {size // 6})")
    run_sweep(search, store)
    choices = choose(search, store)
    final = test_sweep(base, choices, name)
    if final.points:
        run_sweep(final, store)
    choices = with_test_results(final, store, choices)
    out.mkdir(parents=True, exist_ok=True)
    write_tuned(out / TUNED, base, trials, validation, choices)
    (out / "tune.md").write_text(tune_markdown(choices, tune_title(base, trials, validation)))
    return choices
