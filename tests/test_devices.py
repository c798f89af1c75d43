import csv
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hnntrain.io.resolve import build_config
from hnntrain.physics.devices import (
    ExponentialDevice,
    TableError,
    build_device,
    nl_to_norm_a,
    nl_to_pulses,
    nominal_device,
    norm_a_to_nl,
    read_curves,
)
from hnntrain.physics.rng import Key
from hnntrain.spec.config import ConfigError, DeviceConfig

def neurosim_nl_table() -> list[tuple[str, str, str]]:
    """NeuroSim's published (NL, a = A/Pmax) table, 900 rows as printed: (nl, norm_a from
    formula.cpp's getParamA, 6 decimals; norm_a_htm from the Excel page, 4 decimals or 6
    significant digits). Source and provenance in the file's header."""
    lines = (Path(__file__).parent / "data" / "neurosim_nl_table.csv").read_text().splitlines()
    rows = list(csv.reader(line for line in lines if not line.startswith("#")))
    assert rows[0] == ["nl", "norm_a", "norm_a_htm"]
    return [tuple(row) for row in rows[1:]]


def printed(value: float, like: str) -> str:
    """``value`` rounded to as many decimals as the table entry ``like`` prints."""
    return f"{value:.{len(like.split('.')[1])}f}"


def test_neurosim_nl_table_fixture_is_complete():
    table = neurosim_nl_table()
    assert [round(float(nl) * 100) for nl, _, _ in table] == list(range(1, 901))


def test_nl_label_reproduces_all_of_neurosims_table():
    """Every one of the 900 entries, at the table's printed precision: the relation (largest
    perpendicular distance from the diagonal = 0.07 NL) rounds to NeuroSim's number exactly.
    Worst |a - table| over the 6-decimal table: 4.99e-7, just under half a unit of its last
    digit (NL 3.38), so the relation is what the table was computed from, not a fit to it."""
    table = neurosim_nl_table()
    ours = [nl_to_norm_a(float(nl)) for nl, _, _ in table]
    mismatched = [(nl, a, printed(mine, a)) for (nl, a, _), mine in zip(table, ours) if printed(mine, a) != a]
    assert mismatched == []
    # the Excel page rounds the same numbers to 4 decimals; six of its entries (NL 0.19, 1.1,
    # 3.06, 3.75, 5.82, 6.5) differ from the 6-decimal entries rounded again (a double rounding
    # of a ...5 digit); the relation, rounded once, matches the page at all 900 as well
    mismatched_htm = [(nl, a, mine) for (nl, _, a), mine in zip(table, ours) if float(printed(mine, a)) != float(a)]
    assert mismatched_htm == []


def test_nl_to_pulses_reproduces_neurosims_table_on_its_grid():
    """The interpolating path of nl_to_pulses (> 64 values) at the table's labels, which are
    nodes of its 0.005-step grid, gives the same numbers as the exact solve."""
    table = neurosim_nl_table()
    pulses = nl_to_pulses(torch.tensor([float(nl) for nl, _, _ in table], dtype=torch.float64), 1000)
    mismatched = [(nl, a) for (nl, a, _), p in zip(table, pulses.tolist()) if printed(p / 1000, a) != a]
    assert mismatched == []


def test_norm_a_to_nl_inverts_neurosims_table():
    worst = max(abs(norm_a_to_nl(float(a)) - float(nl)) for nl, a, _ in neurosim_nl_table())
    assert worst < 2e-5  # the 6-decimal rounding of a, seen through dNL/da (largest at NL 9)


@pytest.mark.parametrize("nl,norm_a", [(2.40, "0.4992"), (4.88, "0.2003")])
def test_nl_label_matches_neurosim_manual_examples(nl, norm_a):
    # the NeuroSim V3.0 manual's worked examples, printed with 4 decimals
    assert printed(nl_to_norm_a(nl), norm_a) == norm_a


def test_nl_grid_interpolation_close_to_exact():
    nl = torch.tensor([0.3, 1.7, 4.2, 8.8] * 20, dtype=torch.float64)
    exact = torch.tensor([nl_to_norm_a(v) * 64 for v in nl.tolist()], dtype=torch.float64)
    assert torch.allclose(nl_to_pulses(nl, 64), exact, rtol=2e-3)


def abrupt(**kw):
    return build_config({"device.preset": "abrupt-ltd", **{f"device.{k}": v for k, v in kw.items()}}).device


def test_exponential_closed_form_is_neurosim_curve():
    """G_LTP(P) = B(1 - exp(-P/A)) + g_min, with B = range / (1 - exp(-Pmax/A))."""
    cfg = abrupt()
    model = nominal_device(cfg, dtype=torch.float64)
    a = nl_to_norm_a(2.0) * 64
    b = 9.0 / (1 - math.exp(-64 / a))
    for p in (0, 1, 5, 30, 64):
        g = model.apply(torch.tensor([1.0], dtype=torch.float64), torch.tensor([float(p)], dtype=torch.float64))
        assert float(g) == pytest.approx(b * (1 - math.exp(-p / a)) + 1.0, rel=1e-12)
    up, down = model.curves()
    assert float(up[-1]) == pytest.approx(10.0) and float(down[-1]) == pytest.approx(1.0)


def test_n_pulses_at_once_equal_n_single_pulses():
    model = nominal_device(abrupt(), dtype=torch.float64)
    g0 = torch.linspace(1, 10, 11, dtype=torch.float64)
    for n in (3, -3, 7, -7):
        once = model.apply(g0, torch.full_like(g0, n))
        stepwise = g0
        for _ in range(abs(n)):
            stepwise = model.apply(stepwise, torch.full_like(g0, math.copysign(1, n)))
        assert torch.allclose(once, stepwise, atol=1e-12)


def test_linear_device_moves_exactly_one_step():
    model = nominal_device(build_config({"device.preset": "ideal"}).device, dtype=torch.float64)
    g = torch.tensor([5.0, 5.0, 1.0, 10.0], dtype=torch.float64)
    out = model.apply(g, torch.tensor([1.0, -2.0, -1.0, 1.0], dtype=torch.float64))
    step = 9.0 / 256
    assert torch.allclose(out, torch.tensor([5 + step, 5 - 2 * step, 1.0, 10.0], dtype=torch.float64))


def test_nl_zero_is_linear():
    model = nominal_device(DeviceConfig(nl_ltp=0.0, nl_ltd=0.0, levels=50))
    up, down = model.curves()
    assert torch.allclose(up.diff(), torch.full((50,), 9.0 / 50, dtype=torch.float64), rtol=1e-4)


@settings(max_examples=60, deadline=None)
@given(
    nl_ltp=st.floats(0, 9), nl_ltd=st.floats(0, 9), levels=st.integers(2, 300),
    c2c=st.floats(0, 0.1), seed=st.integers(0, 2**31),
    pulses=st.lists(st.integers(-40, 40), min_size=1, max_size=30),
)
def test_conductance_stays_in_bounds(nl_ltp, nl_ltd, levels, c2c, seed, pulses):
    cfg = DeviceConfig(nl_ltp=nl_ltp, nl_ltd=nl_ltd, levels=levels, c2c=c2c, d2d_g=0.05, d2d_nl=0.3)
    gen = torch.Generator().manual_seed(seed)
    model = build_device(cfg, (len(pulses),), gen)
    g = model.g_min + torch.rand(len(pulses), generator=gen) * (model.g_max - model.g_min)
    for _ in range(3):
        g = model.apply(g, torch.tensor(pulses, dtype=torch.float32), Key.from_seed(seed, 1).fold(_))
        assert bool(((g >= model.g_min) & (g <= model.g_max)).all())


@settings(max_examples=30, deadline=None)
@given(preset=st.sampled_from(["ideal", "abrupt-ltd", "abrupt-ltp", "nonlinear-both", "pcmo"]),
       seed=st.integers(0, 1000))
def test_zero_pulses_change_nothing_even_with_noise(preset, seed):
    cfg = build_config({"device.preset": preset, "device.c2c": 0.05}).device
    model = build_device(cfg)
    g = torch.linspace(cfg.g_min, cfg.g_max, 17)
    assert torch.equal(model.apply(g, torch.zeros(17), Key.from_seed(seed, 1)), g)


def test_additive_c2c_sigma_scales_with_sqrt_pulses():
    cfg = DeviceConfig(model="linear", levels=1000, c2c=0.01)
    model = build_device(cfg)
    g = torch.full((200_000,), 5.0, dtype=torch.float32)
    for n in (1, 4):
        out = model.apply(g, torch.full_like(g, float(n)), Key.from_seed(1, 1))
        spread = (out - (5.0 + n * 9.0 / 1000)).std()
        assert float(spread) == pytest.approx(0.01 * 9.0 * math.sqrt(n), rel=0.02)


def test_multiplicative_c2c_scales_the_change():
    cfg = DeviceConfig(model="linear", levels=100, c2c=0.2, c2c_mode="multiplicative")
    model = build_device(cfg)
    g = torch.full((200_000,), 5.0, dtype=torch.float64)
    out = model.apply(g, torch.full_like(g, 4.0), Key.from_seed(2, 1))
    change = out - 5.0
    assert float(change.mean()) == pytest.approx(4 * 0.09, rel=0.01)
    assert float(change.std() / change.mean()) == pytest.approx(0.2 / 2, rel=0.03)


def test_d2d_draws_are_per_device_and_reproducible():
    cfg = DeviceConfig(nl_ltp=2, nl_ltd=6, d2d_nl=0.5, d2d_g=0.02)
    a = build_device(cfg, (3, 2, 1, 4), torch.Generator().manual_seed(7))
    b = build_device(cfg, (3, 2, 1, 4), torch.Generator().manual_seed(7))
    assert a.a_ltd.shape == (3, 2, 1, 4) and a.g_max.shape == (3, 2, 1, 4)
    assert torch.equal(a.a_ltd, b.a_ltd) and a.a_ltd.std() > 0
    assert bool((a.g_max > a.g_min).all())


def test_rows_of_selects_per_device_parameters():
    cfg = DeviceConfig(d2d_g=0.05)
    model = build_device(cfg, (5, 2, 1, 3), torch.Generator().manual_seed(0))
    sub = model.rows_of(torch.tensor([4, 1]))
    assert torch.equal(sub.g_min, model.g_min[[4, 1]])


def write_csv(path, ltp, ltd, header="direction,pulse,conductance"):
    rows = [header] + [f"LTP,{i},{g}" for i, g in enumerate(ltp)] + [f"LTD,{i},{g}" for i, g in enumerate(ltd)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_table_device_reproduces_measured_points(tmp_path):
    ltp = [1.0, 3.0, 4.5, 5.5, 6.0]
    ltd = [6.0, 2.0, 1.5, 1.2, 1.0]
    csv_path = write_csv(tmp_path / "dev.csv", ltp, ltd)
    cfg = build_config({"device.model": "table", "device.table": str(csv_path)}).device
    assert (cfg.g_min, cfg.g_max, cfg.levels) == (1.0, 6.0, 4)
    model = nominal_device(cfg, dtype=torch.float64)
    start = torch.tensor([1.0, 3.0, 6.0, 2.0], dtype=torch.float64)
    out = model.apply(start, torch.tensor([1.0, 2.0, -1.0, -2.0], dtype=torch.float64))
    assert torch.allclose(out, torch.tensor([3.0, 5.5, 2.0, 1.2], dtype=torch.float64))
    # between points: linear in the pulse coordinate
    mid = model.apply(torch.tensor([2.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64))
    assert float(mid) == pytest.approx(3.75)


def test_table_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("direction,pulse\nLTP,0\n")
    with pytest.raises(TableError, match="missing column"):
        read_curves(bad)
    bad.write_text("direction,pulse,conductance\nLTP,0,1\nLTP,1,x\n")
    with pytest.raises(TableError, match="row 3"):
        read_curves(bad)
    with pytest.raises(ConfigError, match="device.table"):
        build_config({"device.model": "table", "device.table": str(tmp_path / "missing.csv")})


def test_exponential_pulse_position_inverts_curve():
    model = nominal_device(abrupt(), dtype=torch.float64)
    assert isinstance(model, ExponentialDevice)
    up, down = model.curves()
    p = torch.arange(65, dtype=torch.float64)
    assert torch.allclose(model.pulse_position(up, True), p, atol=1e-6)
    assert torch.allclose(model.pulse_position(down[:20], False), p[:20], atol=1e-5)


@pytest.mark.parametrize("preset", ["abrupt-ltp", "abrupt-ltd", "nonlinear-both"])
def test_pulses_to_is_finite_at_the_bounds_in_float32(preset):
    model = nominal_device(build_config({"device.preset": preset}).device)  # float32
    g = torch.tensor([1.0, 10.0, 10.0, 1.0, 5.0])
    target = torch.tensor([1.0, 10.0, 10.0, 1.0, 10.0])
    ltp = torch.tensor([True, True, False, False, True])
    n = model.pulses_to(g, target, ltp)
    assert bool(torch.isfinite(n).all()) and bool((n >= 0).all())
    assert float(n[1]) == 0.0 and float(n[3]) == 0.0  # already there


def test_push_pull_on_a_soft_bounds_pair_is_one_soft_bounds_weight():
    """docs/validation.md maps aihwkit's SoftBounds device (dw = dw_min (1 - w/w_max) up,
    -dw_min (1 + w/w_max) down) onto a pair of exponential devices with A = w_max/dw_min pulses.
    One push-pull pulse moves w = scale (G+ - G-) by

        dw = +/- (1 - exp(-1/A)) (w_max (2 B/range - 1) -/+ w),    B/range = 1 / (1 - exp(-levels/A)),

    whatever the pair's common mode: the two devices' soft bounds add up to one soft bound in w.
    With levels = 5 A, that is aihwkit's step to within 1.4 % of dw_min."""
    a, levels, w_max = 600.0, 3000, 0.6
    cfg = build_config({"device.model": "exponential", "device.a_ltp": a, "device.a_ltd": a,
                        "device.levels": levels, "pair.w_max": w_max})
    model = nominal_device(cfg.device, dtype=torch.float64)
    scale = w_max / float(model.g_max - model.g_min)
    asymptote = w_max * (2 / -math.expm1(-levels / a) - 1)
    one = torch.ones(1, dtype=torch.float64)
    for g_plus, g_minus in [(5.5, 5.5), (8.0, 4.0), (3.0, 2.0), (9.0, 1.5), (2.0, 9.5)]:
        gp, gm = torch.tensor([g_plus], dtype=torch.float64), torch.tensor([g_minus], dtype=torch.float64)
        w = (g_plus - g_minus) * scale
        up = float(model.apply(gp, one) - model.apply(gm, -one)) * scale - w
        down = float(model.apply(gp, -one) - model.apply(gm, one)) * scale - w
        assert up == pytest.approx(-math.expm1(-1 / a) * (asymptote - w), rel=1e-9)
        assert down == pytest.approx(-(-math.expm1(-1 / a)) * (asymptote + w), rel=1e-9)
        dw_min = w_max / a
        assert abs(up - dw_min * (1 - w / w_max)) < 0.014 * dw_min
        assert abs(down + dw_min * (1 + w / w_max)) < 0.014 * dw_min


def test_linear_pair_with_1200_levels_steps_like_aihwkit_constant_step():
    """docs/validation.md: ConstantStep (dw_min = 0.001, bounds +/- 0.6) is a linear pair with
    pair.w_max = 0.6 and levels = 2 w_max / dw_min = 1200: one push-pull pulse (LTP on G+, LTD
    on G-) moves w by 2 w_max / levels = 0.001, and w reaches +/- 0.6 exactly when both devices
    reach their bounds together."""
    cfg = build_config({"device.model": "linear", "device.levels": 1200, "pair.w_max": 0.6})
    model = nominal_device(cfg.device, dtype=torch.float64)
    scale = 0.6 / float(model.g_max - model.g_min)
    assert 2 * scale * model.operating_step == pytest.approx(0.001, rel=1e-12)
    mid = torch.full((1,), float(model.g_min + model.g_max) / 2, dtype=torch.float64)
    n = torch.full((1,), 600.0, dtype=torch.float64)
    w_top = float(model.apply(mid, n) - model.apply(mid, -n)) * scale
    assert w_top == pytest.approx(0.6, rel=1e-12)
    assert float(model.apply(mid, n + 5) - model.apply(mid, -n - 5)) * scale == pytest.approx(0.6, rel=1e-12)
