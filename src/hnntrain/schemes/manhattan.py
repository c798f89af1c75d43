"""``manhattan``: the Manhattan rule, sign-only updates of a fixed size (Zamanidoost, Bayat,
Strukov and Kataeva, IEEE WISP 2015).

    dW = -eta * sign(sum_{b in batch} dE_b/dW)   ->   n = pulses * sign(dW) for every touched weight

applied push-pull on the pair. The source's batch rule takes the sign of a mini-batch gradient;
here the scheme sums the requests of ``batch`` updates in a digital buffer and applies the sign
of their mean (the mini-batch gradient times the learning rate) once per ``batch`` updates,
which costs one digital word per synapse (listed as 16 bits). ``batch = 1`` is the per-sample
(stochastic) variant.

Why batch 1 fails on an MLP with sigmoid hidden units: the output layer's request is
dW_ij = -lr * h_i * delta_j with every h_i > 0, so within one sample every weight into output j
has the sign of -delta_j whatever the input: the target class's row goes up one step, the nine
others down one step, and the sign carries no information about the input (measured on MNIST:
8.95 % at batch 1 (10,000 samples); 86.3 % with the sign of a 10-sample mean; 86.5 % at batch 1 with tanh hidden
units, whose activations take both signs). A weight counts as touched when its (mean) request
is non-zero, or worth at least ``min_request`` push-pull pulses when that is set. The learning
rate enters only through that threshold: the step is ``pulses`` whatever the gradient's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from hnntrain.schemes.base import UpdateScheme, register
from hnntrain.schemes.common import push_pull, push_pull_count
from hnntrain.spec.config import ConfigError


@dataclass(frozen=True)
class ManhattanOptions:
    pulses: int = 1
    """Pulses per device for every touched weight (>= 1)."""
    min_request: float = 0.0
    """Ignore (mean) requests smaller than this many push-pull pulses; 0 (the source's rule):
    every weight with a non-zero gradient moves."""
    batch: int = 64
    """Updates whose requests are summed before the sign is taken (the source's mini-batch),
    >= 1; 1 applies the sign of every single update. Measured on ``ideal`` (20,000 MNIST
    samples, 1 seed): batch 10 61.6 %, 32 90.4 %, 64 91.1 %, 128 91.5 %: a fixed step on
    every weight with a non-zero mean needs a mean over many samples to point downhill."""

    def check(self) -> None:
        if self.pulses < 1:
            raise ConfigError("scheme.pulses", "must be >= 1")
        if self.min_request < 0:
            raise ConfigError("scheme.min_request", "must be >= 0 pulses")
        if self.batch < 1:
            raise ConfigError("scheme.batch", "must be >= 1 update")


@register
class Manhattan(UpdateScheme):
    name = "manhattan"
    Options = ManhattanOptions

    def __init__(self, options, array, ctx):
        super().__init__(options, array, ctx)
        self.summed = torch.zeros_like(array.weight) if options.batch > 1 else None
        """Sum of the requests since the last applied sign, (in, E, out) weight units."""
        self.pending = 0

    def hardware(self) -> dict:
        batched = self.options.batch > 1
        return {"digital_bits_per_synapse": 16 if batched else 0, "extra_arrays": 0, "sensing": False,
                "refresh": False,
                "note": f"sign of a {self.options.batch}-update mini-batch gradient" if batched else
                        "sign of every single update (stochastic Manhattan)"}

    def update(self, request: Tensor, rows: Tensor | None, generator) -> None:
        if self.summed is not None:
            if rows is None:
                self.summed += request
            else:
                self.summed.index_add_(0, rows, request)
            self.pending += 1
            if self.pending < self.options.batch:
                return
            request, rows = self.summed * (1.0 / self.pending), None
            self.summed = torch.zeros_like(self.summed)
            self.pending = 0
        touched = (push_pull_count(request, self.array.dw_step).abs() >= self.options.min_request) & (request != 0)
        n = torch.where(touched, torch.sign(request) * float(self.options.pulses), torch.zeros_like(request))
        self.array.pulse(push_pull(n), rows, generator)

    def state_dict(self) -> dict:
        return {"summed": self.summed, "pending": self.pending}

    def load_state_dict(self, state: dict) -> None:
        if state.get("summed") is not None:
            self.summed = state["summed"].to(self.array.weight.device)
        self.pending = state.get("pending", 0)
