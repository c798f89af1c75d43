import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hnntrain.io.resolve import build_config
from hnntrain.physics.devices import build_device, nominal_device
from hnntrain.physics.pair import PairArray, init_weights
from hnntrain.physics.rng import Key
from hnntrain.physics.sensing import SensedState, Sensor
from hnntrain.spec.config import PairConfig, SensingConfig


def make_array(preset="ideal", shape=(5, 2, 3), g_ref_fraction=0.5, max_pulses=16, d2d=False):
    cfg = build_config({"device.preset": preset, "pair.g_ref_fraction": g_ref_fraction, **({"device.d2d_g": 0.05} if d2d else {})})
    gen = torch.Generator().manual_seed(0)
    w = init_weights(shape, shape[0], PairConfig(init_scale=2.0), gen)
    dev_shape = (shape[0], 2, shape[1], shape[2]) if d2d else ()
    model = build_device(cfg.device, dev_shape, gen)
    return PairArray.create(w, model, cfg.pair, max_pulses), w


@pytest.mark.parametrize("g_ref_fraction", [0.0, 0.5, 1.0])
def test_initial_weights_programmed_within_bounds(g_ref_fraction):
    array, w = make_array(g_ref_fraction=g_ref_fraction)
    assert bool(((array.g >= 1.0) & (array.g <= 10.0)).all())
    assert torch.allclose(array.weight, (array.g[:, 0] - array.g[:, 1]) * array.scale)
    if g_ref_fraction == 0.5:  # the mid-range common mode can hold every initial weight exactly
        assert torch.allclose(array.weight.double(), w, atol=1e-6)


def test_pulses_are_capped_counted_and_update_weights():
    array, _ = make_array(max_pulses=3)
    pulses = torch.zeros(5, 2, 2, 3)
    pulses[0, 0, 0, 0] = 5  # capped to 3 LTP on G+
    pulses[1, 1, 1, 2] = -2  # 2 LTD on G-
    before = array.weight.clone()
    array.pulse(pulses, None, None)
    totals = array.counter.totals()
    assert totals["ltp"] == [[3.0, 0.0], [0.0, 0.0]]
    assert totals["ltd"] == [[0.0, 0.0], [0.0, 2.0]]
    step = array.dw_step
    assert float(array.weight[0, 0, 0] - before[0, 0, 0]) == pytest.approx(3 * step, rel=1e-4)
    assert float(array.weight[1, 1, 2] - before[1, 1, 2]) == pytest.approx(2 * step, rel=1e-4)


def test_pulse_on_selected_inputs_leaves_others_alone():
    array, _ = make_array(preset="abrupt-ltd", d2d=True)
    before = array.g.clone()
    rows = torch.tensor([3, 1])
    array.pulse(torch.ones(2, 2, 2, 3), rows, Key.from_seed(0, 2))
    untouched = torch.tensor([0, 2, 4])
    assert torch.equal(array.g[untouched], before[untouched])
    assert bool((array.g[rows] > before[rows]).all())
    assert torch.allclose(array.weight, (array.g[:, 0] - array.g[:, 1]) * array.scale)


def test_adc_quantizes_to_two_to_the_b_codes():
    sensor = Sensor(SensingConfig(adc_bits=2), 1.0, 10.0)
    g = torch.tensor([1.0, 2.4, 2.6, 5.4, 9.9, 12.0])
    assert torch.allclose(sensor.read(g), torch.tensor([1.0, 1.0, 4.0, 4.0, 10.0, 10.0]))
    exact = Sensor(SensingConfig(adc_bits=0), 1.0, 10.0)
    assert torch.equal(exact.read(g), g)


@settings(max_examples=40, deadline=None)
@given(bits=st.integers(1, 10), seed=st.integers(0, 999))
def test_adc_error_is_at_most_half_an_lsb(bits, seed):
    sensor = Sensor(SensingConfig(adc_bits=bits), 1.0, 10.0)
    g = 1.0 + 9.0 * torch.rand(1000, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert float((sensor.read(g) - g).abs().max()) <= sensor.lsb / 2 + 1e-9
    assert len(torch.unique(sensor.read(g))) <= 2**bits


def test_read_noise_has_configured_sigma():
    sensor = Sensor(SensingConfig(adc_bits=0, read_noise=0.01), 1.0, 10.0)
    g = torch.full((100_000,), 5.0, dtype=torch.float64)
    assert float((sensor.read(g, Key.from_seed(0, 1)) - g).std()) == pytest.approx(0.09, rel=0.03)


def test_sensed_state_refreshes_every_k_and_tracks():
    array, _ = make_array()
    cfg = build_config({"device.preset": "ideal"})
    sensor = Sensor(SensingConfig(adc_bits=0), 1.0, 10.0)
    state = SensedState(sensor, nominal_device(cfg.device), every=3, track=False)
    reads = [state.refresh_if_due(array, 1, None) for _ in range(7)]
    assert reads == [True, False, False, True, False, False, True]
    assert array.counter.senses == 3 * array.g.numel()
    tracked = SensedState(sensor, nominal_device(cfg.device), every=100, track=True)
    tracked.refresh_if_due(array, 1, None)
    pulses = torch.ones_like(array.g)
    before = tracked.estimate.clone()
    tracked.after_pulses(pulses, None)
    assert torch.allclose(tracked.estimate, (before + 9.0 / 256).clamp(max=10.0))


def test_exact_reading_is_a_copy_not_the_device_state():
    array, _ = make_array()
    sensor = Sensor(SensingConfig(adc_bits=0), 1.0, 10.0)
    state = SensedState(sensor, nominal_device(build_config({"device.preset": "ideal"}).device), every=1, track=True)
    state.refresh_if_due(array, 1, None)
    before = array.g.clone()
    state.after_pulses(torch.ones_like(array.g), None)  # the controller's bookkeeping only
    assert torch.equal(array.g, before)
