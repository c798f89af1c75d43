"""The counter-based random stream: its definition, torch == numba bit for bit, and its statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import ndtri

from hnntrain.physics import rng
from hnntrain.physics.rng import Key

needs_numba = pytest.mark.skipif(rng.numba is None, reason="numba is not installed")


def test_keys_follow_the_documented_definition():
    key = Key.from_seed(2**63 + 5, 3).fold(11, 1, 0)
    expected = rng.fold(rng.fold(rng.fold(rng.fold(2**63 + 5, 2), 11), 1), 0)
    assert int(key.keys[2]) == expected
    draw = key.take(rng.ROUND)
    assert int(draw[2]) == rng.fold(rng.fold(expected, rng.ROUND), 0)
    element = (4 * 2 + 1) * 7 + 3  # row 4, device 1, out 3 of a (rows, 2, E, 7) draw
    bits = rng.bits_torch(draw, (5, 2, 3, 7), None, "cpu")[4, 1, 2, 3]
    assert int(bits) & rng._MASK64 == rng.fold(int(draw[2]), element)


def test_each_take_gives_new_numbers_and_a_fresh_key_repeats_them():
    key = Key.from_seed(1, 2).fold(3)
    first, second = key.take(rng.C2C), key.take(rng.C2C)
    assert not np.array_equal(first, second)
    assert np.array_equal(Key.from_seed(1, 2).fold(3).take(rng.C2C), first)
    assert not np.array_equal(key.take(rng.READ), first)


@pytest.mark.parametrize("normal", [False, True])
def test_a_synapse_gets_its_number_whatever_rows_are_selected(normal):
    keys = Key.from_seed(9, 4).take(rng.ROUND)
    draw = rng.normal if normal else rng.uniform
    full = draw(keys, (20, 2, 4, 6))
    rows = torch.tensor([17, 2, 9])
    assert torch.equal(draw(keys, (3, 2, 4, 6), rows), full[rows])


@needs_numba
@pytest.mark.parametrize("shape", [(30, 2, 5, 40), (17, 3, 11), (1000,)])
def test_torch_and_numba_give_identical_numbers(shape):
    replicas = shape[-2] if len(shape) > 1 else 1
    keys = Key.from_seed(123, replicas).fold(7).take(rng.C2C)
    rows = torch.randperm(shape[0] * 3)[: shape[0]]
    layout = rng._layout(keys, shape)
    uniform_torch = rng.uniform_torch(keys, layout, rows).view(shape)
    normal_torch = rng.normal_torch(keys, layout, rows).view(shape)
    assert torch.equal(rng.uniform(keys, shape, rows), uniform_torch)
    assert torch.equal(rng.normal(keys, shape, rows), normal_torch)


def test_torch_normal_tails_match_the_numba_scalar_bit_for_bit():
    if rng.numba is None:
        pytest.skip("numba is not installed")
    h = torch.randint(-2**62, 2**62, (20_000,), generator=torch.Generator().manual_seed(0)) * 2 + 1
    reference = rng.normal_from_bits(h)
    scalar = torch.tensor([rng.normal_nb(np.uint64(int(v) & rng._MASK64)) for v in h], dtype=torch.float64)
    assert torch.equal(reference, scalar)


def test_uniforms_are_uniform():
    u = rng.uniform(Key.from_seed(5, 8).take(rng.ROUND), (2000, 8, 50)).double().numpy().ravel()
    assert u.min() >= 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    counts = np.histogram(u, bins=64, range=(0, 1))[0]
    assert stats.chisquare(counts).pvalue > 1e-3
    # neighbours (consecutive elements, consecutive replicas) are uncorrelated
    grid = u.reshape(2000, 8, 50)
    assert abs(np.corrcoef(grid[:, :, :-1].ravel(), grid[:, :, 1:].ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(grid[:, :-1].ravel(), grid[:, 1:].ravel())[0, 1]) < 0.01


def test_normals_are_standard_normal_including_the_tails():
    z = rng.normal(Key.from_seed(6, 4).take(rng.C2C), (5000, 4, 100)).numpy().ravel()
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < 0.005 and abs(z.std() - 1) < 0.005
    assert abs(stats.skew(z)) < 0.02 and abs(stats.kurtosis(z)) < 0.04
    for k in (2.0, 3.0, 4.0):  # tail masses
        assert np.mean(np.abs(z) > k) == pytest.approx(2 * stats.norm.sf(k), rel=0.1)


def test_inverse_normal_is_accurate():
    h = torch.randint(-2**62, 2**62, (200_000,), generator=torch.Generator().manual_seed(1))
    p = (rng._shr(h, 12).double() + 0.5) * 2.0**-52
    assert float((rng.normal_from_bits(h) - torch.from_numpy(ndtri(p.numpy()))).abs().max()) < 1e-7


def test_a_key_for_other_replica_counts_is_refused():
    with pytest.raises(ValueError, match="replica axis"):
        rng.uniform(Key.from_seed(0, 3).take(rng.ROUND), (4, 2, 5))


def test_a_masked_normal_draw_keeps_the_numbers_where_it_draws():
    keys = Key.from_seed(4, 3).take(rng.C2C)
    where = torch.rand(6, 2, 3, 5, generator=torch.Generator().manual_seed(0)) < 0.3
    full = rng.normal(keys, (6, 2, 3, 5))
    masked = rng.normal(keys, (6, 2, 3, 5), where=where)
    assert torch.equal(masked[where], full[where])
    assert bool((masked[~where] == 0).all())
