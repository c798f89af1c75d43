import json

from typer.testing import CliRunner

from hnntrain.cli import app

runner = CliRunner()


def test_run_command_writes_result(tmp_path, idx_dir):
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", "--set", "model.hidden=[16]", "--set", "device.preset=abrupt-ltd",
                              "--data-dir", str(idx_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "ok" and 0 <= result["test_accuracy"] <= 1


def test_config_file_with_bad_value_names_field(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[device]\nlevels = 1\n")
    res = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "device.levels" in res.output and "Traceback" not in res.output


def test_missing_or_truncated_data_files_give_clear_error(tmp_path, idx_dir):
    (idx_dir / "train-labels-idx1-ubyte").unlink()
    res = runner.invoke(app, ["run", "--data-dir", str(idx_dir), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "train-labels" in res.output
    (idx_dir / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x01\x90\x01")
    res = runner.invoke(app, ["run", "--data-dir", str(idx_dir), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "train-labels-idx1-ubyte" in res.output and "Traceback" not in res.output


def test_device_show_writes_png_and_rejects_unknown(tmp_path):
    png = tmp_path / "dev.png"
    res = runner.invoke(app, ["device", "show", "abrupt-ltd", "--out", str(png)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "NL LTD" in res.output
    res = runner.invoke(app, ["device", "show", "no-such-device"])
    assert res.exit_code == 2 and "preset" in res.output


def test_device_show_accepts_measured_csv(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text("Direction,Pulse,Conductance\n" + "\n".join(
        [f"LTP,{i},{1 + i * 0.5}" for i in range(9)] + [f"LTD,{i},{5 - i * 0.5}" for i in range(9)]))
    res = runner.invoke(app, ["device", "show", str(csv), "--out", str(tmp_path / "m.png")])
    assert res.exit_code == 0, res.output


def test_lists():
    assert runner.invoke(app, ["schemes"]).exit_code == 0
    res = runner.invoke(app, ["device", "list"])
    assert res.exit_code == 0 and "abrupt-ltd" in res.output


def test_compare_writes_table_json_and_figures(tmp_path, idx_dir):
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare", "--schemes", "fp,sgd,crus crus:accumulate=true", "--seeds", "2",
                              "--data-dir", str(idx_dir), "--set", "model.hidden=[12]", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "compare.json").read_text())
    assert [row["scheme"] for row in data["schemes"]] == ["fp", "sgd", "crus", "crus:accumulate=true"]
    variant = json.loads((out / "crus-accumulate-true" / "result.json").read_text())["config"]["scheme"]
    assert variant["name"] == "crus" and variant["params"] == {"accumulate": True}
    for row in data["schemes"]:
        for key in ("scheme", "test_accuracy", "test_accuracy_std", "update_noise", "pulses_per_sample", "senses",
                    "refreshes", "digital_bits"):
            assert key in row
    # the same device draws for every scheme: one seed, shared; crus senses, sgd does not
    rows = {row["scheme"]: row for row in data["schemes"]}
    assert rows["crus"]["senses"] > 0 and rows["sgd"]["senses"] == 0
    for name in ("compare.md", "accuracy.png", "update-noise.png"):
        assert (out / name).stat().st_size > 0
    for scheme in ("fp", "sgd", "crus"):
        cfg = json.loads((out / scheme / "result.json").read_text())["config"]
        assert cfg["sensing"]["adc_bits"] == 4 and cfg["train"]["replicas"] == 2


def test_compare_rejects_unknown_scheme_or_option_before_training(tmp_path):
    res = runner.invoke(app, ["compare", "--schemes", "sgd,nope", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "scheme.name" in res.output
    res = runner.invoke(app, ["compare", "--schemes", "crus:acumulate=true", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "scheme.acumulate" in res.output
