"""One training update: forward and backward at the selected input rows, then every layer's
request handed to its scheme, which turns it into device operations.

    rows      = input lines with a non-zero input (a crossbar drives no pulses on idle lines)
    requests  = -lr * dL/dW at those rows, per layer        (hand-written backprop, MLP.step)
    update(request, rows, key)                              (pulses, reads, programs)

``update`` is the scheme's reference ``update`` or its fused kernel
(:func:`hnntrain.engine.kernels.updaters`). Random numbers: the run key folded with the update
index, the layer and the phase (``BEFORE``: the scheme's ``before_sample``, ``UPDATE``: the
update), see :mod:`hnntrain.physics.rng`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

from hnntrain.engine.measure import TrainingMeasures
from hnntrain.engine.network import DENSE_FRACTION, Network, active_rows
from hnntrain.physics import rng

BEFORE, UPDATE = 0, 1
"""Phases of one layer's update, folded into its key."""


def train_step(net: Network, measures: TrainingMeasures, x: Tensor, y: Tensor, lr: float,
               key: rng.Key, samples_done: int, updates: list[Callable] | None = None,
               befores: list[Callable] | None = None) -> None:
    """Apply one update of batch ``x`` (B, inputs) with labels ``y`` to every layer; ``key`` is
    the run key, ``updates`` and ``befores`` one update and one before-sample callable per layer
    (None: the schemes' own)."""
    rows = active_rows(x)
    step_key = key.fold(measures.updates)
    before = measures.before_step(net)
    for layer, before_sample in enumerate(befores or [s.before_sample for s in net.schemes]):
        before_sample(x.shape[0], step_key.fold(layer, BEFORE))
    step = net.mlp.step(net.weights(), x, y, lr, rows)
    updates = updates or [s.update for s in net.schemes]
    for layer, (update, request) in enumerate(zip(updates, step.requests)):
        layer_rows = rows if layer == 0 else None  # deeper layers see dense hidden activations
        measures.record_request(layer, request, layer_rows)
        update(request, layer_rows, step_key.fold(layer, UPDATE))
    measures.end_step(net, before, step.loss, x.shape[0], samples_done)


def fused_train_step(net: Network, measures: TrainingMeasures, x: Tensor, y: Tensor, lr: float, key: rng.Key,
                     samples_done: int, updates: list[Callable], befores: list[Callable], activation: str) -> None:
    """:func:`train_step` for one sample with every layer's update fused: the forward and
    backward pass and the update-noise request sums in numba too (same numbers to float
    rounding). Window-1 samples record their requests as :func:`train_step` does."""
    from hnntrain.engine.kernels.devices import row_indices
    from hnntrain.engine.kernels.network import add_requests, forward_backward

    x_row = x[0].numpy()
    active = np.flatnonzero(x_row)
    dense = active.size > DENSE_FRACTION * x_row.size
    rows = row_indices(None, x_row.size) if dense else active
    step_key = key.fold(measures.updates)
    before = measures.before_step(net)
    for layer, before_sample in enumerate(befores):
        before_sample(1, step_key.fold(layer, BEFORE))
    weights = [w.numpy() for w in net.weights()]
    requests, loss = forward_backward(net.mlp, activation, weights, x_row, rows, int(y[0]), lr)
    for layer, (update, request) in enumerate(zip(updates, requests)):
        torch_rows = None if layer > 0 or dense else torch.from_numpy(rows)
        request_t = torch.from_numpy(request)
        if before is not None:
            measures.record_request(layer, request_t, torch_rows)
        else:
            layer_rows = rows if layer == 0 else row_indices(None, request.shape[0])
            add_requests(measures.update_noise.layers[layer].requested.numpy(), request, layer_rows)
        update(request_t, torch_rows, step_key.fold(layer, UPDATE))
    measures.end_step(net, before, torch.from_numpy(loss), 1, samples_done)
