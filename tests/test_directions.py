"""Direction-choosing schemes pulse a device's gradual direction, read from its own curves:
an abrupt-LTP device, exponential or measured (a table CSV), is driven by LTD and its home
bound (where a reset lands exactly) is g_max."""

import pytest
import torch

from hnntrain.io.resolve import build_config
from hnntrain.physics.devices import build_device, nominal_device
from hnntrain.physics.pair import PairArray
from hnntrain.physics.rng import Key
from hnntrain.physics.sensing import Sensor
from hnntrain.schemes import SchemeContext, build_scheme
from hnntrain.schemes.common import gradual_is_ltp
from hnntrain.schemes.optimize import solve
from hnntrain.spec.config import PairConfig


@pytest.fixture(scope="module")
def abrupt_ltp_csv(tmp_path_factory):
    """Measured-style curves of an abrupt-LTP device (the ``abrupt-ltp`` preset's curves)."""
    model = nominal_device(build_config({"device.preset": "abrupt-ltp"}).device, dtype=torch.float64)
    up, down = model.curves()
    rows = ["direction,pulse,conductance"]
    rows += [f"LTP,{i},{float(g):.9f}" for i, g in enumerate(up)]
    rows += [f"LTD,{i},{float(g):.9f}" for i, g in enumerate(down)]
    path = tmp_path_factory.mktemp("csv") / "abrupt_ltp.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def device_values(kind, csv):
    if kind == "table":
        return {"device.model": "table", "device.table": str(csv)}
    return {"device.preset": "abrupt-ltp"}


def make(scheme, values, shape=(8, 1, 6), g_ref_fraction=0.5, **options):
    cfg = build_config({**values, "scheme.name": scheme, "sensing.adc_bits": 0,
                        **{f"scheme.{k}": v for k, v in options.items()}})
    ctx = SchemeContext(nominal=nominal_device(cfg.device), sensing=cfg.sensing,
                        sensor=Sensor(cfg.sensing, cfg.device.g_min, cfg.device.g_max), device=cfg.device,
                        max_pulses=cfg.scheme.max_pulses)
    array = PairArray.create(torch.zeros(shape, dtype=torch.float64), build_device(cfg.device),
                             PairConfig(g_ref_fraction=g_ref_fraction), cfg.scheme.max_pulses)
    return build_scheme(scheme, dict(cfg.scheme.params), array, ctx), array


@pytest.mark.parametrize("kind", ["table", "exponential"])
def test_abrupt_ltp_device_has_gradual_ltd_and_home_g_max(kind, abrupt_ltp_csv):
    cfg = build_config(device_values(kind, abrupt_ltp_csv))
    assert not gradual_is_ltp(nominal_device(cfg.device))
    assert solve(cfg.device, cfg.sensing.__class__(adc_bits=3)).home == "g_max"


@pytest.mark.parametrize("kind", ["table", "exponential"])
@pytest.mark.parametrize("scheme, options", [
    ("unidirectional", {"refresh": False}),
    ("mixed_precision", {"refresh": False}),
    ("crus", {"optimize": False, "reverse": False, "refresh": False}),
])
def test_direction_choosing_schemes_pulse_ltd_on_abrupt_ltp(kind, scheme, options, abrupt_ltp_csv):
    updater, array = make(scheme, device_values(kind, abrupt_ltp_csv), **options)
    updater.before_sample(1, Key.from_seed(0, 1))
    gen = torch.Generator().manual_seed(0)
    request = torch.randn(array.weight.shape, generator=gen, dtype=torch.float64) * 3 * array.dw_step
    for step in range(3):
        updater.update(request, None, Key.from_seed(0, 1).fold(step))
    totals = array.counter.totals()
    assert totals["ltp"] == [[0.0], [0.0]]
    assert totals["ltd"][0][0] > 0 and totals["ltd"][1][0] > 0


@pytest.mark.parametrize("kind", ["table", "exponential"])
@pytest.mark.parametrize("scheme, options", [
    ("unidirectional", {"refresh": True, "refresh_every": 1, "refresh_threshold": 0.3}),
    ("crus", {"optimize": False, "window_levels": 0, "refresh": True}),
])
def test_refresh_on_abrupt_ltp_resets_to_g_max_and_keeps_the_weight(kind, scheme, options, abrupt_ltp_csv):
    updater, array = make(scheme, device_values(kind, abrupt_ltp_csv), **options)
    g_min, g_max = float(array.model.g_min), float(array.model.g_max)
    g = array.g.clone()
    g[:, 0] = g_min + 0.2 * (g_max - g_min)  # both devices far below home (g_max)
    g[:, 1] = g_min + 0.1 * (g_max - g_min)
    array.load_state_dict({"g": g, "counter": array.counter.state_dict()})
    weight = array.weight.clone()
    updater.before_sample(1, Key.from_seed(0, 1))
    assert array.counter.refreshes == array.weight.numel()
    # the larger device goes home to g_max; the other carries the difference below it, by LTD
    assert torch.allclose(array.g[:, 0], torch.full_like(array.g[:, 0], g_max))
    totals = array.counter.totals()
    assert totals["ltp"] == [[0.0], [0.0]] and totals["ltd"][1][0] > 0
    assert float(array.weight.mean()) == pytest.approx(float(weight.mean()), rel=0.1)
