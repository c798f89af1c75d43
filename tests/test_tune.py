"""The validation split (train.validation) and equal tuning (hnntrain tune): the split never
touches the test set, every scheme gets the same budget, the choice is the best trial on
validation, a rerun skips stored trials, and compare reads the stored choice. Tiny synthetic
data (conftest), a few seconds in all."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from typer.testing import CliRunner

from hnntrain.cli import app
from hnntrain.engine.run import build_result, run
from hnntrain.engine.train import Trainer
from hnntrain.experiments.compare import compare_sweep
from hnntrain.experiments.figures import plot_accuracy
from hnntrain.experiments.store import ResultStore
from hnntrain.experiments.summary import format_accuracy, summarize
from hnntrain.experiments.sweep import SCHEME_KEY, Sweep, execute
from hnntrain.experiments.tune import (
    SEARCH_SPACES,
    Choice,
    choose,
    load_tuned,
    radical_inverse,
    search_sweep,
    trial_points,
    trials_by_spec,
    tune,
    tuned_for,
    write_tuned,
)
from hnntrain.io.data import Dataset
from hnntrain.io.resolve import build_config
from hnntrain.schemes import SCHEMES
from hnntrain.spec.config import ConfigError

runner = CliRunner()
TINY = {"model.hidden": [8], "device.preset": "abrupt-ltd", "train.samples": 100}


# -- the validation split ---------------------------------------------------------------------

def test_validation_split_trains_on_the_head_and_evaluates_on_the_tail_without_the_test_set(blobs):
    train, _ = blobs
    cfg = build_config({**TINY, "train.samples": None, "train.validation": 100})
    trainer = Trainer(cfg, train.images, train.labels, None, None)  # no test set at all
    assert trainer.split == "validation"
    assert trainer.train_x.shape[0] == 300
    assert torch.equal(trainer.train_x[:, :-1], train.images[:300])  # bias column appended
    assert torch.equal(trainer.test_x[:, :-1], train.images[300:]) and torch.equal(trainer.test_y, train.labels[300:])
    history = trainer.fit()
    assert "validation_accuracy" in history[-1] and "test_accuracy" not in history[-1]


def test_a_validation_run_does_not_depend_on_the_test_set(tmp_path, blobs):
    train, test = blobs
    cfg = build_config({**TINY, "train.validation": 100, "train.eval_every": 50})
    garbage = Dataset(images=torch.rand_like(test.images), labels=torch.randint(0, 4, test.labels.shape))
    first = run(cfg, tmp_path / "a", datasets=(train, test))
    second = run(cfg, tmp_path / "b", datasets=(train, garbage))
    assert first["status"] == "ok" and first["evaluated_on"] == "validation"
    assert first["test_accuracy"] is None and 0 <= first["validation_accuracy"] <= 1
    for key in ("validation_accuracy", "replicas", "evals"):
        assert first[key] == second[key]
    plain = run(build_config(TINY), tmp_path / "c", datasets=(train, test))
    assert plain["evaluated_on"] == "test" and "validation_accuracy" not in plain
    # summaries and figures say which split they show
    row = summarize(first)
    assert row["test_accuracy"] is None and row["validation_accuracy"] == first["validation_accuracy"]
    assert format_accuracy(row).endswith("(validation)")
    plot_accuracy({"validation run": first, "test run": plain}, tmp_path / "accuracy.png")
    assert (tmp_path / "accuracy.png").stat().st_size > 0


def test_validation_must_leave_training_images(blobs):
    train, test = blobs
    with pytest.raises(ConfigError, match="train.validation"):
        Trainer(build_config({**TINY, "train.validation": 400}), train.images, train.labels, test.images, test.labels)
    with pytest.raises(ConfigError, match="train.validation"):
        build_config({"train.validation": -1})


# -- the search ---------------------------------------------------------------------------------

def test_radical_inverse():
    assert [radical_inverse(i, 2) for i in (1, 2, 3, 6)] == [0.5, 0.25, 0.75, 0.375]
    assert radical_inverse(5, 3) == pytest.approx(2 / 3 + 1 / 9)


def test_search_spaces_name_real_options():
    for name, dims in SEARCH_SPACES.items():
        assert name in SCHEMES, name
        fields = {f.name for f in dataclasses.fields(SCHEMES[name].Options)}
        for dim in dims:
            assert dim.key.startswith("scheme.") and dim.key.split(".", 1)[1] in fields, (name, dim.key)


def test_every_scheme_gets_the_same_budget_and_the_same_learning_rates():
    schemes = ["fp", "sgd", "threshold", "tiki_taka", "crus", "crus:accumulate=true", "tiki_taka:transfer_every=3"]
    sweep = search_sweep(TINY, schemes, trials=6, validation=50)
    by_spec = trials_by_spec(sweep)
    runs = sweep.runs()
    # tiki_taka's trial with transfer_every = 3 is also one of tiki_taka:transfer_every=3's: run once, counted twice
    assert len(runs) == 6 * len(schemes) - 1
    shared = ("train.samples", "train.epochs", "train.replicas", "train.seed", "train.validation", "device.preset")
    lrs = {}
    assert list(by_spec) == schemes
    for spec in schemes:
        mine = by_spec[spec]
        assert len(mine) == 6 and len({r.config_hash for r in mine}) == 6
        for r in mine:
            cfg = build_config(r.values)
            assert cfg.train.validation == 50 and cfg.train.samples == 100
            assert {k: r.values.get(k) for k in shared} == {k: runs[0].values.get(k) for k in shared}
        lrs[spec] = sorted(r.point["train.lr"] for r in mine)
    assert all(v == lrs["fp"] for v in lrs.values())  # one log grid of learning rates for everybody
    assert len(set(lrs["fp"])) == 6 and 0.01 <= min(lrs["fp"]) < max(lrs["fp"]) <= 1.0
    # the scheme's own options are searched (spread over the same trials), a fixed one stays fixed
    assert len({p["scheme.threshold"] for p in trial_points("threshold", 6)}) == 6
    fixed = by_spec["tiki_taka:transfer_every=3"]
    assert all("scheme.transfer_every" not in r.point and r.values["scheme.transfer_every"] == 3 for r in fixed)
    assert all("scheme.transfer_lr" in r.point for r in fixed)


def test_bad_budgets_are_one_line_errors():
    with pytest.raises(ConfigError, match="--trials"):
        search_sweep(TINY, ["sgd"], trials=0, validation=50)
    with pytest.raises(ConfigError, match="--validation"):
        search_sweep(TINY, ["sgd"], trials=2, validation=0)
    with pytest.raises(ConfigError, match="--schemes"):
        search_sweep(TINY, ["sgd", "sgd"], trials=2, validation=50)


def _fake_store(tmp_path, sweep: Sweep, accuracies: list[float | None]) -> ResultStore:
    """A store holding the sweep's runs with the given validation accuracies (None: failed)."""
    store = ResultStore(tmp_path / "fake.sqlite")
    for planned, acc in zip(sweep.runs(), accuracies):
        result = build_result(build_config(planned.values), None, "ok" if acc is not None else "failed", None)
        result["validation_accuracy"] = acc
        store.record(result, sweep.name)
    return store


def test_the_choice_is_the_best_trial_on_validation_ties_to_the_earlier(tmp_path):
    sweep = search_sweep(TINY, ["sgd", "threshold"], trials=4, validation=50)
    runs = sweep.runs()
    store = _fake_store(tmp_path, sweep, [0.5, 0.7, None, 0.7, None, None, None, None])
    choices = choose(sweep, store)
    assert choices["sgd"].validation_accuracy == 0.7 and choices["sgd"].failed == 1
    assert choices["sgd"].settings == {"train.lr": runs[1].point["train.lr"]}  # trial 2, not the tied trial 4
    assert choices["threshold"].validation_accuracy is None and choices["threshold"].failed == 4


def test_tune_chooses_the_best_stored_trial_tests_it_and_resumes(tmp_path, idx_dir):
    base = {**TINY, "data.dir": str(idx_dir)}
    schemes = ["sgd", "threshold"]
    store = ResultStore(tmp_path / "tune.sqlite")
    # an earlier, interrupted search finished sgd's trials only
    search = search_sweep(base, schemes, trials=3, validation=100)
    sgd_only = Sweep(name=search.name, base=search.base,
                     points=tuple(p for p in search.points if p[SCHEME_KEY] == "sgd"))
    execute(sgd_only, store, workers=1)
    outcomes = []

    def run_sweep(sweep, results):
        outcomes.append(execute(sweep, results, workers=1))

    choices = tune(base, schemes, 3, 100, store, tmp_path / "out", run_sweep)
    assert (outcomes[0].total, outcomes[0].skipped, outcomes[0].finished) == (6, 3, 3)  # sgd's trials skipped
    stored = {r.config_hash: r.result for r in store.runs()}
    for spec in schemes:
        trials = [(stored[r.config_hash]["validation_accuracy"], r) for r in trials_by_spec(search)[spec]]
        best = max(acc for acc, _ in trials)
        first_best = next(r for acc, r in trials if acc == best)
        assert choices[spec].validation_accuracy == best
        assert choices[spec].settings == {k: v for k, v in first_best.point.items() if k != SCHEME_KEY}
        assert choices[spec].test_accuracy is not None
    # the test runs use the chosen settings, the whole training set and the test set
    tests = [r for r in store.runs() if r.sweep == "tune:test"]
    assert len(tests) == 2 and all(r.result["evaluated_on"] == "test" and r.config["train.validation"] == 0
                                   for r in tests)
    # a second call trains nothing
    outcomes.clear()
    again = tune(base, schemes, 3, 100, store, tmp_path / "out", run_sweep)
    assert [o.finished for o in outcomes] == [0, 0] and [o.skipped for o in outcomes] == [6, 2]
    assert again == choices


def test_tuned_file_round_trip_and_compare_applies_it(tmp_path):
    choices = {"sgd": Choice("sgd", {"train.lr": 0.0316}, 0.9, 4, 0, 0.88, 0.01),
               "crus:accumulate=true": Choice("crus:accumulate=true", {"train.lr": 0.1, "scheme.request_pulses": 1.5},
                                              0.8, 4, 1),
               "manhattan": Choice("manhattan", {"train.lr": 0.01}, None, 4, 4)}
    path = tmp_path / "tuned.toml"
    write_tuned(path, TINY, 4, 50, choices)
    tuned = load_tuned(path)
    specs = ["sgd", "crus:accumulate=true"]
    assert tuned == {"sgd": {"train.lr": 0.0316}, specs[1]: {"train.lr": 0.1, "scheme.request_pulses": 1.5}}
    sgd, crus = (build_config(r.values) for r in compare_sweep(TINY, specs, tuned_for(tuned, specs, str(path))).runs())
    assert sgd.train.lr == 0.0316 and crus.train.lr == 0.1
    assert dict(crus.scheme.params) == {"accumulate": True, "request_pulses": 1.5}
    with pytest.raises(ConfigError, match="manhattan"):  # all its trials failed: nothing to reuse
        tuned_for(tuned, ["sgd", "manhattan"], str(path))
    path.write_text('[schemes."sgd"]\nsettings = { "device.levels" = 3 }\n')
    with pytest.raises(ConfigError, match="device.levels"):
        load_tuned(path)


def test_cli_tune_then_compare_tuned(tmp_path, idx_dir):
    out = tmp_path / "tune"
    common = ["--device", "abrupt-ltd", "--samples", "100", "--set", "model.hidden=[8]", "--data-dir", str(idx_dir)]
    result = runner.invoke(app, ["tune", "--schemes", "sgd threshold", "--trials", "2", "--validation", "100",
                                 "--workers", "1", "--out", str(out), *common])
    assert result.exit_code == 0, result.output
    assert "threshold" in result.output and (out / "tuned.toml").is_file() and (out / "tune.md").is_file()
    tuned = load_tuned(out / "tuned.toml")
    result = runner.invoke(app, ["compare", "--schemes", "threshold", "--tuned", str(out / "tuned.toml"),
                                 "--out", str(tmp_path / "cmp"), *common])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "cmp" / "threshold" / "result.json").read_text())["config"]
    assert config["train"]["lr"] == tuned["threshold"]["train.lr"]
    assert config["scheme"]["params"]["threshold"] == tuned["threshold"]["scheme.threshold"]
    assert "tuned" in json.loads((tmp_path / "cmp" / "compare.json").read_text())["title"]
    result = runner.invoke(app, ["compare", "--schemes", "fp", "--tuned", str(out / "tuned.toml"),
                                 "--out", str(tmp_path / "cmp2"), *common])
    assert result.exit_code == 2 and "no tuned settings for 'fp'" in result.output
    result = runner.invoke(app, ["tune", "--schemes", "sgd", "--set", "train.lr=0.1", "--out", str(out), *common])
    assert result.exit_code == 2 and "tune searches" in result.output

