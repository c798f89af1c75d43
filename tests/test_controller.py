"""The controller's beliefs (controller.*) may differ from the truth; resets may carry noise."""

import pytest
import torch

from hnntrain.engine.network import scheme_context
from hnntrain.io.resolve import build_config
from hnntrain.physics.devices import build_device, nominal_device
from hnntrain.physics.pair import PairArray
from hnntrain.physics.rng import Key
from hnntrain.schemes import build_scheme
from hnntrain.spec.config import ConfigError, PairConfig


def make(scheme, values, shape=(100, 1, 40), g_ref_fraction=0.5, **options):
    cfg = build_config({"scheme.name": scheme, **values, **{f"scheme.{k}": v for k, v in options.items()}})
    ctx = scheme_context(cfg.device, cfg.sensing, cfg.scheme.max_pulses, "cpu", cfg.controller)
    array = PairArray.create(torch.zeros(shape, dtype=torch.float64), build_device(cfg.device),
                             PairConfig(g_ref_fraction=g_ref_fraction), cfg.scheme.max_pulses)
    return build_scheme(scheme, dict(cfg.scheme.params), array, ctx), array, ctx


def test_by_default_the_controller_knows_the_nominal_device():
    _, _, ctx = make("nonlinearity_aware", {"device.preset": "abrupt-ltd"})
    truth = nominal_device(build_config({"device.preset": "abrupt-ltd"}).device)
    assert float(ctx.nominal.a_ltp) == float(truth.a_ltp) and float(ctx.nominal.a_ltd) == float(truth.a_ltd)
    assert ctx.believed_sensing == ctx.sensing and ctx.reset_noise == 0.0


def test_a_wrong_device_model_biases_model_based_counts():
    exact = {"device.preset": "abrupt-ltd", "sensing.adc_bits": 0, "sensing.every": 1}
    realized = {}
    for name, belief in (("right", {}), ("wrong", {"controller.nl_ltp": 5.0, "controller.nl_ltd": 4.0})):
        scheme, array, _ = make("nonlinearity_aware", {**exact, **belief}, g_ref_fraction=0.3)
        scheme.before_sample(1, Key.from_seed(0, 1).fold(0))
        before = array.weight.clone()
        request = torch.full_like(before, 3 * array.dw_step)
        scheme.update(request, None, Key.from_seed(0, 1).fold(1))
        realized[name] = float((array.weight - before).mean()) / float(request.mean())
    assert realized["right"] == pytest.approx(1.0, abs=0.1)
    assert abs(realized["wrong"] - 1.0) > 0.3


def test_crus_optimizes_with_the_believed_c2c_and_read_noise():
    base = {"device.preset": "abrupt-ltd", "sensing.adc_bits": 4, "sensing.every": 100}
    plain, _, _ = make("crus", base)
    worried, _, ctx = make("crus", {**base, "controller.c2c": 0.05, "controller.read_noise": 0.02})
    assert ctx.device.c2c == 0.05 and ctx.believed_sensing.read_noise == 0.02
    assert ctx.sensing.read_noise == 0.0 and ctx.sensor.cfg.read_noise == 0.0  # the real ADC is unchanged
    assert worried.policy.lp_cost > plain.policy.lp_cost
    assert (worried.policy.up != plain.policy.up).any() or (worried.policy.refresh != plain.policy.refresh).any()


def test_noisy_resets_land_around_the_home_bound():
    values = {"device.preset": "abrupt-ltd", "sensing.adc_bits": 8, "controller.reset_noise": 0.02}
    scheme, array, _ = make("unidirectional", values, refresh=True, refresh_every=1, refresh_threshold=0.3)
    g = array.g.clone()
    g[:, 0], g[:, 1] = 8.0, 7.0
    array.load_state_dict({"g": g, "counter": array.counter.state_dict()})
    scheme.before_sample(1, Key.from_seed(0, 1))
    home = array.g[:, 1]  # the smaller device was reset to g_min = 1 uS
    assert float(home.min()) >= 1.0 and float(home.std()) > 0.02 * 9.0 * 0.3
    assert float(home.mean()) == pytest.approx(1.0 + 0.02 * 9.0 * 0.4, abs=0.05)  # half-normal above the bound


def test_controller_keys_are_checked():
    with pytest.raises(ConfigError, match="controller.nl_ltp"):
        build_config({"device.preset": "ideal", "controller.nl_ltp": 2.0})
    with pytest.raises(ConfigError, match="controller.reset_noise"):
        build_config({"controller.reset_noise": -0.1})
