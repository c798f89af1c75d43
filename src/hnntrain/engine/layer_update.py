"""From the gradients a pair layer recorded to device operations (the rule behind
:meth:`hnntrain.nn.PairLinear.apply_update` and :class:`hnntrain.optim.DeviceSGD`).

Each record is (inputs, output gradients) of B samples, shaped (B, positions, rows) and
(B, positions, out). Per sample b the request is

    dW_b = -lr * sum_k outer(x_bk, g_bk)        (k over positions; rank 1 for a linear layer)

and only the rows with a non-zero input in that sample are pulsed (as on a crossbar).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from hnntrain.engine.network import active_rows
from hnntrain.physics import rng
from hnntrain.schemes import UpdateScheme

CHUNK = 64
"""Samples per batched outer-product computation in per-sample mode."""


def recorded_gradient(records: list[tuple[Tensor, Tensor]]) -> Tensor:
    """dL/dW (rows, out), float64, summed over every record."""
    rows, out = records[0][0].shape[-1], records[0][1].shape[-1]
    total = torch.zeros(rows, out, dtype=torch.float64, device=records[0][0].device)
    for x, g in records:
        total += x.reshape(-1, rows).double().t() @ g.reshape(-1, out).double()
    return total


def apply_records(records: list[tuple[Tensor, Tensor]], scheme: UpdateScheme, lr: float, per_sample: bool,
                  next_keys: Callable[[], tuple[rng.Key, rng.Key]], dtype: torch.dtype, where: torch.device) -> int:
    """Hand the requests of ``records`` to ``scheme``; returns the number of samples.

    ``per_sample``: one ``before_sample(1)`` and one ``update`` per sample, the request
    ``-lr * sum_k outer(x_k, g_k)`` over that sample's positions. Otherwise one
    ``before_sample(B)`` and one ``update`` with the summed request ``-lr * dL/dW``.
    ``next_keys()`` gives the keys of each update's two calls (see :mod:`hnntrain.physics.rng`).
    """
    rows_total, out = records[0][0].shape[-1], records[0][1].shape[-1]
    samples = sum(x.shape[0] for x, _ in records)
    if not per_sample:
        request = torch.zeros(rows_total, out, dtype=dtype, device=where)
        active = torch.zeros(rows_total, dtype=torch.bool, device=where)
        for x, g in records:
            request += x.reshape(-1, rows_total).to(dtype).t() @ g.reshape(-1, out).to(dtype)
            active |= (x != 0).reshape(-1, rows_total).any(0)
        rows = active_rows(active)
        request = request.mul_(-lr).unsqueeze(1)
        before, update = next_keys()
        scheme.before_sample(samples, before)
        scheme.update(request if rows is None else request.index_select(0, rows), rows, update)
        return samples
    for x, g in records:
        for start in range(0, x.shape[0], CHUNK):
            xs = x[start:start + CHUNK].to(dtype)
            requests = torch.bmm(xs.transpose(1, 2), g[start:start + CHUNK].to(dtype)).mul_(-lr)
            for b in range(requests.shape[0]):
                rows = active_rows(xs[b])
                request = requests[b] if rows is None else requests[b].index_select(0, rows)
                before, update = next_keys()
                scheme.before_sample(1, before)
                scheme.update(request.unsqueeze(1), rows, update)
    return samples
