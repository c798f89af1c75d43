"""The fused engine against the reference, scheme by scheme and device by device, to float rounding."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from hnntrain.engine import kernels
from hnntrain.engine.network import scheme_context
from hnntrain.engine.train import Trainer
from hnntrain.io.resolve import build_config
from hnntrain.physics.devices import build_device
from hnntrain.physics.pair import PairArray, init_weights
from hnntrain.physics.rng import Key
from hnntrain.schemes import build_scheme
from hnntrain.spec.config import DeviceConfig, PairConfig, SensingConfig

pytestmark = pytest.mark.skipif(not kernels.available(), reason="numba is not installed")

DEVICES = {
    "exponential-d2d-c2c": DeviceConfig(nl_ltp=2.0, nl_ltd=8.0, levels=64, c2c=0.03, d2d_g=0.05, d2d_nl=0.5),
    "exponential-multiplicative": DeviceConfig(nl_ltp=6.0, nl_ltd=6.0, levels=64, c2c=0.2, c2c_mode="multiplicative"),
    "exponential-abrupt-ltp": DeviceConfig(nl_ltp=8.0, nl_ltd=2.0, levels=32),
    "linear-d2d-c2c": DeviceConfig(model="linear", levels=100, c2c=0.02, d2d_g=0.1),
    "table-c2c": "table",
}


def table_config(tmp_path) -> DeviceConfig:
    ltp = [1.0, 3.0, 4.5, 5.5, 6.2, 6.6, 6.8, 7.0]
    ltd = [7.0, 3.0, 2.0, 1.5, 1.3, 1.1, 1.05, 1.0]
    path = tmp_path / "measured.csv"
    lines = ["direction,pulse,conductance"] + [f"LTP,{i},{g}" for i, g in enumerate(ltp)]
    path.write_text("\n".join(lines + [f"LTD,{i},{g}" for i, g in enumerate(ltd)]) + "\n")
    return dataclasses.replace(build_config({"device.model": "table", "device.table": str(path)}).device, c2c=0.02)


def make(scheme: str, device: DeviceConfig, replicas: int, rows: int = 40, out: int = 12):
    gen = torch.Generator().manual_seed(0)
    weights = init_weights((rows, replicas, out), rows, PairConfig(), gen)
    has_d2d = device.d2d_g > 0 or device.d2d_nl > 0
    model = build_device(device, (rows, 2, replicas, out) if has_d2d else (), gen)
    array = PairArray.create(weights, model, PairConfig(), 16)
    ctx = scheme_context(device, SensingConfig(), 16)
    return build_scheme(scheme, {"refresh": False} if scheme in ("unidirectional", "mixed_precision") else {},
                        array, ctx)


@pytest.mark.parametrize("scheme", ["sgd", "unidirectional", "mixed_precision", "tiki_taka"])
@pytest.mark.parametrize("device", sorted(DEVICES))
@pytest.mark.parametrize("replicas", [1, 3])
def test_fused_update_matches_the_reference(scheme, device, replicas, tmp_path):
    cfg = table_config(tmp_path) if DEVICES[device] == "table" else DEVICES[device]
    reference = make(scheme, cfg, replicas)
    fused = copy.deepcopy(reference)
    kernel = kernels.updaters([fused], "fused")[0]
    assert kernels.is_fused(kernel)
    gen = torch.Generator().manual_seed(1)
    step = reference.array.dw_step
    for update in range(12):
        rows = None if update % 3 == 0 else torch.sort(torch.randperm(40, generator=gen)[:15]).values
        k = 40 if rows is None else 15
        request = torch.randn(k, replicas, 12, generator=gen) * (6 * step)
        reference.update(request, rows, Key.from_seed(5, replicas).fold(update))
        kernel(request, rows, Key.from_seed(5, replicas).fold(update))
    ref, fus = reference.array, fused.array
    touched = (ref.g != make(scheme, cfg, replicas).array.g).float().mean()
    assert touched > 0.2  # the test exercises the device physics
    g_range = float(ref.model.g_range.mean())
    assert torch.allclose(fus.g, ref.g, rtol=0, atol=2e-6 * g_range)
    assert torch.allclose(fus.weight, ref.weight, rtol=0, atol=2e-6 * ref.scale * g_range)
    assert torch.equal(fus.counter.abs_sum, ref.counter.abs_sum)
    assert torch.equal(fus.counter.net_sum, ref.counter.net_sum)
    if scheme in ("mixed_precision", "tiki_taka"):
        assert torch.allclose(fused.accumulator.value, reference.accumulator.value, rtol=0, atol=1e-6 * step)
    if scheme == "tiki_taka":
        assert torch.allclose(fused.fast.g, reference.fast.g, rtol=0, atol=2e-6 * g_range)


def blobs_trainer(engine: str, scheme: str, blobs, **extra) -> Trainer:
    train, test = blobs
    cfg = build_config({"scheme.name": scheme, "device.preset": "abrupt-ltd", "device.c2c": 0.02,
                        "device.d2d_nl": 0.3, "train.replicas": 2, "train.samples": 150, "train.lr": 0.1,
                        "runtime.engine": engine, **extra})
    return Trainer(cfg, train.images, train.labels, test.images, test.labels)


@pytest.mark.parametrize("scheme", ["sgd", "fp", "mixed_precision", "tiki_taka"])
def test_training_with_the_fused_engine_follows_the_reference(scheme, blobs):
    runs = {}
    for engine in ("reference", "fused"):
        trainer = blobs_trainer(engine, scheme, blobs)
        assert trainer.engine == engine
        history = trainer.fit()
        runs[engine] = (trainer, history[-1])
    (ref, ref_record), (fus, fus_record) = runs["reference"], runs["fused"]
    for a, b in zip(ref.net.arrays, fus.net.arrays):
        assert torch.allclose(a.weight, b.weight, rtol=0, atol=1e-4)
    assert fus_record["pulses"] == ref_record["pulses"]
    assert fus_record["train_loss"] == pytest.approx(ref_record["train_loss"], rel=1e-5)


def test_the_reference_engine_is_used_where_no_kernel_exists(blobs):
    assert blobs_trainer("auto", "crus", blobs).engine == "reference"
    assert blobs_trainer("auto", "sgd", blobs).engine == "fused"
    assert blobs_trainer("reference", "sgd", blobs).engine == "reference"


def test_replica_numbers_do_not_depend_on_the_ensemble_size():
    """Replica e of an ensemble draws what replica e of a larger ensemble draws."""
    small, large = Key.from_seed(3, 2).fold(4, 0, 1), Key.from_seed(3, 5).fold(4, 0, 1)
    assert np.array_equal(small.take(1), large.take(1)[:2])
