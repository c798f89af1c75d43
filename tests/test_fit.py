"""hnntrain device fit: parameter recovery, noise estimates, outputs, input errors, CLI."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hnntrain.cli import app
from hnntrain.io.fit import ExponentialFit, fit_files
from hnntrain.io.fit_output import write_outputs
from hnntrain.io.resolve import resolve
from hnntrain.physics.devices import nl_to_norm_a, read_curves
from hnntrain.physics.devices.measured import FitError, read_measurements

TRUE = {"a_ltp": 30.0, "a_ltd": 5.0, "levels": 64, "g_min": 1.0, "g_max": 10.0}


def synthetic_rows(a_ltp=30.0, a_ltd=5.0, levels=64, g_min=1.0, g_max=10.0, cycles=3, devices=1, c2c=0.01,
                   a_spread=0.0, seed=0) -> list[tuple[str, int, float, int, str]]:
    """(direction, pulse, conductance µS, cycle, device) rows of the exponential device with
    NeuroSim cycle-to-cycle noise: every pulse adds N(0, (c2c * range)^2), and the next pulse
    starts from the noisy state (as the simulator does), so the noise accumulates along each
    cycle. Device d has A multiplied by exp(a_spread * z_d)."""
    rng = np.random.default_rng(seed)
    rows = []
    for device in range(devices):
        scale = np.exp(a_spread * rng.standard_normal(2))
        model = ExponentialFit(g_min, g_max, a_ltp * scale[0], a_ltd * scale[1], levels)
        for cycle in range(1, cycles + 1):
            for ltp, name in ((True, "LTP"), (False, "LTD")):
                noise = rng.standard_normal(levels) * c2c * (g_max - g_min)
                g = [g_min if ltp else g_max]
                for k in range(levels):
                    g.append(max(g[-1] + float(model.step(g[-1], ltp)) + noise[k], 0.0))
                rows += [(name, k, value, cycle, f"d{device}") for k, value in enumerate(g)]
    return rows


def write_csv(path: Path, rows, header="direction,pulse,conductance,cycle,device", scale=1.0, sep=",") -> Path:
    lines = [header] + [sep.join([d, str(p), f"{g * scale:.6g}", str(c), dev][: header.count(sep) + 1])
                        for d, p, g, c, dev in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- recovery --------------------------------------------------------------------------------

def test_recovers_known_parameters(tmp_path):
    """3 cycles of 1 % per-pulse noise. Over 40 seeds the estimates scatter (sd) by 7 % (A_LTP),
    4 % (A_LTD), 0.4 % / 2 % of the range (g_min / g_max) and 4 % (c2c), without bias; the
    tolerances are about 3 sd."""
    fit = fit_files(write_csv(tmp_path / "m.csv", synthetic_rows(**TRUE, cycles=3, c2c=0.01)))
    e = fit.exponential
    assert e.levels == 64
    assert abs(e.a_ltp / 30 - 1) < 0.25 and abs(e.a_ltd / 5 - 1) < 0.15
    assert abs(e.g_min - 1) < 0.06 * 9 and abs(e.g_max - 10) < 0.06 * 9
    assert abs(fit.c2c / 0.01 - 1) < 0.3
    assert "across cycles" in fit.c2c_method
    assert fit.d2d_nl == 0 and fit.d2d_g == 0
    assert {q.model for q in fit.quality} == {"exponential", "table"}
    assert all(q.heldout_rmse is not None and q.r2 > 0.9 for q in fit.quality)


def test_one_cycle_estimates_c2c_from_model_increments(tmp_path):
    fit = fit_files(write_csv(tmp_path / "m.csv", synthetic_rows(**TRUE, cycles=1, c2c=0.01, seed=3)))
    assert "one cycle" in fit.c2c_method and abs(fit.c2c / 0.01 - 1) < 0.3
    assert all(q.heldout_rmse is None for q in fit.quality)
    assert "interpolates the data exactly" in fit.reason


def test_noise_free_curves_are_fitted_exactly(tmp_path):
    fit = fit_files(write_csv(tmp_path / "m.csv", synthetic_rows(**TRUE, cycles=1, c2c=0.0)))
    e = fit.exponential
    assert e.a_ltp == pytest.approx(30, rel=1e-3) and e.a_ltd == pytest.approx(5, rel=1e-3)
    assert e.g_min == pytest.approx(1, abs=1e-4) and e.g_max == pytest.approx(10, abs=1e-4)
    assert fit.c2c < 1e-4


def test_several_devices_give_d2d_spread(tmp_path):
    rows = synthetic_rows(**TRUE, cycles=2, devices=4, c2c=0.005, a_spread=0.3, seed=1)
    fit = fit_files(write_csv(tmp_path / "m.csv", rows))
    assert len(fit.per_device) == 4 and fit.d2d_nl > 0.2 and 0 < fit.d2d_g < 0.05
    assert fit.data.devices == ("d0", "d1", "d2", "d3")


# -- outputs ---------------------------------------------------------------------------------

def test_toml_and_table_round_trip(tmp_path):
    fit = fit_files(write_csv(tmp_path / "m.csv", synthetic_rows(**TRUE)))
    toml_path, table_path, device = write_outputs(fit, tmp_path / "out" / "dev.toml")
    assert table_path == tmp_path / "out" / "dev-table.csv"
    assert resolve(toml_path).device == device
    e = fit.exponential
    assert device.model == "exponential" and device.levels == 64
    assert device.a_ltp == pytest.approx(e.a_ltp, rel=1e-5) and device.a_ltd == pytest.approx(e.a_ltd, rel=1e-5)
    assert device.g_min == pytest.approx(e.g_min, rel=1e-5) and device.c2c == pytest.approx(fit.c2c, rel=1e-5)
    text = toml_path.read_text()
    assert "# nl_ltp" in text and '# model = "table"' in text and "dev-table.csv" in text
    curves = read_curves(table_path)
    assert curves.levels == 64 and np.allclose(curves.ltp, fit.table.ltp, rtol=1e-5)
    table_cfg = resolve(None, {"device.model": "table", "device.table": str(table_path)}).device
    assert table_cfg.levels == 64


def test_toml_gives_nl_labels_when_devices_differ(tmp_path):
    rows = synthetic_rows(**TRUE, cycles=1, devices=3, a_spread=0.3, seed=2)
    fit = fit_files(write_csv(tmp_path / "m.csv", rows))
    _, _, device = write_outputs(fit, tmp_path / "dev.toml")
    assert device.a_ltp is None and device.d2d_nl == pytest.approx(fit.d2d_nl, rel=1e-5)
    assert nl_to_norm_a(device.nl_ltp) * 64 == pytest.approx(fit.exponential.a_ltp, rel=1e-4)


# -- reading ---------------------------------------------------------------------------------

def test_units_in_header_or_option_are_converted(tmp_path):
    rows = synthetic_rows(**TRUE, cycles=1, c2c=0.0)
    reference = read_measurements(write_csv(tmp_path / "u.csv", rows)).g
    for header, scale, units in (("direction,pulse,conductance (S)", 1e-6, None),
                                 ("direction,pulse,G [mS]", 1e-3, None),
                                 ("direction,pulse,conductance_nS", 1e3, None),
                                 ("direction,pulse,G/uS", 1.0, "uS"),
                                 ("direction,pulse,conductance", 1e-6, "S")):
        path = write_csv(tmp_path / "s.csv", rows, header=header, scale=scale)
        assert np.allclose(read_measurements(path, units).g, reference, rtol=1e-5), header


def test_mixed_units_are_an_error(tmp_path):
    rows = synthetic_rows(**TRUE, cycles=1)
    in_s = write_csv(tmp_path / "s.csv", rows, header="direction,pulse,conductance (S)", scale=1e-6)
    in_us = write_csv(tmp_path / "us.csv", rows, header="direction,pulse,conductance (uS)")
    plain = write_csv(tmp_path / "plain.csv", rows, header="direction,pulse,conductance")
    with pytest.raises(FitError, match="--units"):
        read_measurements(in_s, units="uS")
    with pytest.raises(FitError, match="mixed units"):
        read_measurements([in_s, in_us])
    with pytest.raises(FitError, match="names no unit"):
        read_measurements([in_us, plain])
    assert len(read_measurements([in_us, plain], units="uS").devices) == 2
    bad = write_csv(tmp_path / "bad.csv", rows, header="direction,pulse,conductance (a.u.)")
    with pytest.raises(FitError, match="unknown conductance unit"):
        read_measurements(bad)


def test_aliases_inferred_cycles_and_continued_numbering(tmp_path):
    rows = synthetic_rows(**TRUE, cycles=2, c2c=0.0)
    names = {"LTP": "Potentiation", "LTD": "RESET"}
    # no cycle column: a repeated pulse number starts a new cycle; LTD numbered on from LTP
    aliased = [(names[d], p + (65 if d == "LTD" else 0), g, c, dev) for d, p, g, c, dev in rows]
    path = write_csv(tmp_path / "a.csv", aliased, header="Type;Pulse Number;G (µS)", sep=";")
    path.write_text("\ufeff" + path.read_text().replace(".", ","))  # BOM and decimal commas
    m = read_measurements(path)
    assert len(m.cycles) == 2 and m.pulse.max() == 64 and m.levels == 64
    assert np.allclose(np.sort(m.g), np.sort([g for _, _, g, _, _ in rows]), rtol=1e-5)


def test_noisy_non_monotonic_data_fit_with_warnings(tmp_path):
    rows = synthetic_rows(**TRUE, cycles=2, c2c=0.08, seed=4)
    fit = fit_files(write_csv(tmp_path / "m.csv", rows))
    assert any("not monotonic" in w for w in fit.warnings)
    assert any("dominated by noise" in w for w in fit.warnings)
    assert fit.exponential.g_min < fit.exponential.g_max


@pytest.mark.parametrize("text, fragment", [
    ("direction,pulse\nLTP,0\n", "missing column(s) 'conductance'"),
    ("direction,pulse,g\nLTP,0,1\nLTP,x,2\n", "row 3, column 'pulse'"),
    ("direction,pulse,g\nLTP,0,1\n", "column 'pulse'"),
    ("direction,pulse,g\nLTP,0,1\nLTP,1,2\nLTD,0,2\nLTD,1,1\nLTD,2,0.5\n", "LTP has 2 distinct pulse"),
    ("direction,pulse,g\nLTP,0,1\nLTP,1,2\nLTP,2,3\nLTD,0,1\nLTD,1,2\nLTD,2,3\n", "labels swapped"),
    ("direction,pulse,g\nup,0,1\nsideways,1,2\n", "row 3, column 'direction'"),
    ("direction,pulse,g,cycle\nLTP,0,1,1\nLTP,0,1,1\n", "rows 2 and 3"),
    ("direction,pulse,g\nLTP,1.5,1\n", "row 2, column 'pulse'"),
    ("direction,pulse,g,G\nLTP,0,1,1\n", "both name the conductance"),
])
def test_bad_input_names_row_or_column(tmp_path, text, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(FitError) as err:
        fit_files(path)
    assert fragment in str(err.value)


# -- property tests --------------------------------------------------------------------------

@st.composite
def valid_csv(draw):
    levels = draw(st.integers(3, 40))
    g_min = draw(st.floats(0, 5))
    rows = synthetic_rows(
        a_ltp=levels * draw(st.floats(0.05, 5)), a_ltd=levels * draw(st.floats(0.05, 5)), levels=levels,
        g_min=g_min, g_max=g_min + draw(st.floats(0.5, 50)), cycles=draw(st.integers(1, 3)),
        devices=draw(st.integers(1, 2)), c2c=draw(st.floats(0, 0.02)), a_spread=draw(st.floats(0, 0.3)),
        seed=draw(st.integers(0, 2**16)))
    header, scale = draw(st.sampled_from([
        ("direction,pulse,conductance,cycle,device", 1.0), ("Direction,N,conductance (S),Cycle,Device", 1e-6),
        ("dir,pulse_number,g_nS,cycle_no,cell", 1e3), ("direction,pulse,G,cycle", 1.0)]))
    if header.count(",") < 4:  # no device column: one device per file
        rows = [r for r in rows if r[4] == "d0"]
    return rows, header, scale


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_csv())
def test_valid_csv_always_fits(case):
    rows, header, scale = case
    with tempfile.TemporaryDirectory() as tmp:
        fit = fit_files(write_csv(Path(tmp) / "m.csv", rows, header=header, scale=scale))
        e = fit.exponential
        values = [e.g_min, e.g_max, e.a_ltp, e.a_ltd, fit.c2c, fit.d2d_nl, fit.d2d_g]
        values += [v for q in fit.quality for v in (q.rmse, q.heldout_rmse or 0.0)]
        assert np.isfinite(values).all() and 0 <= e.g_min < e.g_max
        _, _, device = write_outputs(fit, Path(tmp) / "dev.toml")
        assert device.g_max > device.g_min


def _mutate(text: str, kind: str, where: int) -> tuple[str, str | None]:
    """A broken copy of a valid CSV (header line, then rows), and the --units to pass."""
    header, *rows = text.strip().split("\n")
    row = where % len(rows)
    cells = [r.split(",") for r in rows]
    if kind == "drop_column":
        drop = where % 3
        return "\n".join(",".join(c[:drop] + c[drop + 1:]) for c in [header.split(",")] + cells), None
    if kind in ("text_pulse", "text_g", "empty_g", "nan_g", "negative_pulse", "fraction_pulse", "huge_pulse",
                "negative_g", "direction"):
        column, value = {"text_pulse": (1, "five"), "text_g": (2, "1.2.3"), "empty_g": (2, ""),
                         "nan_g": (2, "nan"), "negative_pulse": (1, "-3"), "fraction_pulse": (1, "2.5"),
                         "huge_pulse": (1, "1e300"), "negative_g": (2, "-1e-3"), "direction": (0, "sideways")}[kind]
        cells[row][column] = value
    elif kind == "short_row":
        cells[row] = cells[row][:2]
    elif kind == "few_pulses":
        cells = [c for c in cells if int(c[1]) < 2]
    elif kind == "duplicate":
        cells.insert(row, list(cells[row]))
    elif kind == "swap":
        cells = [["LTD" if c[0] == "LTP" else "LTP"] + c[1:] for c in cells]
    elif kind == "constant":
        cells = [c[:2] + ["3.0"] + c[3:] for c in cells]
    elif kind == "header_only":
        cells = []
    elif kind == "mixed_units":
        return text.replace("conductance", "conductance (uS)", 1), "nS"
    return "\n".join([header] + [",".join(c) for c in cells]) + "\n", None


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["drop_column", "text_pulse", "text_g", "empty_g", "nan_g", "negative_pulse",
                        "fraction_pulse", "huge_pulse", "negative_g", "direction", "short_row", "few_pulses",
                        "duplicate", "swap", "constant", "header_only", "mixed_units"]),
       st.integers(0, 10_000), st.integers(1, 2))
def test_invalid_csv_always_raises_fit_error(kind, where, cycles):
    rows = synthetic_rows(levels=6, a_ltp=4.0, a_ltd=2.0, cycles=cycles, c2c=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_csv(Path(tmp) / "m.csv", rows)
        text, units = _mutate(path.read_text(), kind, where)
        path.write_text(text)
        with pytest.raises(FitError) as err:
            fit_files(path, units)
    assert "row" in str(err.value) or "column" in str(err.value), str(err.value)



@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_arbitrary_text_raises_fit_error(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "junk.csv"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(FitError) as err:
            fit_files(path)
    assert "row" in str(err.value) or "column" in str(err.value), str(err.value)


# -- command ---------------------------------------------------------------------------------

def test_cli_writes_toml_table_and_png(tmp_path):
    runner = CliRunner()
    csv_path = write_csv(tmp_path / "m.csv", synthetic_rows(**TRUE, cycles=2, c2c=0.01),
                         header="direction,pulse,conductance (S),cycle,device", scale=1e-6)
    out, png = tmp_path / "o" / "dev.toml", tmp_path / "fit.png"
    res = runner.invoke(app, ["device", "fit", str(csv_path), "--out", str(out), "--plot", str(png)])
    assert res.exit_code == 0, res.output
    assert "better model" in res.output and "held-out RMSE" in res.output
    assert resolve(out).device.levels == 64
    assert (tmp_path / "o" / "dev-table.csv").is_file() and png.read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(app, ["device", "fit", str(csv_path), "--out", str(out), "--units", "uS"])
    assert res.exit_code == 2 and "--units" in res.output and "Traceback" not in res.output
    bad = tmp_path / "bad.csv"
    bad.write_text("direction,pulse,G [xS]\nLTP,0,1\n")
    res = runner.invoke(app, ["device", "fit", str(bad)])
    assert res.exit_code == 2 and "column 'G [xS]'" in res.output  # not eaten as rich markup


def test_fitter_and_device_model_share_one_curve():
    """The least-squares residual (normalized shape), the fit's predictions and the simulator's
    device curves are one closed form: they agree to float64 rounding."""
    import torch

    from hnntrain.io.fit import _shape
    from hnntrain.physics.devices import build_device
    from hnntrain.spec.config import DeviceConfig

    fit = ExponentialFit(g_min=1.0, g_max=10.0, a_ltp=20.0, a_ltd=5.0, levels=64)
    device = build_device(DeviceConfig(a_ltp=20.0, a_ltd=5.0, levels=64, g_min=1.0, g_max=10.0), dtype=torch.float64)
    up, down = device.curves()
    pulses = np.arange(65)
    np.testing.assert_allclose(fit.predict(np.ones(65, bool), pulses), up.numpy(), rtol=1e-12)
    np.testing.assert_allclose(fit.predict(np.zeros(65, bool), pulses), down.numpy(), rtol=1e-12)
    np.testing.assert_allclose(1.0 + 9.0 * _shape(pulses / 64, 64 / 20.0), up.numpy(), rtol=1e-12)
    np.testing.assert_allclose(fit.step(up.numpy()[:-1], True), np.diff(up.numpy()), rtol=1e-9, atol=1e-12)
