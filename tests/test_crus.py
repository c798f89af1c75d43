import dataclasses

import numpy as np
import pytest
import torch

from hnntrain.io.resolve import build_config
from hnntrain.physics.devices import build_device, nominal_device
from hnntrain.physics.pair import PairArray
from hnntrain.physics.rng import Key
from hnntrain.physics.sensing import Sensor
from hnntrain.schemes import SchemeContext, build_scheme
from hnntrain.schemes.crus import CrusOptions, policy_spec, traffic_bucket
from hnntrain.schemes.optimize import (
    LTD_ACTION,
    LTP_ACTION,
    OptimizeSpec,
    build_problem,
    solve,
)
from hnntrain.schemes.policy_check import simulate_policy
from hnntrain.spec.config import PairConfig, SensingConfig


def relative_value_iteration(problem, iterations=20000, tol=1e-12):
    """Average-cost dynamic programming, independent of the LP: the optimal gain."""
    h = np.zeros(problem.levels**2)
    gain = 0.0
    for _ in range(iterations):
        q = np.stack([c / problem.mean_sq + t @ h for c, t in zip(problem.costs, problem.transitions)])
        new = q.min(axis=0)
        gain, new = new[0], new - new[0]
        if np.abs(new - h).max() < tol:
            break
        h = new
    return gain


@pytest.mark.parametrize("preset", ["abrupt-ltd", "nonlinear-both"])
def test_lp_reaches_the_dynamic_programming_optimum(preset):
    cfg = build_config({"device.preset": preset, "sensing.adc_bits": 3, "device.c2c": 0.01})
    spec = OptimizeSpec(c2c=0.01)
    policy = solve(cfg.device, cfg.sensing, spec)
    gain = relative_value_iteration(build_problem(cfg.device, cfg.sensing, spec))
    assert policy.lp_cost == pytest.approx(gain, rel=1e-5)


def test_more_freedom_never_costs_more():
    cfg = build_config({"device.preset": "abrupt-ltd", "sensing.adc_bits": 4})
    full = solve(cfg.device, cfg.sensing, OptimizeSpec()).lp_cost
    no_reverse = solve(cfg.device, cfg.sensing, OptimizeSpec(reverse=False)).lp_cost
    no_refresh = solve(cfg.device, cfg.sensing, OptimizeSpec(refresh=False)).lp_cost
    neither = solve(cfg.device, cfg.sensing, OptimizeSpec(reverse=False, refresh=False)).lp_cost
    assert full <= min(no_reverse, no_refresh) + 1e-12
    assert max(no_reverse, no_refresh) <= neither + 1e-12
    # gradual only without refresh saturates every pair: nothing is delivered
    assert neither == pytest.approx(1.0, abs=1e-6)


def test_abrupt_ltd_policy_reverses_near_home_and_mirror_device_mirrors():
    ltd = solve(build_config({"device.preset": "abrupt-ltd"}).device, build_config({}).sensing.__class__(adc_bits=4))
    ltp = solve(build_config({"device.preset": "abrupt-ltp"}).device, build_config({}).sensing.__class__(adc_bits=4))
    assert ltd.home == "g_min" and ltp.home == "g_max"
    # G+ mid-range, G- a few levels above g_min: an increase is made by LTD on G- (reverse)
    assert ltd.up[6, 3] == LTD_ACTION
    # ... and with G- at g_min there is nothing to take away: LTP on G+ (direct)
    assert ltd.up[6, 0] == LTP_ACTION
    # the mirror device, the same states seen from g_max (rows G+, columns G-)
    assert ltp.up[15 - 3, 15 - 6] == LTP_ACTION and ltp.up[15, 15 - 6] == LTD_ACTION
    assert np.isclose(ltd.lp_cost, ltp.lp_cost)


def make_crus(preset="abrupt-ltd", shape=(50, 1, 40), **options):
    values = {"device.preset": preset, "scheme.name": "crus", "sensing.adc_bits": 0, "sensing.every": 1,
              **{f"scheme.{k}": v for k, v in options.items()}}
    cfg = build_config(values)
    nominal = nominal_device(cfg.device)
    ctx = SchemeContext(nominal=nominal, sensing=cfg.sensing, sensor=Sensor(cfg.sensing, 1.0, 10.0),
                        device=cfg.device, max_pulses=cfg.scheme.max_pulses)
    w = torch.zeros(shape, dtype=torch.float64)
    array = PairArray.create(w, build_device(cfg.device), PairConfig(g_ref_fraction=0.1), cfg.scheme.max_pulses)
    return build_scheme("crus", dict(cfg.scheme.params), array, ctx), array


def test_hand_rule_reverse_pulses_the_partner_down():
    crus, array = make_crus(optimize=False, reverse_levels=100, refresh=False)
    crus.before_sample(1, Key.from_seed(0, 1))
    before = array.g.clone()
    crus.update(torch.full_like(array.weight, 2 * array.dw_step), None, Key.from_seed(0, 1))
    assert torch.equal(array.g[:, 0], before[:, 0])  # G+ untouched
    assert bool((array.g[:, 1] <= before[:, 1]).all()) and bool((array.g[:, 1] < before[:, 1]).any())
    totals = array.counter.totals()
    assert totals["ltp"] == [[0.0], [0.0]] and totals["ltd"][1][0] > 0


def test_model_based_counts_deliver_the_request_on_average():
    crus, array = make_crus(preset="abrupt-ltd", shape=(200, 1, 100), refresh=False)
    crus.before_sample(1, Key.from_seed(0, 1))
    before = array.weight.clone()
    request = torch.full_like(before, 1.5 * array.dw_step)
    crus.update(request, None, Key.from_seed(3, 1))
    realized = array.weight - before
    assert float(realized.mean()) == pytest.approx(float(request.mean()), rel=0.1)


def test_refresh_resets_high_pairs_and_keeps_the_weight():
    crus, array = make_crus(optimize=False, window_levels=0, refresh=True)
    g = array.g.clone()
    g[:, 0], g[:, 1] = 8.0, 6.0  # both devices high: a refresh candidate
    array.load_state_dict({"g": g, "counter": array.counter.state_dict()})
    crus.before_sample(1, Key.from_seed(0, 1))
    assert array.counter.refreshes == array.weight.numel()
    assert torch.allclose(array.g[:, 1], torch.ones_like(array.g[:, 1]))  # minority device at home
    expected = (8.0 - 6.0) * array.scale
    assert float(array.weight.mean()) == pytest.approx(expected, rel=0.05)


def test_accumulating_crus_pulses_only_whole_steps_and_keeps_the_rest():
    crus, array = make_crus(preset="ideal", refresh=False, accumulate=True)
    crus.before_sample(1, Key.from_seed(0, 1))
    step = array.dw_step
    before = array.weight.clone()
    crus.update(torch.full_like(array.weight, 0.4 * step), None, Key.from_seed(0, 1))
    assert torch.equal(array.weight, before)  # nothing owed reaches a whole pulse yet
    crus.update(torch.full_like(array.weight, 0.4 * step), None, Key.from_seed(0, 1))
    crus.update(torch.full_like(array.weight, 0.4 * step), None, Key.from_seed(0, 1))
    moved = array.weight - before
    assert torch.allclose(moved, torch.full_like(moved, step), rtol=1e-3)  # 1.2 steps owed: one pulse
    assert torch.allclose(crus.chi, torch.full_like(crus.chi, 0.2 * step), atol=1e-6)
    assert crus.hardware()["digital_bits_per_synapse"] == 16 + 16


def _tables(policy):
    return np.stack((policy.up, policy.down, policy.refresh.astype(np.int8)))


def test_policy_depends_on_the_sensing_interval_and_on_c2c():
    device = build_config({"device.preset": "abrupt-ltd", "device.c2c": 0.02}).device
    every = {k: solve(device, SensingConfig(adc_bits=4, every=k), policy_spec(CrusOptions(), device, 16))
             for k in (1, 100, 1000)}
    assert not np.array_equal(_tables(every[1]), _tables(every[1000]))
    assert every[1].lp_cost < every[100].lp_cost < every[1000].lp_cost  # the estimate drifts between reads
    quiet = build_config({"device.preset": "abrupt-ltd", "device.c2c": 0.0}).device
    noisy = build_config({"device.preset": "abrupt-ltd", "device.c2c": 0.05}).device
    sensing = SensingConfig(adc_bits=4, every=100)
    assert not np.array_equal(_tables(solve(quiet, sensing, policy_spec(CrusOptions(), quiet, 16))),
                              _tables(solve(noisy, sensing, policy_spec(CrusOptions(), noisy, 16))))


@pytest.mark.parametrize("preset", ["abrupt-ltd", "nonlinear-both"])
def test_lp_cost_is_checked_by_running_its_policy(preset):
    """The program's predicted objective against the same objective measured by running CRUS
    with that policy on nominal devices: an upper estimate within a factor 2.5 (its chain over
    ADC codes spreads faster than real conductances; docs/crus.md)."""
    cfg = build_config({"device.preset": preset, "device.c2c": 0.02, "sensing.adc_bits": 4, "sensing.every": 100})
    result = simulate_policy(cfg.device, cfg.sensing, pairs=400, updates=600, burn_in=200)
    assert 1.0 <= result.predicted / result.measured <= 2.5
    rare = build_config({"device.preset": preset, "device.c2c": 0.02, "sensing.adc_bits": 4, "sensing.every": 1000})
    assert simulate_policy(rare.device, rare.sensing, pairs=400, updates=600, burn_in=200).measured > result.measured


def test_traffic_bucket_rounds_to_half_powers_of_two_within_one_and_k():
    assert traffic_bucket(0.2, 100) == 1.0
    assert traffic_bucket(3.0, 100) == 2.0 ** 1.5  # log2 3 = 1.58 -> 1.5
    assert traffic_bucket(7.0, 100) == 8.0
    assert traffic_bucket(100.0, 100) == traffic_bucket(5e4, 100) == 100.0
    assert traffic_bucket(90.0, 100) == traffic_bucket(99.0, 100) == 2.0 ** 6.5  # below K: the grid


def _crus_with_replicas(**options):
    cfg = build_config({"device.preset": "abrupt-ltd", "device.c2c": 0.02, "scheme.name": "crus",
                        "sensing.adc_bits": 4, "sensing.every": 100, **{f"scheme.{k}": v for k, v in options.items()}})
    ctx = SchemeContext(nominal=nominal_device(cfg.device), sensing=cfg.sensing,
                        sensor=Sensor(cfg.sensing, cfg.device.g_min, cfg.device.g_max), device=cfg.device,
                        max_pulses=cfg.scheme.max_pulses)
    array = PairArray.create(torch.zeros((20, 2, 10), dtype=torch.float64), build_device(cfg.device),
                             PairConfig(), cfg.scheme.max_pulses)
    return build_scheme("crus", dict(cfg.scheme.params), array, ctx), array


def _busy_and_quiet_interval(crus, array):
    """A first read; then replica 0 receives 100 pulses per pair and replica 1 half a pulse per
    pair before the next read (written into the counters as the pulse driver would)."""
    crus.before_sample(1, Key.from_seed(0, 1))
    pairs = 20 * 10
    array.counter.abs_sum[0, 0] += 100 * pairs
    array.counter.abs_sum[1, 1] += 0.5 * pairs
    crus.before_sample(100, Key.from_seed(0, 2))


def test_crus_re_solves_each_replica_for_its_measured_traffic():
    crus, array = _crus_with_replicas()
    k_policy = crus.policy
    _busy_and_quiet_interval(crus, array)
    assert crus.requests_per_read == [100.0, 1.0]
    assert crus.policies[0] is k_policy  # as busy as one request per sample: the K policy
    quiet = crus.policies[1]
    assert not np.array_equal(_tables(quiet), _tables(k_policy))
    assert quiet.lp_cost < k_policy.lp_cost  # fewer requests between reads: less drift
    for e, policy in enumerate(crus.policies):  # the tables the update reads are per replica
        assert np.array_equal(crus.table_up[e].numpy(), policy.up.ravel().astype(bool))
        assert np.array_equal(crus.table_refresh[e].numpy(), policy.refresh.ravel().astype(bool))
    restored, _ = _crus_with_replicas()  # a checkpoint brings the measured policies back
    restored.load_state_dict(crus.state_dict())
    assert restored.requests_per_read == crus.requests_per_read
    assert torch.equal(restored.table_down, crus.table_down)
    fixed, fixed_array = _crus_with_replicas(measure_traffic=False)
    _busy_and_quiet_interval(fixed, fixed_array)
    assert fixed.policies[1] is fixed.policy and fixed.requests_per_read == [100.0, 100.0]


def test_a_program_highs_leaves_unsolved_is_retried_and_a_failed_retune_keeps_the_policy(monkeypatch):
    device = build_config({"device.model": "exponential", "device.nl_ltp": 2.0, "device.nl_ltd": 1.0,
                           "device.levels": 64, "device.c2c": 0.02}).device
    spec = dataclasses.replace(policy_spec(CrusOptions(), device, 0), updates_per_read=8.0)
    solve(device, SensingConfig(adc_bits=4, every=100), spec)  # HiGHS's default choice fails on this one
    crus, array = _crus_with_replicas()
    before = crus.policies

    def failing(*args):
        raise RuntimeError("CRUS optimization failed")

    monkeypatch.setattr("hnntrain.schemes.crus._optimized", failing)
    _busy_and_quiet_interval(crus, array)
    assert crus.policies == before and crus.requests_per_read == [100.0, 100.0]


def test_a_program_the_solver_gave_up_on_is_not_tried_again(monkeypatch):
    from hnntrain.schemes import crus as crus_module

    calls = []

    def failing(*args):
        calls.append(args)
        raise RuntimeError("CRUS optimization failed: Solve error")

    monkeypatch.setattr(crus_module, "solve", failing)
    device = build_config({"device.preset": "abrupt-ltd"}).device
    spec = dataclasses.replace(policy_spec(CrusOptions(), device, 0), request_pulses=0.123)  # a key no other test uses
    for _ in range(2):
        with pytest.raises(RuntimeError):
            crus_module._optimized(device, SensingConfig(adc_bits=4, every=100), spec)
    assert len(calls) == 1
