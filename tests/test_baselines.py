"""Each baseline behaves as its source describes (see the scheme modules' docstrings)."""

import pytest
import torch

from hnntrain.io.resolve import build_config
from hnntrain.physics.devices import build_device, nominal_device
from hnntrain.physics.pair import PairArray
from hnntrain.physics.rng import Key
from hnntrain.physics.sensing import Sensor
from hnntrain.schemes import SCHEMES, SchemeContext, build_scheme
from hnntrain.schemes.tiki_taka import symmetry_point
from hnntrain.spec.config import PairConfig


def make(scheme, preset="ideal", shape=(30, 1, 20), g_ref_fraction=0.5, sensing=None, **options):
    values = {"device.preset": preset, "scheme.name": scheme, **(sensing or {}),
              **{f"scheme.{k}": v for k, v in options.items()}}
    cfg = build_config(values)
    ctx = SchemeContext(nominal=nominal_device(cfg.device), sensing=cfg.sensing,
                        sensor=Sensor(cfg.sensing, cfg.device.g_min, cfg.device.g_max), device=cfg.device,
                        max_pulses=cfg.scheme.max_pulses)
    array = PairArray.create(torch.zeros(shape, dtype=torch.float64), build_device(cfg.device), PairConfig(g_ref_fraction=g_ref_fraction),
                             cfg.scheme.max_pulses)
    return build_scheme(scheme, dict(cfg.scheme.params), array, ctx), array


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_every_scheme_declares_its_hardware(scheme):
    updater, _ = make(scheme)
    hw = updater.hardware()
    for key in ("digital_bits_per_synapse", "extra_arrays", "sensing", "refresh"):
        assert key in hw


def test_manhattan_moves_every_touched_weight_by_its_fixed_step():
    updater, array = make("manhattan", pulses=2, batch=1, min_request=0.5)
    step = 2 * array.dw_step  # one push-pull pulse on a linear device
    request = torch.randn(array.weight.shape, generator=torch.Generator().manual_seed(0)) * 5 * step
    request[0] = 0.1 * step  # below half a pulse: not touched
    before = array.weight.clone()
    updater.update(request, None, Key.from_seed(0, 1))
    moved = array.weight - before
    touched = request.abs() >= 0.5 * step
    assert torch.allclose(moved[touched].abs(), torch.full_like(moved[touched], 2 * step), rtol=1e-4)
    assert torch.equal(torch.sign(moved[touched]), torch.sign(request[touched]))
    assert torch.count_nonzero(moved[~touched]) == 0


def test_threshold_skips_small_requests_and_applies_large_ones():
    updater, array = make("threshold", threshold=1.0)
    step = 2 * array.dw_step
    request = torch.full_like(array.weight, 0.9 * step)
    request[:5] = 3.0 * step
    before = array.weight.clone()
    updater.update(request, None, Key.from_seed(0, 1))
    moved = array.weight - before
    assert torch.count_nonzero(moved[5:]) == 0
    assert torch.allclose(moved[:5], torch.full_like(moved[:5], 3 * step), rtol=1e-4)


def test_mixed_precision_accumulates_sub_step_requests():
    updater, array = make("mixed_precision", refresh=False)
    eps = array.dw_step
    before = array.weight.clone()
    for _ in range(7):
        updater.update(torch.full_like(array.weight, 0.3 * eps), None, Key.from_seed(0, 1))
    moved = array.weight - before
    # 7 x 0.3 = 2.1 steps: exactly 2 pulses applied, 0.1 step left in the accumulator
    assert torch.allclose(moved, torch.full_like(moved, 2 * eps), rtol=1e-4)
    assert torch.allclose(updater.chi, torch.full_like(updater.chi, 0.1 * eps), atol=1e-7)


def test_mixed_precision_on_ideal_device_tracks_fp(blobs, tmp_path):
    from hnntrain.engine.run import run

    common = {"model.hidden": [20], "train.lr": 0.2, "train.epochs": 3, "device.preset": "ideal"}
    fp = run(build_config({**common, "scheme.name": "fp"}), tmp_path / "fp", datasets=blobs)
    mp = run(build_config({**common, "scheme.name": "mixed_precision"}), tmp_path / "mp", datasets=blobs)
    assert mp["test_accuracy"] > fp["test_accuracy"] - 0.05


def test_unidirectional_without_refresh_saturates_both_devices():
    updater, array = make("unidirectional", preset="abrupt-ltd", refresh=False, g_ref_fraction=0.2)
    gen = torch.Generator().manual_seed(1)
    step = array.dw_step
    key = Key.from_seed(1, 1)
    for step in range(300):
        updater.update(torch.randn(array.weight.shape, generator=gen) * 3 * step, None, key.fold(step))
    g = array.g
    assert float(g.min()) > 1.0 + 0.6 * 9.0  # both devices of every pair far up the range
    assert array.counter.totals()["ltd"] == [[0.0], [0.0]]  # never an LTD pulse


def test_unidirectional_refresh_brings_one_device_home():
    updater, array = make("unidirectional", preset="abrupt-ltd", refresh=True, refresh_every=1,
                          refresh_threshold=0.3, sensing={"sensing.adc_bits": 8})
    g = array.g.clone()
    g[:, 0], g[:, 1] = 8.0, 7.0
    array.load_state_dict({"g": g, "counter": array.counter.state_dict()})
    updater.before_sample(1, Key.from_seed(0, 1))
    assert array.counter.refreshes == array.weight.numel()
    assert torch.allclose(array.g[:, 1], torch.ones_like(array.g[:, 1]))
    assert float(array.weight.mean()) == pytest.approx(1.0 * array.scale, rel=0.1)


def test_tiki_taka_starts_at_symmetry_point_and_transfers_towards_a():
    nominal = nominal_device(build_config({"device.preset": "abrupt-ltd"}).device, dtype=torch.float64)
    g_sp = symmetry_point(nominal)
    one = torch.tensor(1.0, dtype=torch.float64)
    gt = torch.tensor(g_sp, dtype=torch.float64)
    assert float(nominal.response(gt, one) - gt) == pytest.approx(float(gt - nominal.response(gt, -one)), rel=1e-6)
    updater, array = make("tiki_taka", preset="abrupt-ltd", shape=(3, 1, 4), transfer_lr=10.0,
                          sensing={"sensing.adc_bits": 8})
    assert torch.allclose(updater.fast.g, torch.full_like(updater.fast.g, g_sp))
    before = array.weight.clone()
    for step in range(9):  # three passes over the three rows
        updater.update(torch.full_like(array.weight, 4 * array.dw_step), None, Key.from_seed(0, 1).fold(step))
    assert bool((updater.fast.weight > 0).all())
    assert bool((array.weight > before).all())  # C moved the way A points
    assert bool((updater.buffer.abs() < updater.options.threshold).all())


def test_nonlinearity_aware_is_unbiased_where_open_loop_is_not():
    sensing = {"sensing.adc_bits": 0, "sensing.every": 1}
    aware, a_array = make("nonlinearity_aware", preset="abrupt-ltd", shape=(200, 1, 50), g_ref_fraction=0.9, sensing=sensing)
    naive, n_array = make("sgd", preset="abrupt-ltd", shape=(200, 1, 50), g_ref_fraction=0.9, sensing=sensing)
    request = torch.full_like(a_array.weight, 2 * a_array.dw_step)
    key = Key.from_seed(0, 1)
    aware.before_sample(1, key.fold(0))
    b_aware, b_naive = a_array.weight.clone(), n_array.weight.clone()
    aware.update(request, None, key.fold(1))
    naive.update(request, None, key.fold(1))
    assert float((a_array.weight - b_aware).mean()) == pytest.approx(float(request.mean()), rel=0.1)
    assert abs(float((n_array.weight - b_naive).mean()) / float(request.mean()) - 1) > 0.5


def test_manhattan_learns_with_mini_batches(blobs, tmp_path):
    from hnntrain.engine.run import run

    res = run(build_config({"model.hidden": [20], "device.preset": "ideal", "scheme.name": "manhattan",
                            "train.batch_size": 10, "train.lr": 1.0, "train.epochs": 3, "scheme.batch": 1}), tmp_path,
              datasets=blobs)
    assert res["test_accuracy"] > 0.8


def test_manhattan_takes_the_sign_of_a_mini_batch_inside_the_scheme():
    updater, array = make("manhattan", batch=3)
    step = 2 * array.dw_step
    first = torch.full_like(array.weight, 5 * step)
    first[0] = -5 * step
    second = torch.full_like(array.weight, -2 * step)
    second[0] = 1 * step
    before = array.weight.clone()
    updater.update(first, None, None)
    updater.update(second, torch.arange(array.weight.shape[0]), None)
    assert torch.equal(array.weight, before)  # nothing applied within the mini-batch
    updater.update(torch.zeros_like(first), None, None)
    moved = (array.weight - before) / step
    assert torch.allclose(moved[1:], torch.ones_like(moved[1:]), atol=1e-4)  # sign of 5 - 2 + 0
    assert torch.allclose(moved[0], -torch.ones_like(moved[0]), atol=1e-4)  # sign of -5 + 1 + 0
    assert updater.hardware()["digital_bits_per_synapse"] == 16


def test_neurosim_pulses_one_device_against_a_fixed_reference_with_nearest_rounding():
    updater, array = make("neurosim", g_ref_fraction=0.5)
    ref = array.g[:, 1].clone()
    assert torch.allclose(ref, torch.full_like(ref, 5.5))  # mid-range of the ideal device's 1..10 uS
    step = array.dw_step  # one pulse on one device
    request = torch.full_like(array.weight, 1.49 * step)
    request[0] = -2.5 * step
    request[1] = 0.49 * step
    before = array.weight.clone()
    updater.update(request, None, Key.from_seed(0, 1))
    moved = (array.weight - before) / step
    assert torch.allclose(moved[2:], torch.ones_like(moved[2:]), atol=1e-4)  # 1.49 -> 1, every time
    assert torch.allclose(moved[0], torch.full_like(moved[0], -3.0), atol=1e-4)  # halves away from zero
    assert torch.count_nonzero(moved[1].abs() > 1e-6) == 0  # under half a pulse: lost
    assert torch.equal(array.g[:, 1], ref)  # the reference never moves
    totals = array.counter.totals()
    assert totals["ltp"][1][0] == 0 and totals["ltd"][1][0] == 0


def set_fast_row(updater, row: int, pulses: list[float]) -> None:
    """Program row ``row`` of Tiki-Taka's A to read ``pulses`` push-pull pulses of C per column
    (the ideal device: C's and A's steps are equal), symmetric around the symmetry point."""
    fast = updater.fast
    g = fast.g.clone()
    half = torch.tensor(pulses, dtype=g.dtype) * fast.dw_step / fast.scale  # each device: half of 2 dw per pulse
    g[row, 0] = updater.g_sp + half.view(1, -1)
    g[row, 1] = updater.g_sp - half.view(1, -1)
    fast.g = g
    fast.w = fast._weight(g)


@pytest.mark.parametrize("keep, threshold", [(0.0, 1.0), (0.5, 1.0), (1.0, 2.0)])
def test_tiki_taka_transfer_writes_one_pulse_and_the_buffer_forgets(keep, threshold):
    # lr 0.1 (the context's) x transfer_lr 10: H gains exactly what A reads, in pulses of C
    updater, array = make("tiki_taka", shape=(3, 1, 4), transfer_lr=10.0, buffer_keep=keep, threshold=threshold,
                          rows_per_transfer=1, sensing={"sensing.adc_bits": 0})
    read = torch.tensor([0.4, 1.0, 2.7, -3.2])
    set_fast_row(updater, 0, read.tolist())
    before = array.weight.clone()
    updater._transfer(Key.from_seed(0, 1))  # row 0
    pulses = ((array.weight - before)[0, 0] / (2 * array.dw_step)).float()
    fired = read.abs() >= threshold
    expected = torch.where(fired, read.sign(), torch.zeros_like(read))  # ONE pulse, never a burst
    assert torch.allclose(pulses, expected, atol=1e-4)
    h = torch.where(fired, keep * (read - read.sign()), read)  # H <- keep * (H - sign H) where fired
    assert torch.allclose(updater.buffer[0, 0].float(), h, atol=1e-4)
    assert torch.count_nonzero(updater.buffer[1:]) == 0 and torch.equal(array.weight[1:], before[1:])


def test_tiki_taka_transfer_rate_follows_the_learning_rate():
    updater, _ = make("tiki_taka", shape=(3, 1, 4), transfer_lr=2.0)
    gain = updater.transfer_gain
    updater.ctx.lr = 0.05
    assert updater.transfer_gain == pytest.approx(gain / 2)


def test_tiki_taka_chopper_keeps_the_gradient_and_cancels_the_offset():
    updater, array = make("tiki_taka", shape=(1, 1, 2), transfer_lr=10.0, chop_every=1, threshold=100.0,
                          sensing={"sensing.adc_bits": 0})
    set_fast_row(updater, 0, [0.3, 0.3])  # an offset of A: 0.3 pulses that no gradient asked for
    key = Key.from_seed(0, 1)
    updater._transfer(key)  # read with c = +1, then c flips to -1
    assert torch.allclose(updater.buffer[0, 0].float(), torch.tensor([0.3, 0.3]), atol=1e-4)
    assert updater.chopper.view(-1).tolist() == [-1.0]
    updater._transfer(key)  # the same offset read with c = -1: it cancels in H
    assert torch.allclose(updater.buffer[0, 0].float(), torch.zeros(2), atol=1e-4)
    # a gradient written while c = -1 lands on A with the opposite sign and reads back with its own
    updater._transfer(key)  # c back to +1 (H: +0.3)
    updater.chopper.fill_(-1.0)
    request = torch.full_like(array.weight, 4 * array.dw_step)  # 2 push-pull pulses on A
    a_before = updater.fast.weight.clone()
    updater.update(request, None, key)  # A gets -2 pulses, the transfer reads c * A = -(0.3 - 2) = 1.7
    assert bool((updater.fast.weight < a_before).all())
    assert torch.allclose(updater.buffer[0, 0].float(), torch.tensor([2.0, 2.0]), atol=1e-3)


def test_tiki_taka_reads_several_rows_and_resets_them():
    updater, array = make("tiki_taka", shape=(5, 1, 3), rows_per_transfer=2, reset_rows=True, transfer_lr=10.0,
                          sensing={"sensing.adc_bits": 0})
    g_sp = updater.g_sp
    updater.update(torch.full_like(array.weight, 3 * array.dw_step), None, Key.from_seed(0, 1))
    fast = updater.fast.g
    assert torch.allclose(fast[:2], torch.full_like(fast[:2], g_sp))  # rows 0 and 1 read, then reset
    assert bool((fast[2:, 0] > g_sp).all())  # the others still hold the update
    assert updater.row == 2 and array.counter.totals()["programs"][0][0] == 2 * 3
    assert bool((array.weight[:2] > 0).all()) and torch.count_nonzero(array.weight[2:]) == 0
    for step in range(2):
        updater.update(torch.zeros_like(array.weight), None, Key.from_seed(0, 1).fold(step))
    assert updater.row == 1  # 2 + 2 + 2 rows, around 5


@pytest.mark.parametrize("scheme", ["sgd", "threshold", "nonlinearity_aware"])
def test_an_update_of_some_rows_writes_what_the_full_update_writes_there(scheme):
    """A synapse's rounding draw is numbered by its global input row: updating only the rows with
    a request writes exactly what updating every row (zero requests elsewhere) writes."""
    options = {"threshold": 0.05} if scheme == "threshold" else {}
    some, some_array = make(scheme, preset="abrupt-ltd", **options)
    full, full_array = make(scheme, preset="abrupt-ltd", **options)
    rows = torch.tensor([2, 5, 11, 29])
    step = 2 * some_array.dw_step
    request = torch.rand(4, 1, 20, generator=torch.Generator().manual_seed(1)) * 0.9 * step  # fractional pulses
    whole = torch.zeros(some_array.weight.shape, dtype=request.dtype)
    whole[rows] = request
    if scheme == "nonlinearity_aware":  # its first read
        some.before_sample(1, Key.from_seed(3, 1))
        full.before_sample(1, Key.from_seed(3, 1))
    some.update(request, rows, Key.from_seed(4, 1))
    full.update(whole, None, Key.from_seed(4, 1))
    assert torch.count_nonzero(full_array.weight[rows]) > 0
    assert torch.equal(some_array.weight, full_array.weight)
