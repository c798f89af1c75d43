import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hnntrain.io.resolve import build_config
from hnntrain.physics.devices import build_device, nominal_device
from hnntrain.physics.pair import FloatArray, PairArray, init_weights
from hnntrain.physics.rng import Key
from hnntrain.physics.sensing import Sensor
from hnntrain.schemes import SCHEMES, SchemeContext, build_scheme, stochastic_round
from hnntrain.spec.config import PairConfig


def setup(scheme, preset="ideal", shape=(40, 1, 30), **params):
    cfg = build_config({"device.preset": preset, "scheme.name": scheme, **{f"scheme.{k}": v for k, v in params.items()}})
    gen = torch.Generator().manual_seed(0)
    w = init_weights(shape, shape[0], PairConfig(), gen)
    nominal = nominal_device(cfg.device)
    ctx = SchemeContext(nominal=nominal, sensing=cfg.sensing, sensor=Sensor(cfg.sensing, 1.0, 10.0), device=cfg.device,
                        max_pulses=cfg.scheme.max_pulses)
    if SCHEMES[scheme].uses_devices:
        array = PairArray.create(w, build_device(cfg.device), cfg.pair, cfg.scheme.max_pulses)
    else:
        array = FloatArray(w.float())
    return build_scheme(scheme, dict(cfg.scheme.params), array, ctx), array


def test_stochastic_round_is_unbiased():
    x = torch.full((200_000,), -1.3)
    r = stochastic_round(x, Key.from_seed(0, 1))
    assert set(r.unique().tolist()) == {-2.0, -1.0}
    assert float(r.mean()) == pytest.approx(-1.3, abs=0.005)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_zero_request_gives_zero_pulses_and_no_change(scheme):
    updater, array = setup(scheme)
    updater.before_sample(1, Key.from_seed(0, 1))  # sensing (and any refresh it triggers) is not the request's doing
    before = array.weight.clone()
    pulses_before = array.counter.abs_sum.clone()
    updater.update(torch.zeros_like(array.weight), None, Key.from_seed(0, 1))
    assert torch.equal(array.weight, before)
    assert torch.equal(array.counter.abs_sum, pulses_before)


def test_fp_applies_request_exactly():
    updater, array = setup("fp")
    before = array.weight.clone()
    request = torch.randn_like(before) * 1e-3
    updater.update(request, None, Key.from_seed(0, 1))
    assert torch.allclose(array.weight, before + request)


def test_sgd_is_unbiased_on_a_linear_device():
    updater, array = setup("sgd", shape=(200, 1, 200))
    before = array.weight.clone()
    request = torch.full_like(before, 0.3 * 2 * array.dw_step)  # 0.3 of a push-pull pulse
    updater.update(request, None, Key.from_seed(1, 1))
    realized = array.weight - before
    assert float(realized.mean()) == pytest.approx(float(request.mean()), rel=0.03)
    # every realized change is a whole number of push-pull pulses
    pulses = realized / (2 * array.dw_step)
    assert torch.allclose(pulses, pulses.round(), atol=1e-3)


def test_sgd_pushes_and_pulls_the_pair():
    updater, array = setup("sgd")
    g_before = array.g.clone()
    updater.update(torch.full_like(array.weight, 4 * array.dw_step), None, Key.from_seed(0, 1))
    assert bool((array.g[:, 0] > g_before[:, 0]).all()) and bool((array.g[:, 1] < g_before[:, 1]).all())
    totals = array.counter.totals()
    n = array.weight.numel()
    assert totals["ltp"][0][0] == 2 * n and totals["ltd"][1][0] == 2 * n


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(-50, 50), seed=st.integers(0, 10_000),
       preset=st.sampled_from(["ideal", "abrupt-ltd", "abrupt-ltp", "nonlinear-both"]))
def test_sgd_keeps_conductances_in_bounds(scale, seed, preset):
    updater, array = setup("sgd", preset=preset, shape=(10, 2, 5))
    gen = torch.Generator().manual_seed(seed)
    for step in range(5):
        updater.update(torch.randn(array.weight.shape, generator=gen) * scale * array.dw_step, None,
                       Key.from_seed(seed, 2).fold(step))
    assert bool(((array.g >= 1.0) & (array.g <= 10.0)).all())
