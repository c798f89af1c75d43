"""Digital accumulators (mixed precision's chi, accumulating CRUS) owe exactly what was not
written: a pulse the cap holds back stays owed instead of vanishing. (Tiki-Taka's H follows its
own TTv2 rule, one pulse per transfer: tests/test_baselines.py.)"""

import torch

from hnntrain.io.resolve import build_config
from hnntrain.physics.devices import build_device, nominal_device
from hnntrain.physics.pair import PairArray
from hnntrain.physics.sensing import Sensor
from hnntrain.schemes import SchemeContext, build_scheme
from hnntrain.spec.config import PairConfig


def make(scheme, preset="ideal", shape=(6, 1, 5), max_pulses=2, sensing=None, **options):
    values = {"device.preset": preset, "scheme.name": scheme, "scheme.max_pulses": max_pulses, **(sensing or {}),
              **{f"scheme.{k}": v for k, v in options.items()}}
    cfg = build_config(values)
    ctx = SchemeContext(nominal=nominal_device(cfg.device), sensing=cfg.sensing,
                        sensor=Sensor(cfg.sensing, cfg.device.g_min, cfg.device.g_max), device=cfg.device,
                        max_pulses=cfg.scheme.max_pulses)
    array = PairArray.create(torch.zeros(shape, dtype=torch.float64), build_device(cfg.device), PairConfig(),
                             cfg.scheme.max_pulses)
    return build_scheme(scheme, dict(cfg.scheme.params), array, ctx), array


def test_mixed_precision_keeps_what_the_cap_held_back():
    updater, array = make("mixed_precision", refresh=False)
    eps = array.dw_step
    before = array.weight.clone()
    request = torch.full_like(array.weight, 5.3 * eps)  # 5 whole pulses due, the cap writes 2
    updater.update(request, None, None)
    written = array.weight - before
    assert torch.allclose(written, torch.full_like(written, 2 * eps), rtol=1e-4)
    # owed + written = requested: 3.3 steps remain owed
    assert torch.allclose(updater.chi + written, request, atol=1e-6)
    for _ in range(3):  # nothing new asked: the owed pulses arrive, 2 per update, then 0.3 stays
        updater.update(torch.zeros_like(request), None, None)
    assert torch.allclose(array.weight - before, torch.full_like(written, 5 * eps), rtol=1e-4)
    assert torch.allclose(updater.chi, torch.full_like(updater.chi, 0.3 * eps), atol=1e-6)


def test_accumulating_crus_keeps_what_the_cap_held_back():
    updater, array = make("crus", refresh=False, accumulate=True, sensing={"sensing.adc_bits": 0})
    updater.before_sample(1, None)
    eps = array.dw_step
    before = array.weight.clone()
    request = torch.full_like(array.weight, 4.5 * eps)
    updater.update(request, None, None)
    written = array.weight - before
    assert torch.allclose(written, torch.full_like(written, 2 * eps), rtol=1e-3)
    assert torch.allclose(updater.chi + written, request, atol=1e-6)
