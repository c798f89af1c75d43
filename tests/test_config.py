import pytest

from hnntrain.io.resolve import build_config, parse_assignments, resolve
from hnntrain.spec.config import ConfigError, flatten_config


def test_preset_values_and_explicit_override():
    cfg = build_config({"device.preset": "abrupt-ltd"})
    assert (cfg.device.nl_ltp, cfg.device.nl_ltd, cfg.device.levels) == (2.0, 8.0, 64)
    cfg = build_config({"device.preset": "abrupt-ltd", "device.nl_ltd": 6, "device.levels": 32})
    assert (cfg.device.nl_ltd, cfg.device.levels) == (6.0, 32)


@pytest.mark.parametrize("key,value,fragment", [
    ("device.g_max", 0.5, "device.g_max"),
    ("device.levels", 1, "device.levels"),
    ("device.nl_ltd", 12, "outside NeuroSim"),
    ("device.c2c", 2, "0.02"),
    ("sensing.adc_bits", 20, "sensing.adc_bits"),
    ("sensing.every", 0, "sensing.every"),
    ("train.epochs", 0, "train.epochs"),
    ("train.lr", -1, "train.lr"),
    ("train.replicas", 1.5, "expected an integer"),
    ("device.preset", "nope", "unknown preset"),
    ("scheme.name", "nope", None),
    ("devcie.levels", 3, "unknown key"),
    ("device.levls", 3, "unknown key"),
    ("model.activation", "gelu", "model.activation"),
])
def test_bad_values_name_the_field(key, value, fragment):
    if key == "scheme.name":  # checked when the scheme is built
        from hnntrain.schemes import get_scheme

        with pytest.raises(ConfigError, match="scheme.name"):
            get_scheme(build_config({key: value}).scheme.name)
        return
    with pytest.raises(ConfigError) as info:
        build_config({key: value})
    assert key.split(".")[0] in str(info.value)
    assert fragment in str(info.value)


def test_set_parsing_uses_toml_literals():
    got = parse_assignments(["device.levels=32", "model.hidden=[50, 20]", "scheme.name=sgd", "train.shuffle=false"])
    assert got == {"device.levels": 32, "model.hidden": [50, 20], "scheme.name": "sgd", "train.shuffle": False}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignments(["device.levels"])


def test_toml_file_and_override_order(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[device]\npreset = "abrupt-ltp"\nlevels = 48\n[train]\nepochs = 3\n[scheme]\nname = "fp"\n')
    cfg = resolve(path, {"train.epochs": 2})
    assert (cfg.device.nl_ltp, cfg.device.levels, cfg.train.epochs, cfg.scheme.name) == (8.0, 48, 2, "fp")
    bad = tmp_path / "bad.toml"
    bad.write_text("[device\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve(bad)


def test_flatten_round_trip():
    cfg = build_config({"device.preset": "pcmo", "model.hidden": [30], "scheme.name": "sgd"})
    assert build_config(flatten_config(cfg)) == cfg


def test_required_issue_keys_exist():
    keys = set(flatten_config(build_config({})))
    for key in ("device.preset", "device.nl_ltp", "device.nl_ltd", "device.levels", "device.g_min", "device.g_max",
                "device.c2c", "scheme.name", "sensing.adc_bits", "sensing.every", "train.epochs", "train.samples",
                "train.lr", "train.seed", "train.replicas", "data.dir"):
        assert key in keys
