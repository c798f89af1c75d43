"""A newcomer's first hour: help that keeps its brackets, one line (never a traceback) for bad
input to any command, no silent data fetch or overwrite, one set of defaults and one
vocabulary, resumable runs, tables that fit 80 columns, footnotes on numbers not to be read
at face value. Everything runs on the tiny synthetic IDX data of conftest."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import typer
from rich.console import Console
from typer.testing import CliRunner

from hnntrain.cli import app
from hnntrain.cli.display import results_table
from hnntrain.experiments.compare import DEFAULT_SCHEMES
from hnntrain.experiments.store import ResultStore
from hnntrain.experiments.summary import COLUMNS, markdown_table
from hnntrain.spec.keys import config_keys, keys_markdown

runner = CliRunner()
TINY = ["--set", "model.hidden=[8]", "--set", "train.test_samples=100", "--samples", "120"]
ROOT = Path(__file__).resolve().parents[1]


def _commands(command, path: tuple[str, ...] = ()):
    yield path, command
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_every_help_page_renders_and_keeps_bracketed_text():
    root = typer.main.get_command(app)
    pages = 0
    for path, command in _commands(root):
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, (path, res.output)
        page = _flat(res.output)
        assert "<bool>" not in page, path  # flags are shown as flags
        for param in command.params:
            for bracketed in re.findall(r"\[[^\]]*\]", getattr(param, "help", None) or ""):
                assert bracketed in page, (path, param.name, bracketed)
        pages += 1
    assert pages > 15
    assert "[device]" in _flat(runner.invoke(app, ["run", "--help"]).output)
    assert "[grid]" in _flat(runner.invoke(app, ["sweep", "--help"]).output)


def test_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and re.fullmatch(r"hnntrain \d+\.\d+\.\d+\S*\n", res.output)


@pytest.fixture()
def bad_inputs(tmp_path, idx_dir):
    """(arguments, text the one-line error must contain) for every command."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    not_json = tmp_path / "result.json"
    not_json.write_text("{ nope")
    other_json = tmp_path / "other.json"
    other_json.write_text('{"hello": 1}')
    sweep_file = tmp_path / "s.toml"
    sweep_file.write_text('[base]\n"model.hidden" = [8]\n[grid]\n"device.c2c" = [0.0, 0.01]\n')
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("a,b\n1,2\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    data = ["--data-dir", str(idx_dir)]
    cases = [
        (["run", "--out", str(a_file), *data], "is a file"),
        (["run", "--out", str(a_file / "sub"), *data], "is a file"),
        (["run", "--resume", "--out", str(empty)], "no checkpoint"),
        (["run", "--torch-device", "tpu"], "runtime.device"),
        (["run", "--samples", "10", "--set", "train.samples=20"], "--samples"),
        (["run", "--set", f"data.dir={tmp_path / 'mnsit'}"], "does not exist"),
        (["run", "--device", "no-such-device"], "preset"),
        (["run", str(tmp_path / "missing.toml")], "not found"),
        (["compare", "--out", str(a_file), "--schemes", "fp", *data], "is a file"),
        (["compare", "--c2c", "2", "--schemes", "fp", "--out", str(tmp_path / "c")], "device.c2c"),
        (["compare", "--schemes", "crus:acumulate=true", "--out", str(tmp_path / "c")], "scheme.acumulate"),
        (["compare", "--schemes", "fp", "--tuned", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "c")],
         "not found"),
        (["tune", "--trials", "0", "--schemes", "sgd", "--out", str(tmp_path / "t")], "--trials"),
        (["tune", "--set", "train.lr=0.1", "--schemes", "sgd", "--out", str(tmp_path / "t")], "tune searches"),
        (["sweep", str(tmp_path / "missing.toml")], "not found"),
        (["sweep", str(sweep_file), "--c2c", "0.05", "--store", str(tmp_path / "s.sqlite")], "--c2c"),
        (["reproduce", "--out", str(a_file)], "is a file"),
        (["reproduce", "--only", "nope", "--out", str(tmp_path / "r")], "--only"),
        (["results", str(a_file)], "results store"),
        (["results", str(empty)], "directory"),
        (["report", str(tmp_path / "missing.sqlite")], "no such results store"),
        (["plot-un", str(not_json)], "not JSON"),
        (["plot-un", str(other_json)], "not an hnntrain result"),
        (["plot-un", str(empty)], "no result.json"),
        (["cost", str(other_json)], "not an hnntrain result"),
        (["cost", str(a_file)], "results store"),
        (["cost", str(not_json), "--set", "cost.nope=1"], "not JSON"),
        (["device", "show", "no-such-device"], "preset"),
        (["device", "fit", str(tmp_path / "missing.csv")], "missing.csv"),
        (["device", "fit", str(bad_csv)], "bad.csv"),
        (["config", "show", "--set", "device.levels=1"], "device.levels"),
        (["config", "show", str(tmp_path / "missing.toml")], "not found"),
        (["optimize", "--adc-bits", "99"], "sensing.adc_bits"),
        (["schemes", "nope"], "scheme.name"),
        (["data", "fetch", "--data-dir", str(a_file)], "a-file"),
    ]
    if not torch.cuda.is_available():
        cases.append((["run", "--torch-device", "cuda", *data, *TINY, "--out", str(tmp_path / "cuda")],
                      "runtime.device"))
    return cases


def test_bad_input_to_every_command_is_one_line_never_a_traceback(bad_inputs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default outputs (runs/...) land in the test's folder
    from hnntrain.io import data

    monkeypatch.setattr(data, "DEFAULT_SOURCES", [])  # a fetch would be a bug here: no network
    covered = set()
    for args, expected in bad_inputs:
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output, res.exception)
        assert isinstance(res.exception, SystemExit), (args, res.exception)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, res.stderr)
        assert expected in lines[0], (args, lines[0])
        covered.add(args[0] if args[0] not in ("device", "config", "data") else " ".join(args[:2]))
    root = typer.main.get_command(app)
    every = {" ".join(path) for path, command in _commands(root) if path and not hasattr(command, "commands")}
    assert every - covered <= {"device list", "config keys"}, every - covered  # these take no input


def test_a_mistyped_data_dir_is_an_error_not_a_download(tmp_path, monkeypatch):
    from hnntrain.io import data

    fetched = []
    monkeypatch.setattr(data, "_fetch_into", lambda *a, **k: fetched.append(a))
    typo = tmp_path / "mnsit"
    res = runner.invoke(app, ["run", "--data-dir", str(typo), *TINY, "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "does not exist" in res.stderr and "hnntrain data fetch --data-dir" in res.stderr
    assert not typo.exists() and not fetched and not (tmp_path / "o").exists()


def test_one_set_of_defaults_in_every_command(tmp_path):
    res = runner.invoke(app, ["config", "show"])
    assert res.exit_code == 0, res.output
    assert "adc_bits = 4" in res.output and "every = 100" in res.output
    res = runner.invoke(app, ["optimize", "--device", "abrupt-ltd"])
    assert res.exit_code == 0, res.output
    assert "4-bit ADC every 100 samples" in _flat(res.output) and "c2c 0 %" in _flat(res.output)
    res = runner.invoke(app, ["config", "show", "--device", "abrupt-ltd", "--set", "device.c2c=0.02"])
    assert "preset = \"abrupt-ltd\"" in res.output and "c2c = 0.02" in res.output and "nl_ltd = 8.0" in res.output


def test_config_keys_document_every_key_once():
    keys = config_keys()
    assert len({k.key for k in keys}) == len(keys) > 30
    for key in keys:
        assert key.doc, f"{key.key} has no docstring in spec/config.py"
    res = runner.invoke(app, ["config", "keys"])
    assert res.exit_code == 0
    for name in ("pair.init_scale", "train.eval_every", "train.shuffle"):
        assert name in res.output
    assert (ROOT / "docs" / "config.md").read_text().endswith(keys_markdown()), \
        "docs/config.md is stale: hnntrain config keys --markdown"


def test_schemes_lists_options_with_defaults():
    res = runner.invoke(app, ["schemes"])
    assert res.exit_code == 0 and "accumulate=false" in _flat(res.output) and "``" not in res.output
    res = runner.invoke(app, ["schemes", "crus"])
    assert res.exit_code == 0 and "scheme.accumulate = false" in res.output


def _interrupted_run(tmp_path: Path, idx_dir: Path, args: list[str]) -> Path:
    """A run folder left by a run stopped after its first epoch (as Ctrl-C leaves it)."""
    from hnntrain.engine.run import run
    from hnntrain.io.resolve import build_config

    out = tmp_path / "cut"
    cfg_values = {"model.hidden": [8], "train.test_samples": 100, "train.samples": 120, "train.epochs": 2,
                  "data.dir": str(idx_dir), "device.preset": "abrupt-ltd", "scheme.name": "crus"}
    calls = []
    with pytest.raises(KeyboardInterrupt):
        run(build_config(cfg_values), out, stop=lambda: calls.append(1) or len(calls) > 130)
    return out


def test_resume_takes_the_config_from_the_checkpoint_and_refuses_only_real_conflicts(tmp_path, idx_dir):
    out = _interrupted_run(tmp_path, idx_dir, [])
    res = runner.invoke(app, ["run", "--resume", "--out", str(out), "--samples", "999"])
    assert res.exit_code == 2 and "train.samples=999" in res.stderr and "120" in res.stderr
    res = runner.invoke(app, ["run", "--resume", "--out", str(out), "--torch-device", "cpu"])  # runtime: no conflict
    assert res.exit_code == 0, res.output
    resumed = json.loads((out / "result.json").read_text())
    ref = runner.invoke(app, ["run", "--device", "abrupt-ltd", "--scheme", "crus", "--epochs", "2", *TINY,
                              "--data-dir", str(idx_dir), "--out", str(tmp_path / "ref")])
    assert ref.exit_code == 0, ref.output
    unbroken = json.loads((tmp_path / "ref" / "result.json").read_text())
    assert resumed["config_hash"] == unbroken["config_hash"] and resumed["replicas"] == unbroken["replicas"]
    assert not (out / "checkpoint.pt").exists()  # finished: the checkpoint goes unless --keep-checkpoint
    again = runner.invoke(app, ["run", "--resume", "--out", str(out)])  # finished: nothing to continue
    assert again.exit_code == 2 and "finished run" in again.stderr


def test_no_silent_overwrite(tmp_path, idx_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["run", *TINY, "--data-dir", str(idx_dir)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    [folder] = list((tmp_path / "runs").iterdir())  # default: runs/<scheme>-<config hash>
    assert re.fullmatch(r"sgd-[0-9a-f]{8}", folder.name)
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--force" in again.stderr
    assert runner.invoke(app, [*args, "--force", "--keep-checkpoint"]).exit_code == 0
    assert (folder / "checkpoint.pt").exists()
    other = runner.invoke(app, ["run", *TINY, "--data-dir", str(idx_dir), "--seed", "3"])
    assert other.exit_code == 0 and len(list((tmp_path / "runs").iterdir())) == 2


def test_device_fit_does_not_overwrite_without_force(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text("direction,pulse,conductance\n" + "\n".join(
        [f"LTP,{i},{1 + 9 * (1 - 0.8 ** i) / (1 - 0.8 ** 30)}" for i in range(31)]
        + [f"LTD,{i},{10 - 9 * (1 - 0.8 ** i) / (1 - 0.8 ** 30)}" for i in range(31)]))
    assert runner.invoke(app, ["device", "fit", str(csv)]).exit_code == 0
    res = runner.invoke(app, ["device", "fit", str(csv)])
    assert res.exit_code == 2 and "--force" in res.stderr
    assert runner.invoke(app, ["device", "fit", str(csv), "--force"]).exit_code == 0


def _demo_rows() -> list[dict]:
    """Rows shaped like the demo's (three seeds), with its widest values."""
    rows = []
    for i, name in enumerate(DEFAULT_SCHEMES):
        rows.append({"scheme": name, "status": "ok", "test_accuracy": 0.9415 - i / 1000, "test_accuracy_std": 0.002,
                     "seeds": 3, "epochs": 2, "update_noise": 0.277 * 1.5 ** i,
                     "update_noise_window1": 1.79e8 if name == "tiki_taka" else 237.0,
                     "pulses_per_sample": 1542.5, "senses": 3.18e7, "refreshes": 282577.0, "digital_bits": 16,
                     "extra_arrays": 1, "samples_per_s": 1234.5, "classes": 10})
    return rows


def test_compare_table_fits_80_columns_with_a_legend(tmp_path):
    rows = _demo_rows()
    console = Console(width=80, record=True, file=open(tmp_path / "t.txt", "w"))
    console.print(results_table(rows, "abrupt-ltd (NL 2/8 LTP/LTD, 64 levels), c2c 2 %, 4-bit ADC every 100 "
                                      "samples, cap 16 pulses; 2 epochs of 20,000 samples, 3 seeds"))
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "…" not in text and "crus:accumulate=true" in text and "94.15 ± 0.20" in text
    md = markdown_table(rows, "t")
    assert all(c.title in md for c in COLUMNS) and "means over the epochs" in md


def test_chance_level_and_exploding_rows_get_footnotes():
    rows = _demo_rows()
    rows[4].update(test_accuracy=0.101)  # manhattan at chance
    md = markdown_table(rows, "t")
    assert "| manhattan¹ |" in md and "at chance level (10 % for 10 classes)" in md
    assert "| tiki_taka² |" in md and "² tiki_taka: update noise >= 10000" in md
    assert "| crus |" in md  # an ordinary row has no marker


def test_reproduce_below_the_full_protocol_is_indicative():
    from hnntrain.experiments.reproduce import (
        Claim,
        claim_sweeps,
        full_protocol,
        qualify,
    )

    full = claim_sweeps()
    assert full_protocol(full)
    small = claim_sweeps(samples=500)
    assert not full_protocol(small)
    claims = [Claim("c", "t", "m", "holds")] * 6
    out = qualify(claims, {s.name for s in small if s.name != "claims-c2c"}, full=False)
    assert out[0].verdict == "indicative: holds"
    assert out[4].verdict == "not measured" and "not run" in out[4].measured


def test_results_json_has_the_full_config(tmp_path, idx_dir):
    store = tmp_path / "c" / "compare.sqlite"
    res = runner.invoke(app, ["compare", "--schemes", "fp", *TINY, "--data-dir", str(idx_dir), "-w", "1",
                              "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    rows = json.loads(runner.invoke(app, ["results", str(store), "--json"]).stdout)
    assert rows[0]["config"]["sensing.adc_bits"] == 4 and rows[0]["config"]["pair.init_scale"] == 1.0
    with ResultStore(store, create=False) as s:
        assert len(s) == 1


def test_a_scheme_keeps_its_colour_and_no_two_series_look_alike():
    from hnntrain.experiments.figures import scheme_styles

    few = scheme_styles(["crus", "sgd"])
    many = scheme_styles([*DEFAULT_SCHEMES, "crus:optimize=False", "zeta", "alpha"])
    assert few["crus"] == many["crus"] and few["sgd"] == many["sgd"]  # fixed slot, whatever else is drawn
    looks = [(str(s["color"]), s["linestyle"], s["marker"]) for s in many.values()]
    assert len(set(looks)) == len(looks) == 13


def test_legends_sit_outside_the_data_and_epochs_are_marked():
    from hnntrain.experiments.figures import legend_outside, samples_axis
    from hnntrain.io.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 300], [0, 1], label="crus")
    legend_outside(ax)
    samples_axis(ax, per_epoch=100, last=300)
    fig.canvas.draw()
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1
    assert len([line for line in ax.lines if line.get_linestyle() == ":"]) == 2  # at 100 and 200 samples
    assert ax.xaxis.get_major_formatter()(20000, 0) == "20k"
    plt.close(fig)
