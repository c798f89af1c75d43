import numpy as np
import pytest
import torch

from hnntrain.io.resolve import build_config
from hnntrain.physics.devices import build_device, nominal_device
from hnntrain.physics.pair import PairArray
from hnntrain.physics.rng import Key
from hnntrain.physics.sensing import Sensor
from hnntrain.schemes import SchemeContext, build_scheme
from hnntrain.schemes.crus import CrusOptions, policy_spec
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
