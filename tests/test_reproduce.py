"""The claims table's verdicts (from synthetic stored runs) and the store report's figures."""

from __future__ import annotations

import pytest

from hnntrain.experiments.report import scheme_label, store_report
from hnntrain.experiments.reproduce import (
    BASELINES,
    CLAIM_SWEEPS,
    PRESETS,
    claim_sweeps,
    evaluate,
)
from hnntrain.experiments.store import StoredRun


def stored(sweep: str, scheme: str, accuracy: float, un: float = 1.0, std: float = 0.002, **config) -> StoredRun:
    name, _, option = scheme.partition(":")
    cfg = {"scheme.name": name, "train.replicas": 3, **{k.replace("__", "."): v for k, v in config.items()}}
    if option:
        key, _, value = option.partition("=")
        cfg[f"scheme.{key}"] = value == "True"
    summary = {"test_accuracy": accuracy, "test_accuracy_std": std, "seeds": 3, "update_noise": un,
               "pulses_per_sample": 10.0}
    trace = [{"samples": 1000 * (i + 1), "window": un * (1 + 0.1 * i), "window1": un} for i in range(3)]
    return StoredRun(f"{sweep}-{scheme}-{sorted(config.items())}", sweep, "ok", accuracy, cfg, summary,
                     {"un_trace": trace, "epochs": [{"samples": 3000}]}, 1.0, "host", "now")


def claim_runs(crus=0.93, best_baseline=0.91, accumulate=0.95, c2c_drop=0.02, nl_low=False) -> list[StoredRun]:
    runs = []
    for preset in PRESETS:
        runs.append(stored("claims-schemes", "crus", crus, un=5.0, device__preset=preset))
        runs.append(stored("claims-schemes", "crus:optimize=True", crus, device__preset=preset))  # not a baseline
        runs.append(stored("claims-schemes", "crus:optimize=False", crus - 0.005, un=6.0, device__preset=preset))
        runs.append(stored("claims-schemes", "crus:accumulate=True", accumulate, un=1.0, device__preset=preset))
        runs.append(stored("claims-schemes", "fp", 0.96, un=0.0, device__preset=preset))
        for i, b in enumerate(BASELINES):
            runs.append(stored("claims-schemes", b, best_baseline - 0.01 * i, un=10.0, device__preset=preset))
    for bits in (2, 3, 4, 8):
        for every in (100, 1000, 10000):
            acc = 0.93 - 0.01 * (bits == 2) - 0.02 * (every == 10000)
            runs.append(stored("claims-sensing", "crus", acc, sensing__adc_bits=bits, sensing__every=every))
    for c2c in (0.0, 0.01, 0.02, 0.05):
        runs.append(stored("claims-c2c", "crus", 0.94 - c2c_drop * c2c / 0.05, device__c2c=c2c))
        runs.append(stored("claims-c2c", "sgd", 0.6, device__c2c=c2c))
    for nl in (1.0, 2.0, 4.0, 6.0, 8.0, 9.0):
        runs.append(stored("claims-nonlinearity", "crus", 0.89 if (nl_low and nl == 9.0) else 0.93, device__nl_ltd=nl))
        runs.append(stored("claims-nonlinearity", "sgd", 0.6, device__nl_ltd=nl))
    return runs


def verdicts(runs) -> list[str]:
    return [c.verdict for c in evaluate(runs)]


def test_every_claim_holds_when_the_numbers_say_so():
    assert verdicts(claim_runs()) == ["holds"] * 6


def test_verdicts_follow_the_numbers():
    # plain CRUS below the best baseline, the accumulating variant above it: partly
    claims = evaluate(claim_runs(crus=0.905, best_baseline=0.92))
    assert claims[3].verdict == "partly" and "accumulating variant does" in claims[3].measured
    # neither above: does not hold; CRUS under 90 %: claim 1 fails
    assert evaluate(claim_runs(crus=0.89, best_baseline=0.92, accumulate=0.91))[3].verdict == "does not hold"
    assert evaluate(claim_runs(crus=0.89))[0].verdict == "does not hold"
    # a 4-point drop from c2c 0 to 5 %: robustness only partly (still above the baselines)
    c2c = evaluate(claim_runs(c2c_drop=0.04))[4]
    assert c2c.verdict == "partly" and "drop 0 -> 5 %: 4.00 points" in c2c.measured
    assert evaluate(claim_runs(nl_low=True))[5].verdict == "partly"


def test_missing_runs_are_not_measured_never_holding():
    runs = [r for r in claim_runs() if not (r.sweep == "claims-c2c" and r.config.get("device.c2c") == 0.05)]
    runs = [r for r in runs if r.sweep != "claims-sensing"]
    claims = evaluate(runs)
    assert claims[1].verdict == "not measured" and claims[4].verdict == "not measured"
    failed = [r if r.config.get("scheme.name") != "crus" or r.sweep != "claims-schemes"
              else StoredRun(**{**r.__dict__, "status": "failed"}) for r in claim_runs()]
    assert evaluate(failed)[0].verdict == "not measured"


def test_shipped_claim_sweeps_load_and_scale():
    sweeps = claim_sweeps(samples=500, seeds=2)
    assert [s.name for s in sweeps] == [f"claims-{n}" for n in CLAIM_SWEEPS]
    runs = {s.name: s.runs() for s in sweeps}
    assert len(runs["claims-schemes"]) == 33 and len(runs["claims-nonlinearity"]) == 24
    assert all(r.values["train.samples"] == 500 and r.values["train.replicas"] == 2 for rs in runs.values() for r in rs)
    with pytest.raises(ValueError, match="--only"):
        claim_sweeps(only=["nope"])


def test_store_report_draws_every_varying_key(tmp_path):
    runs = [r for r in claim_runs() if r.sweep in ("claims-sensing", "claims-schemes")]
    path = store_report(runs, tmp_path, title="t")
    text = path.read_text()
    for figure in ("accuracy-vs-sensing-adc_bits.png", "accuracy-vs-sensing-every.png", "accuracy-by-device-preset.png",
                   "un-vs-epoch.png"):
        assert (tmp_path / figure).stat().st_size > 5000 and figure in text
    assert "| ADC resolution (bits) | crus |" in text  # the pivot table of the sensing runs
    assert scheme_label({"scheme.name": "crus", "scheme.accumulate": True, "scheme.max_pulses": 8}) == "crus:accumulate=True"
