"""One training update: forward and backward at the selected input rows, then every layer's
request handed to its scheme, which turns it into device operations.

    rows      = input lines with a non-zero input (a crossbar drives no pulses on idle lines)
    requests  = -lr * dL/dW at those rows, per layer        (hand-written backprop, MLP.step)
    scheme.update(request, rows)                            (pulses, reads, programs)
"""

from __future__ import annotations

import torch
from torch import Tensor

from hnntrain.engine.measure import TrainingMeasures
from hnntrain.engine.network import Network, active_rows


def train_step(net: Network, measures: TrainingMeasures, x: Tensor, y: Tensor, lr: float,
               generator: torch.Generator, samples_done: int) -> None:
    """Apply one update of batch ``x`` (B, inputs) with labels ``y`` to every layer."""
    rows = active_rows(x)
    before = measures.before_step(net)
    for scheme in net.schemes:
        scheme.before_sample(x.shape[0], generator)
    step = net.mlp.step(net.weights(), x, y, lr, rows)
    for layer, (scheme, request) in enumerate(zip(net.schemes, step.requests)):
        layer_rows = rows if layer == 0 else None  # deeper layers see dense hidden activations
        measures.record_request(layer, request, layer_rows)
        scheme.update(request, layer_rows, generator)
    measures.end_step(net, before, step.loss, x.shape[0], samples_done)
