"""``manhattan``: sign-only updates with a fixed pulse count (Zamanidoost et al., IEEE WISP 2015).

    dW = -eta * sign(dE/dW)   ->   n = pulses * sign(dW)  for every requested change |dW| > min_request

applied push-pull on the pair. On a linear device every touched weight moves by exactly
``pulses`` push-pull steps. The learning rate only enters through the sign and through which
weights count as touched: at batch 1 nearly every weight with a non-zero input has a non-zero
gradient, so by default a weight is touched when its request is worth at least half a
push-pull pulse (``min_request = 0.5``); with 0 every such weight moves a full step per sample.

At batch 1 the rule takes the sign of one sample's gradient, which is biased: every sample
pushes its target class's output bias up one step and every other class's down one step, so
the biases drift down together and the network collapses to chance. The source applies it to
batches (the sign of an accumulated gradient); use ``train.batch_size`` > 1 with a learning
rate large enough that requests reach half a pulse (measured: 25 % at batch 1, 100 % with batch
10 and lr 1.0 on the synthetic 4-class set).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from hnntrain.schemes.base import UpdateScheme, register
from hnntrain.schemes.common import push_pull
from hnntrain.spec.config import ConfigError


@dataclass(frozen=True)
class ManhattanOptions:
    pulses: int = 1
    """Pulses per device for every touched weight (>= 1)."""
    min_request: float = 0.5
    """Ignore requests smaller than this many push-pull pulses (0: only exact zeros)."""

    def check(self) -> None:
        if self.pulses < 1:
            raise ConfigError("scheme.pulses", "must be >= 1")
        if self.min_request < 0:
            raise ConfigError("scheme.min_request", "must be >= 0 pulses")


@register
class Manhattan(UpdateScheme):
    name = "manhattan"
    Options = ManhattanOptions

    def update(self, request: Tensor, rows: Tensor | None, generator) -> None:
        touched = (request.abs() >= self.options.min_request * 2 * self.array.dw_step) & (request != 0)
        n = torch.where(touched, torch.sign(request) * float(self.options.pulses), torch.zeros_like(request))
        self.array.pulse(push_pull(n), rows, generator)
