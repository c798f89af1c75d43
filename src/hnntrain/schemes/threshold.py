"""``threshold``: skip small updates (Chang et al., arXiv 1712.05895; IEEE JETCAS 2018).

The threshold weight-update scheme suppresses the training noise of inaccurate small updates:
a request is applied only when it is worth at least ``threshold`` push-pull pulses, and then
converted like ``sgd`` (push-pull, stochastic rounding of dW / (2 dw_step)):

    n = stochastic_round(dW / (2 dw_step))  if |dW| >= threshold * 2 dw_step,  else 0

Sub-threshold requests are discarded, not accumulated (believed to be the original's choice;
the accumulating variant is ``mixed_precision``). With ``deterministic = true`` the count is
round(dW / (2 dw_step)) instead; then every request under half a pulse is lost, which stops
layers whose requests are all that small from learning.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from hnntrain.schemes.base import UpdateScheme, register, stochastic_round
from hnntrain.schemes.common import push_pull, push_pull_count
from hnntrain.spec.config import ConfigError


@dataclass(frozen=True)
class ThresholdOptions:
    threshold: float = 0.25
    """Smallest request applied, in push-pull pulses (> 0)."""
    deterministic: bool = False
    """Round to the nearest pulse count instead of stochastic rounding."""

    def check(self) -> None:
        if self.threshold <= 0:
            raise ConfigError("scheme.threshold", "must be > 0 pulses")


@register
class ThresholdUpdate(UpdateScheme):
    name = "threshold"
    Options = ThresholdOptions

    def update(self, request: Tensor, rows: Tensor | None, generator) -> None:
        x = push_pull_count(request, self.array.dw_step)
        n = torch.round(x) if self.options.deterministic else stochastic_round(x, generator, rows)
        n = torch.where(x.abs() >= self.options.threshold, n, torch.zeros_like(x))
        self.array.pulse(push_pull(n), rows, generator)
