"""The fused engine against the reference, scheme by scheme and device by device, to float rounding."""

from __future__ import annotations

import copy
import dataclasses
import functools

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


def assert_same_counters(reference, fused):
    """Every write-cost counter (pulse totals, programs, reads, writes, refreshes) identical."""
    ref, fus = reference.state_dict(), fused.state_dict()
    assert ref.keys() == fus.keys()
    for name, value in ref.items():
        same = torch.equal(value, fus[name]) if isinstance(value, torch.Tensor) else value == fus[name]
        assert same, f"counter {name}: reference {value}, fused {fus[name]}"


def table_config(tmp_path) -> DeviceConfig:
    ltp = [1.0, 3.0, 4.5, 5.5, 6.2, 6.6, 6.8, 7.0]
    ltd = [7.0, 3.0, 2.0, 1.5, 1.3, 1.1, 1.05, 1.0]
    path = tmp_path / "measured.csv"
    lines = ["direction,pulse,conductance"] + [f"LTP,{i},{g}" for i, g in enumerate(ltp)]
    path.write_text("\n".join(lines + [f"LTD,{i},{g}" for i, g in enumerate(ltd)]) + "\n")
    return dataclasses.replace(build_config({"device.model": "table", "device.table": str(path)}).device, c2c=0.02)


def make(scheme: str, device: DeviceConfig, replicas: int, rows: int = 40, out: int = 12,
         sensing: SensingConfig = SensingConfig(), options: dict | None = None, g_ref_fraction: float = 0.5):
    gen = torch.Generator().manual_seed(0)
    weights = init_weights((rows, replicas, out), rows, PairConfig(), gen)
    has_d2d = device.d2d_g > 0 or device.d2d_nl > 0
    model = build_device(device, (rows, 2, replicas, out) if has_d2d else (), gen)
    array = PairArray.create(weights, model, PairConfig(g_ref_fraction=g_ref_fraction), 16)
    ctx = scheme_context(device, sensing, 16)
    if options is None:
        options = {"refresh": False} if scheme in ("unidirectional", "mixed_precision") else {}
    return build_scheme(scheme, options, array, ctx)


@pytest.mark.parametrize("scheme", ["sgd", "unidirectional", "mixed_precision", "tiki_taka", "threshold",
                                    "threshold-deterministic"])
@pytest.mark.parametrize("device", sorted(DEVICES))
@pytest.mark.parametrize("replicas", [1, 3])
def test_fused_update_matches_the_reference(scheme, device, replicas, tmp_path):
    cfg = table_config(tmp_path) if DEVICES[device] == "table" else DEVICES[device]
    options = {"threshold": 2.0, "deterministic": True} if scheme == "threshold-deterministic" else None
    scheme = scheme.split("-")[0]
    reference = make(scheme, cfg, replicas, options=options)
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
    initial = make(scheme, cfg, replicas, options=options)
    if scheme == "tiki_taka":  # requests go to A; C moves one transferred row at a time
        touched = (reference.fast.g != initial.fast.g).float().mean()
    else:
        touched = (ref.g != initial.array.g).float().mean()
    assert touched > 0.2  # the test exercises the device physics
    g_range = float(ref.model.g_range.mean())
    assert torch.allclose(fus.g, ref.g, rtol=0, atol=2e-6 * g_range)
    assert torch.allclose(fus.weight, ref.weight, rtol=0, atol=2e-6 * ref.scale * g_range)
    assert_same_counters(ref.counter, fus.counter)
    if scheme in ("mixed_precision", "tiki_taka"):
        assert torch.allclose(fused.accumulator.value, reference.accumulator.value, rtol=0, atol=1e-6 * step)
    if scheme == "tiki_taka":
        assert torch.allclose(fused.fast.g, reference.fast.g, rtol=0, atol=2e-6 * g_range)


@pytest.mark.parametrize("scheme", ["unidirectional", "mixed_precision"])
@pytest.mark.parametrize("device", ["exponential-d2d-c2c", "exponential-abrupt-ltp", "linear-d2d-c2c"])
@pytest.mark.parametrize("adc_bits, read_noise", [(4, 0.0), (8, 0.01), (0, 0.0)])
def test_fused_sensing_and_refresh_match_the_reference(scheme, device, adc_bits, read_noise):
    cfg = DEVICES[device]
    options = {"refresh": True, "refresh_every": 1, "refresh_threshold": 0.25}
    sensing = SensingConfig(adc_bits=adc_bits, read_noise=read_noise)
    g_ref_fraction = 0.4 if device == "exponential-abrupt-ltp" else 0.6  # both devices away from home
    reference = make(scheme, cfg, 2, sensing=sensing, options=options, g_ref_fraction=g_ref_fraction)
    fused = copy.deepcopy(reference)
    before = kernels.before_samplers([fused], "fused")[0]
    update = kernels.updaters([fused], "fused")[0]
    assert kernels.is_fused(before)
    gen = torch.Generator().manual_seed(2)
    step = reference.array.dw_step
    for sample in range(6):
        request = torch.randn(40, 2, 12, generator=gen) * (4 * step)
        key = Key.from_seed(8, 2).fold(sample)
        reference.before_sample(1, key.fold(0))
        before(1, key.fold(0))
        reference.update(request, None, key.fold(1))
        update(request, None, key.fold(1))
    ref, fus = reference.array, fused.array
    assert ref.counter.refreshes > 50  # the test exercises the refresh
    assert_same_counters(ref.counter, fus.counter)
    g_range = float(ref.model.g_range.mean())
    assert torch.allclose(fus.g, ref.g, rtol=0, atol=2e-6 * g_range)
    assert torch.allclose(fus.weight, ref.weight, rtol=0, atol=2e-6 * ref.scale * g_range)


@pytest.mark.parametrize("device", ["exponential-d2d-c2c", "exponential-abrupt-ltp", "linear-d2d-c2c"])
@pytest.mark.parametrize("scheme, options, track", [  # CRUS tracks unless its own option says not
    ("crus", {"optimize": False, "reverse_levels": 3, "window_levels": 4}, False),
    ("crus", {"optimize": False, "track": False, "window_levels": 2}, False),
    ("crus", {"optimize": True}, False),
    ("crus", {"optimize": True, "accumulate": True}, False),
    ("crus", {"optimize": False, "reverse_levels": 3, "window_levels": 4, "accumulate": True}, False),
    ("nonlinearity_aware", {}, False),
    ("nonlinearity_aware", {}, True),
])
@pytest.mark.parametrize("adc_bits", [4, 0])
def test_fused_sensing_schemes_match_the_reference(device, scheme, options, track, adc_bits):
    """CRUS and nonlinearity_aware: the sensed estimate, its tracking, the updates from it."""
    cfg = DEVICES[device]
    # an exact read (0 bits) with read noise senses outside the range: tracking clips it
    sensing = SensingConfig(adc_bits=adc_bits, read_noise=0.005, every=3, track=track)
    reference = make(scheme, cfg, 2, sensing=sensing, options=options)
    fused = copy.deepcopy(reference)
    before = kernels.before_samplers([fused], "fused")[0]
    update = kernels.updaters([fused], "fused")[0]
    assert kernels.is_fused(before) and kernels.is_fused(update)
    gen = torch.Generator().manual_seed(3)
    step = reference.array.dw_step
    for sample in range(9):
        rows = None if sample % 2 else torch.sort(torch.randperm(40, generator=gen)[:20]).values
        request = torch.randn(40 if rows is None else 20, 2, 12, generator=gen) * (5 * step)
        key = Key.from_seed(9, 2).fold(sample)
        reference.before_sample(1, key.fold(0))
        before(1, key.fold(0))
        reference.update(request, rows, key.fold(1))
        update(request, rows, key.fold(1))
        assert torch.allclose(fused.sensed.estimate, reference.sensed.estimate, rtol=0, atol=1e-5)
    ref, fus = reference.array, fused.array
    assert ref.counter.abs_sum.sum() > 100
    assert_same_counters(ref.counter, fus.counter)
    g_range = float(ref.model.g_range.mean())
    assert torch.allclose(fus.g, ref.g, rtol=0, atol=2e-6 * g_range)
    assert torch.allclose(fus.weight, ref.weight, rtol=0, atol=2e-6 * ref.scale * g_range)
    if options.get("accumulate"):
        assert reference.chi.abs().max() > 0.1 * step  # something stays owed
        assert torch.allclose(fused.chi, reference.chi, rtol=0, atol=1e-5 * step)


@pytest.mark.parametrize("options", [{"threshold": 2.0, "transfer_lr": 10.0}, {"transfer_every": 2, "transfer_lr": 20.0},
                                     {"rows_per_transfer": 3, "buffer_keep": 0.5, "transfer_lr": 10.0},
                                     {"chop_every": 2, "fast_lr": 3.0, "rows_per_transfer": 7, "reset_rows": True,
                                      "transfer_lr": 10.0}])
def test_fused_tiki_taka_transfer_matches_the_reference(options):
    sensing = SensingConfig(adc_bits=4, read_noise=0.01)
    reference = make("tiki_taka", DEVICES["exponential-d2d-c2c"], 2, sensing=sensing, options=options)
    fused = copy.deepcopy(reference)
    update = kernels.updaters([fused], "fused")[0]
    gen = torch.Generator().manual_seed(4)
    for sample in range(30):
        request = torch.randn(40, 2, 12, generator=gen) * (8 * reference.array.dw_step)
        reference.update(request, None, Key.from_seed(6, 2).fold(sample))
        update(request, None, Key.from_seed(6, 2).fold(sample))
    ref, fus = reference.array, fused.array
    initial = make("tiki_taka", DEVICES["exponential-d2d-c2c"], 2, sensing=sensing, options=options)
    assert (ref.g != initial.array.g).any() and fused.row == reference.row  # C received pulses
    assert_same_counters(ref.counter, fus.counter)
    g_range = float(ref.model.g_range.mean())
    assert torch.allclose(fus.g, ref.g, rtol=0, atol=2e-6 * g_range)
    assert torch.allclose(fused.fast.g, reference.fast.g, rtol=0, atol=2e-6 * g_range)
    assert torch.allclose(fused.accumulator.value, reference.accumulator.value, rtol=0, atol=1e-4)
    assert torch.equal(fused.chopper, reference.chopper)
    if options.get("chop_every"):
        assert bool((reference.chopper < 0).any())  # the chopper flipped


def blobs_trainer(engine: str, scheme: str, blobs, **extra) -> Trainer:
    train, test = blobs
    cfg = build_config({"scheme.name": scheme, "device.preset": "abrupt-ltd", "device.c2c": 0.02,
                        "device.d2d_nl": 0.3, "train.replicas": 2, "train.samples": 150, "train.lr": 0.1,
                        "runtime.engine": engine, **extra})
    return Trainer(cfg, train.images, train.labels, test.images, test.labels)


@pytest.mark.parametrize("scheme", ["sgd", "fp", "mixed_precision", "tiki_taka", "threshold", "nonlinearity_aware",
                                    "crus", "crus:accumulate=true"])
def test_training_with_the_fused_engine_follows_the_reference(scheme, blobs):
    runs = {}
    name, _, option = scheme.partition(":")
    extra = {}
    if option == "accumulate=true":
        # batch 2: the forward and backward pass in torch on both engines. Numba's (batch 1)
        # differs in the last bits; the accumulator sums those differences over many updates
        # until a truncated count falls on the other side of an integer (here near sample 100).
        extra = {"scheme.accumulate": True, "train.batch_size": 2}
    for engine in ("reference", "fused"):
        trainer = blobs_trainer(engine, name, blobs, **extra)
        assert trainer.engine == engine
        history = trainer.fit()
        runs[engine] = (trainer, history[-1])
    (ref, ref_record), (fus, fus_record) = runs["reference"], runs["fused"]
    for a, b in zip(ref.net.arrays, fus.net.arrays):
        assert torch.allclose(a.weight, b.weight, rtol=0, atol=1e-4)
    assert fus_record["pulses"] == ref_record["pulses"]
    assert fus_record["train_loss"] == pytest.approx(ref_record["train_loss"], rel=1e-5)


def test_kernels_declare_what_they_need(tmp_path):
    """A kernel that inverts the nominal device gives way to the reference for a measured one;
    a refresh kernel for reset noise; only the engine's own callables count as fused."""
    sensing = SensingConfig(adc_bits=4)
    measured = make("crus", table_config(tmp_path), 1, sensing=sensing)
    assert not kernels.is_fused(kernels.updaters([measured], "fused")[0])
    noisy_reset = make("crus", DEVICES["exponential-d2d-c2c"], 1, sensing=sensing)
    noisy_reset.ctx.reset_noise = 0.1
    assert kernels.is_fused(kernels.updaters([noisy_reset], "fused")[0])
    assert not kernels.is_fused(kernels.before_samplers([noisy_reset], "fused")[0])
    assert not kernels.is_fused(functools.partial(noisy_reset.update))


def test_the_reference_engine_is_used_where_no_kernel_exists(blobs):
    assert blobs_trainer("auto", "crus", blobs, **{"scheme.accumulate": True}).engine == "fused"
    assert blobs_trainer("auto", "manhattan", blobs).engine == "reference"
    assert blobs_trainer("auto", "sgd", blobs).engine == "fused"
    assert blobs_trainer("reference", "sgd", blobs).engine == "reference"


def test_replica_numbers_do_not_depend_on_the_ensemble_size():
    """Replica e of an ensemble draws what replica e of a larger ensemble draws."""
    small, large = Key.from_seed(3, 2).fold(4, 0, 1), Key.from_seed(3, 5).fold(4, 0, 1)
    assert np.array_equal(small.take(1), large.take(1)[:2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("scheme", ["sgd", "tiki_taka"])
def test_the_reference_on_cuda_draws_the_cpu_numbers(scheme, blobs):
    runs = {}
    for where in ("cpu", "cuda"):
        trainer = blobs_trainer("reference", scheme, blobs, **{"runtime.device": where})
        runs[where] = (trainer, trainer.fit()[-1])
    for a, b in zip(runs["cpu"][0].net.arrays, runs["cuda"][0].net.arrays):
        assert torch.allclose(a.weight, b.weight.cpu(), rtol=0, atol=1e-4)
    assert runs["cuda"][1]["pulses"] == runs["cpu"][1]["pulses"]


@pytest.mark.skipif(kernels.available() and kernels.rng.numba.config.NUMBA_NUM_THREADS < 2,
                    reason="numba allows one thread here (NUMBA_NUM_THREADS)")
@pytest.mark.parametrize("scheme, options", [("sgd", None), ("mixed_precision", {"refresh": True, "refresh_every": 2}),
                                             ("threshold", {"threshold": 0.5}), ("nonlinearity_aware", None),
                                             ("crus", {"accumulate": True}), ("crus", None)])
def test_kernels_give_the_same_numbers_on_one_and_two_threads(scheme, options):
    """Replicas split across threads (ReplicaParallel): bit-identical devices, weights, estimates
    and counters for 1 and 2 threads, and the threaded compilation is what ran."""
    sensing = SensingConfig(adc_bits=4, every=2)
    one = make(scheme, DEVICES["exponential-d2d-c2c"], 4, sensing=sensing, options=options)
    two = copy.deepcopy(one)
    gen = torch.Generator().manual_seed(2)
    step = one.array.dw_step
    plan = [(None if i % 2 else torch.sort(torch.randperm(40, generator=gen)[:15]).values,) for i in range(6)]
    requests = [torch.randn(40 if rows is None else 15, 4, 12, generator=gen) * (6 * step) for (rows,) in plan]
    try:
        for threads, scheme_copy in ((1, one), (2, two)):
            kernels.set_threads(threads)
            before = kernels.before_samplers([scheme_copy], "fused")[0]
            update = kernels.updaters([scheme_copy], "fused")[0]
            for i, ((rows,), request) in enumerate(zip(plan, requests)):
                key = Key.from_seed(7, 4).fold(i)
                before(1, key.fold(0))
                update(request, rows, key.fold(1))
    finally:
        kernels.set_threads(1)
    assert torch.equal(one.array.g, two.array.g) and torch.equal(one.array.weight, two.array.weight)
    assert_same_counters(one.array.counter, two.array.counter)
    if getattr(one, "sensed", None) is not None:
        assert torch.equal(one.sensed.estimate, two.sensed.estimate)
    assert (one.array.g != make(scheme, DEVICES["exponential-d2d-c2c"], 4, sensing=sensing,
                                options=options).array.g).float().mean() > 0.1
    from hnntrain.engine.kernels import refresh, updates
    kernel = {"sgd": updates.push_pull_kernel, "mixed_precision": updates.gradual_kernel,
              "threshold": updates.threshold_kernel, "nonlinearity_aware": refresh.nonlinearity_aware_kernel,
              "crus": refresh.crus_kernel}[scheme]
    assert kernel.threaded.signatures  # the two-thread pass compiled and ran the threaded form
