"""The hardware cost model: each component by hand, linearity in every price, what schemes that
do not sense pay for sensing, and re-pricing a stored run against its run-time price."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from typer.testing import CliRunner

from hnntrain.cli import app
from hnntrain.engine.run import run
from hnntrain.experiments.pricing import cost_rows, pareto_front, reprice
from hnntrain.experiments.store import ResultStore
from hnntrain.io.resolve import build_config, build_cost
from hnntrain.physics.cost import ENERGY_COMPONENTS, RunCounts, price, resolve_prices
from hnntrain.spec.config import ConfigError, CostConfig, config_hash

TINY = {"model.hidden": [8], "train.samples": 200, "train.test_samples": 100, "device.preset": "abrupt-ltd",
        "sensing.adc_bits": 4, "sensing.every": 20, "train.lr": 0.05}

COUNTS = RunCounts(samples=10, weight_shapes=((3, 2), (3, 1)), devices_per_weight=2, digital_bits=4, extra_arrays=1,
                   senses=True, adc_bits=2, max_pulses=5, levels=8, ltp=100, ltd=60, refresh_ltp=20, refresh_ltd=0,
                   programs=4, program_rows=2, refresh_calls=1, reads=50, extra_reads=10, rows_read=7, extra_rows_read=2,
                   write_calls=30, rows_written=60, synapses_written=120, extra_write_calls=10, extra_rows_written=20,
                   extra_synapses_written=40)
FP_COUNTS = dataclasses.replace(COUNTS, devices_per_weight=0, digital_bits=32, extra_arrays=0, senses=False)
"""The software reference: digital weights, no devices."""
PRICES = CostConfig(ltp_energy_j=1.0, ltd_energy_j=2.0, ltp_time_s=3.0, ltd_time_s=4.0, program_energy_j=5.0,
                    program_time_s=6.0, read_energy_j=0.5, read_time_s=0.25, adc_fom_j_per_step=0.125,
                    adc_time_s_per_bit=0.0625, adc_area_um2_per_level=1.0, mvm_adc_bits=3, columns_per_adc=2,
                    cell_area_um2=0.1, digital_access_j_per_bit=0.01, digital_bit_area_um2=0.2, digital_mac_j=7.0)


def test_energy_components_by_hand():
    e = price(COUNTS, PRICES)["energy_breakdown"]
    assert e["pulses"] == pytest.approx(((100 - 20) * 1.0 + 60 * 2.0) / 10)  # refresh pulses priced apart
    read = 0.5 + 0.125 * 2 ** 2  # cell read + a 2-bit conversion
    assert e["sensing"] == pytest.approx((50 - 10) * read / 10)
    assert e["extra_array_reads"] == pytest.approx(10 * read / 10)
    assert e["digital"] == pytest.approx(2 * 4 * 0.01 * 120 / 10)  # read-modify-write of 4 bits per synapse written
    assert e["refresh"] == pytest.approx((4 * 5.0 + 20 * 1.0) / 10)
    # forward: 9 synapses x 2 devices read, 3 outputs converted; backward through layer 2: 3 x 2 reads, 3 conversions
    assert e["forward_backward"] == pytest.approx(2 * (9 + 3) * 0.5 + (3 + 3) * 0.125 * 2 ** 3)
    assert price(COUNTS, PRICES)["energy_j_per_sample"] == pytest.approx(sum(e.values()))


def test_latency_components_by_hand_in_both_update_styles():
    t = price(COUNTS, PRICES)["latency_breakdown"]
    row_b, row_mvm = 0.25 + 2 * 2 * 0.0625, 0.25 + 2 * 3 * 0.0625  # read pulse + 2 columns per ADC, bits each
    assert t["forward_backward"] == pytest.approx(3 * row_mvm)  # 2 forward + 1 backward array reads
    assert t["pulses"] == pytest.approx((30 + 10) * 5 * (3.0 + 4.0) / 10)  # write steps x cap x (LTP + LTD slot)
    assert t["sensing"] == pytest.approx((7 - 2) * row_b / 10)
    assert t["extra_array_reads"] == pytest.approx(2 * row_b / 10)
    assert t["refresh"] == pytest.approx(1 * (6.0 + 8 * 3.0) / 10)  # rewrite from home by LTP (refresh_ltp only)
    assert t["digital"] == 0
    uncapped = price(dataclasses.replace(COUNTS, max_pulses=0), PRICES)["latency_breakdown"]
    assert uncapped["pulses"] == pytest.approx((30 + 10) * 8 * (3.0 + 4.0) / 10)  # no cap: up to levels slots
    rows = price(COUNTS, dataclasses.replace(PRICES, update_style="row"))["latency_breakdown"]
    assert rows["pulses"] == pytest.approx((60 + 20) * 35 / 10)
    assert rows["refresh"] == pytest.approx(2 * 30 / 10)


def test_area_by_hand():
    cost = price(COUNTS, PRICES)
    adcs = (2 + 1) * 2  # ceil(4/2) + ceil(2/2) per array, two arrays
    total = 2 * 2 * 0.1 + 4 * 0.2 + adcs * 2 ** 3 * 1.0 / 9
    assert cost["area_um2_per_synapse"] == pytest.approx(total)
    assert cost["area_overhead_um2_per_synapse"] == pytest.approx(total - (2 * 0.1 + 3 * 2 ** 3 / 9))


def test_floating_point_reference_is_priced_as_digital():
    cost = price(FP_COUNTS, PRICES)
    e = cost["energy_breakdown"]
    assert e["digital"] == pytest.approx(2 * 32 * 0.01 * 120 / 10)
    assert e["forward_backward"] == pytest.approx(12 * (7.0 + 32 * 0.01))  # 12 MACs, each reads its weight
    assert e["pulses"] == e["sensing"] == 0
    assert cost["latency_s_per_sample"] is None
    assert cost["area_um2_per_synapse"] == pytest.approx(32 * 0.2)


def _all_values(prices: CostConfig) -> dict[str, float]:
    """Every component of a device-pair run and of the software reference, energy, latency, area."""
    values = {}
    for kind, counts in (("pair", COUNTS), ("fp", FP_COUNTS)):
        cost = price(counts, prices)
        values.update({f"{kind}.energy.{k}": v for k, v in cost["energy_breakdown"].items()})
        values.update({f"{kind}.latency.{k}": v for k, v in (cost["latency_breakdown"] or {}).items()})
        values[f"{kind}.area"] = cost["area_um2_per_synapse"]
    return values


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(CostConfig)
                                   if isinstance(getattr(PRICES, f.name), float)])
def test_every_component_is_linear_in_every_price(field):
    at = {x: _all_values(dataclasses.replace(PRICES, **{field: x * getattr(PRICES, field)})) for x in (0.0, 1.0, 2.0)}
    moved = False
    for key in at[1.0]:
        assert at[2.0][key] - at[0.0][key] == pytest.approx(2 * (at[1.0][key] - at[0.0][key]), abs=1e-12), key
        moved |= at[1.0][key] != at[0.0][key]
    assert moved, f"{field} prices nothing"


def test_doubling_a_price_doubles_its_component():
    double = dataclasses.replace(PRICES, ltp_energy_j=2.0, ltd_energy_j=4.0)
    assert price(COUNTS, double)["energy_breakdown"]["pulses"] == pytest.approx(
        2 * price(COUNTS, PRICES)["energy_breakdown"]["pulses"])
    double = dataclasses.replace(PRICES, digital_access_j_per_bit=0.02)
    assert price(COUNTS, double)["energy_breakdown"]["digital"] == pytest.approx(
        2 * price(COUNTS, PRICES)["energy_breakdown"]["digital"])


def test_pulse_prices_come_from_the_field_then_the_preset_then_the_device():
    assert resolve_prices(CostConfig(), "gst-pcm", 100).ltd_energy_j == 50e-12  # PCM RESET
    assert resolve_prices(CostConfig(), "abrupt-ltd", 64).ltp_time_s == 300e-6  # NeuroSim default device
    assert resolve_prices(CostConfig(pulse_preset="ecram"), "gst-pcm", 100).ltp_energy_j == 1e-15
    assert resolve_prices(CostConfig(pulse_preset="ecram", ltp_energy_j=2e-15), None, 64).ltp_energy_j == 2e-15
    default = resolve_prices(CostConfig(), None, 64)  # a reset: a full-range pulse train of the dearer direction
    assert default.program_energy_j == pytest.approx(64 * max(default.ltp_energy_j, default.ltd_energy_j))


def test_cost_config_is_validated_and_left_out_of_the_hash():
    base = build_config(TINY)
    priced = build_config({**TINY, "cost.pulse_preset": "pcm", "cost.adc_fom_j_per_step": 1e-15})
    assert config_hash(base) == config_hash(priced)  # prices never change what training does
    with pytest.raises(ConfigError, match="cost.read_time_s"):
        build_config({**TINY, "cost.read_time_s": -1})
    with pytest.raises(ConfigError, match="cost.pulse_preset"):
        build_cost({"cost.pulse_preset": "flash"})
    with pytest.raises(ConfigError, match="cost.update_style"):
        build_cost({"cost.update_style": "diagonal"})


def test_pareto_front():
    assert pareto_front([(0.9, 1.0), (0.8, 2.0), (0.95, 3.0), (0.95, 4.0)]) == [True, False, True, False]


@pytest.fixture(scope="module")
def scheme_runs(blobs, tmp_path_factory):
    out = tmp_path_factory.mktemp("cost")
    names = ("fp", "sgd", "threshold", "manhattan", "crus", "tiki_taka", "unidirectional")
    results = {name: run(build_config({**TINY, "scheme.name": name}), out / name, datasets=blobs) for name in names}
    assert all(r["status"] == "ok" for r in results.values())
    return results


def test_schemes_that_do_not_sense_pay_nothing_for_sensing(scheme_runs):
    for name in ("fp", "sgd", "threshold", "manhattan"):
        e = scheme_runs[name]["cost"]["energy_breakdown"]
        assert e["sensing"] == 0 and e["extra_array_reads"] == 0, name
    assert scheme_runs["crus"]["cost"]["energy_breakdown"]["sensing"] > 0
    tiki = scheme_runs["tiki_taka"]["cost"]["energy_breakdown"]
    assert tiki["extra_array_reads"] > 0 and tiki["sensing"] == 0  # it reads only its fast array A
    counters = scheme_runs["tiki_taka"]["counters"]
    assert counters["extra_reads"] == counters["reads"] > 0
    assert counters["extra_write_calls"] > 0 and counters["write_calls"] > 0  # A every update, C on transfers


def test_counters_match_the_run(scheme_runs):
    sgd = scheme_runs["sgd"]
    counters, samples = sgd["counters"], sgd["samples"]
    assert samples == 200 and counters["write_calls"] == 2 * samples  # batch 1, two layers
    assert counters["ltp"] + counters["ltd"] == pytest.approx(sum(e["pulses"]["total"] for e in sgd["epochs"]))
    assert counters["rows_written"] <= samples * (36 + 1 + 8 + 1)  # at most every row of both layers
    crus = scheme_runs["crus"]["counters"]
    assert crus["reads"] == (200 // 20) * 2 * (37 * 8 + 9 * 4)  # every device read once per interval
    assert crus["rows_read"] == 10 * (37 + 9)


def test_repricing_a_stored_run_equals_pricing_at_run_time(scheme_runs, tmp_path):
    with ResultStore(tmp_path / "store.sqlite") as store:
        for result in scheme_runs.values():
            store.record(result, sweep="cost")
        stored = {r.config["scheme.name"]: r.result for r in store.runs()}
    for name, result in scheme_runs.items():
        assert reprice(stored[name]) == result["cost"], name
    ecram = reprice(stored["sgd"], {"cost.pulse_preset": "ecram"})["energy_breakdown"]
    assert ecram["pulses"] < scheme_runs["sgd"]["cost"]["energy_breakdown"]["pulses"] / 1000
    rows = cost_rows([(n, r) for n, r in stored.items()])
    assert {r["label"] for r in rows} == set(scheme_runs) and any(r["pareto"] for r in rows)


def test_cost_command_reprices_a_store_and_a_run(scheme_runs, tmp_path):
    with ResultStore(tmp_path / "store.sqlite") as store:
        for result in scheme_runs.values():
            store.record(result)
    runner = CliRunner()
    out = runner.invoke(app, ["cost", str(tmp_path / "store.sqlite"), "--set", "cost.pulse_preset=pcm",
                              "--json", str(tmp_path / "priced.json")])
    assert out.exit_code == 0, out.output
    priced = json.loads((tmp_path / "priced.json").read_text())
    assert len(priced) == len(scheme_runs) and all(math.isfinite(r["energy_j_per_sample"]) for r in priced)
    bad = runner.invoke(app, ["cost", str(tmp_path / "store.sqlite"), "--set", "cost.watts=1"])
    assert bad.exit_code == 2 and "cost.watts" in bad.output and "Traceback" not in bad.output


def test_run_costs_have_every_component(scheme_runs):
    for result in scheme_runs.values():
        assert set(result["cost"]["energy_breakdown"]) == set(ENERGY_COMPONENTS)
        assert result["cost"]["energy_j_per_sample"] > 0 and result["cost"]["area_um2_per_synapse"] > 0


def test_runs_without_cost_counters_are_reconstructed_from_their_epochs(scheme_runs):
    old = {k: v for k, v in scheme_runs["sgd"].items() if k not in ("counters", "cost", "samples")}
    old["hardware"] = {k: v for k, v in old["hardware"].items() if k != "weight_shapes"}
    old["config"] = {**old["config"], "model": {**old["config"]["model"]}}
    cost = reprice(old)
    assert cost["counters"] == "reconstructed"
    recorded = scheme_runs["sgd"]["cost"]
    # pulse totals are in the epoch records: the same pulse energy (MNIST sizes change only the shared part)
    assert cost["energy_breakdown"]["pulses"] == pytest.approx(recorded["energy_breakdown"]["pulses"])
    assert cost["latency_breakdown"]["pulses"] == pytest.approx(recorded["latency_breakdown"]["pulses"])
