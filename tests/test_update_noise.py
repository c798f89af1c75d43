"""Update noise per layer and for the whole network, over everything an update writes."""

import pytest
import torch

from hnntrain.schemes.update_noise import NetworkUpdateNoise, UpdateNoise, squared_norms, window1_norms


def test_network_un_sums_squared_norms_over_layers_not_layer_ratios():
    big, small = torch.zeros(50, 1, 4, dtype=torch.float64), torch.zeros(3, 1, 2, dtype=torch.float64)
    noise = NetworkUpdateNoise([big, small], window=1)
    before = noise.snapshot([big, small])
    request_big, request_small = torch.full_like(big, 1.0), torch.full_like(small, 1.0)
    noise.record_request(0, request_big, None)
    noise.record_request(1, request_small, None)
    big += 1.0  # the big layer does exactly what was asked: no error on 200 weights
    small += 3.0  # the small layer overshoots: error 2 on each of 6 weights
    assert noise.end_update([big, small], before)
    out = noise.take()
    expected = (0 + 6 * 2.0**2) / (200 * 1.0 + 6 * 1.0)
    assert out["window1"][0] == pytest.approx(expected)
    assert out["window"][0] == pytest.approx(expected)
    assert out["layers"][0]["window1"][0] == pytest.approx(0.0)
    assert out["layers"][1]["window1"][0] == pytest.approx(4.0)
    # an unweighted mean of the two layers would have said 2.0


def test_window1_counts_what_lands_outside_the_requested_rows():
    w = torch.zeros(5, 1, 3, dtype=torch.float64)
    noise = NetworkUpdateNoise([w], window=10)
    before = noise.snapshot([w])
    w[4] += 0.5  # a refresh or a Tiki-Taka transfer on a row the request does not touch
    rows = torch.tensor([0, 1])
    request = torch.full((2, 1, 3), 1.0, dtype=torch.float64)
    noise.record_request(0, request, rows)
    w[:2] += request  # the request itself, exactly
    assert not noise.end_update([w], before)
    out = noise.take()
    assert out["window1"][0] == pytest.approx(3 * 0.5**2 / 6)
    assert noise.close_window([w])
    assert noise.take()["window"][0] == pytest.approx(3 * 0.5**2 / 6)


def test_without_a_sample_only_the_long_window_accumulates():
    w = torch.zeros(2, 1, 2, dtype=torch.float64)
    noise = NetworkUpdateNoise([w], window=2)
    for _ in range(2):
        noise.record_request(0, torch.ones_like(w), None)
        w += 1.0
        closed = noise.end_update([w], None)
    assert closed
    out = noise.take()
    assert out["window"][0] == pytest.approx(0.0)
    assert out["window1"][0] != out["window1"][0]  # NaN: nothing sampled


def test_layer_un_keeps_its_meaning():
    w = torch.zeros(4, 2, 3, dtype=torch.float64)
    layer = UpdateNoise(w, window=5)
    err, ask = window1_norms(torch.full_like(w, 2.0), w, torch.ones_like(w), None)
    assert torch.allclose(err, torch.full((2,), 12.0, dtype=torch.float64))
    layer.record_window1(err, ask)
    assert layer.take()["window1"] == [1.0, 1.0]


@pytest.mark.parametrize("seed", range(4))
def test_window1_norms_equal_the_dense_definition(seed):
    """The row-sparse form against ||(W - W_before) - dense request||^2 in float64, with writes
    outside the requested rows (a refresh or transfer) counted as error."""
    gen = torch.Generator().manual_seed(seed)
    before = torch.rand(30, 3, 7, generator=gen) * 2 - 1
    rows = torch.sort(torch.randperm(30, generator=gen)[:9]).values
    request = torch.randn(9, 3, 7, generator=gen) * 1e-3
    after = before.clone()
    after[rows] += request + torch.randn(9, 3, 7, generator=gen) * 3e-4  # pulses, off by noise
    after[[0, 17]] += 0.05  # a refresh elsewhere
    dense = torch.zeros(30, 3, 7, dtype=torch.float64).index_copy_(0, rows, request.double())
    err, ask = squared_norms(after.double() - before.double(), dense)
    fast_err, fast_ask = window1_norms(after, before, request, rows)
    assert torch.allclose(fast_err, err, rtol=1e-5) and torch.allclose(fast_ask, ask)
