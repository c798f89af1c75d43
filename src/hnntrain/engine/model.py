"""The multilayer perceptron whose weights are read from pair arrays.

Shapes: E replicas, B samples; layer l maps n_l inputs (+1 bias input) to n_{l+1} outputs
with weights W_l of shape (n_l + 1, E, n_{l+1}), input-major like the arrays. All replicas
see the same samples, so the first layer is one matrix product for the whole ensemble.
Hidden layers apply ``activation``; the output is a softmax with cross-entropy loss.
Backpropagation is written out (no autograd): at batch 1 the graph bookkeeping would cost
more than the arithmetic.

    a_l = h_{l-1} W_l,  h_l = f(a_l),  p = softmax(a_L),  loss = -log p_y
    delta_L = (p - onehot(y)) / B,  delta_l = (delta_{l+1} W_{l+1}[:n]^T) * f'(a_l)
    dW_l = -lr * h_{l-1}^T delta_l          (the SGD request handed to the scheme)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def _sigmoid_grad(h: Tensor) -> Tensor:
    return h * (1 - h)


def _tanh_grad(h: Tensor) -> Tensor:
    return 1 - h * h


def _relu_grad(h: Tensor) -> Tensor:
    return (h > 0).to(h.dtype)


ACTIVATIONS = {
    "sigmoid": (torch.sigmoid, _sigmoid_grad),
    "tanh": (torch.tanh, _tanh_grad),
    "relu": (torch.relu, _relu_grad),
}


@dataclass
class StepResult:
    loss: Tensor
    """(E,) summed cross-entropy of the batch, per replica."""
    requests: list[Tensor]
    """Per layer, the SGD weight change (k, E, out), input-major like the arrays: k is the
    layer's input rows (the selected active rows for the first layer, all rows otherwise)."""


class MLP:
    """Forward and backward passes over weights supplied by arrays (one per layer)."""

    def __init__(self, sizes: list[int], activation: str, bias: bool):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}")
        self.sizes = list(sizes)
        self.act, self.act_grad = ACTIVATIONS[activation]
        self.bias = bias

    def weight_shapes(self) -> list[tuple[int, int]]:
        """(in, out) per layer, ``in`` including the bias input."""
        extra = 1 if self.bias else 0
        return [(n_in + extra, n_out) for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:])]

    def _with_bias(self, h: Tensor) -> Tensor:
        if not self.bias:
            return h
        return torch.cat((h, torch.ones(*h.shape[:-1], 1, dtype=h.dtype, device=h.device)), dim=-1)

    @staticmethod
    def _first(x: Tensor, w: Tensor) -> Tensor:
        """Shared inputs (B, in) through (in, E, out) -> (E, B, out) with one matrix product."""
        n_in, replicas, n_out = w.shape
        return torch.matmul(x, w.reshape(n_in, replicas * n_out)).view(x.shape[0], replicas, n_out).transpose(0, 1)

    @staticmethod
    def _next(h: Tensor, w: Tensor) -> Tensor:
        """Per-replica inputs (E, B, in) through (in, E, out) -> (E, B, out)."""
        return torch.bmm(h, w.transpose(0, 1))

    def logits(self, weights: list[Tensor], x: Tensor) -> Tensor:
        """x (B, n_0 [+1 bias input]) -> (E, B, classes)."""
        a = self._first(x, weights[0])
        for w in weights[1:]:
            a = self._next(self._with_bias(self.act(a)), w)
        return a

    def step(self, weights: list[Tensor], x: Tensor, y: Tensor, lr: float, first_cols: Tensor | None) -> StepResult:
        """One forward/backward pass. ``x`` is (B, n_0 [+1]), ``y`` (B,) labels; the first
        layer's request is restricted to the inputs ``first_cols`` (None: all)."""
        hidden = []
        a = self._first(x, weights[0])
        for w in weights[1:]:
            h = self._with_bias(self.act(a))
            hidden.append(h)
            a = self._next(h, w)
        log_p = torch.log_softmax(a, dim=-1)  # (E, B, C)
        batch = x.shape[0]
        rows = torch.arange(batch, device=x.device)
        loss = -log_p[:, rows, y].sum(-1)
        delta = torch.exp(log_p)
        delta[:, rows, y] -= 1.0
        if batch > 1:
            delta = delta * (1.0 / batch)
        requests: list[Tensor] = [None] * len(weights)  # type: ignore[list-item]
        for layer in range(len(weights) - 1, 0, -1):
            h_in = hidden[layer - 1]  # (E, B, n+1)
            # sum over the batch of outer products, per replica: (E, in, B) @ (E, B, out)
            requests[layer] = torch.bmm(h_in.transpose(1, 2), delta).transpose(0, 1).mul_(-lr)
            n_hidden = self.sizes[layer]
            back = torch.bmm(delta, weights[layer][:n_hidden].permute(1, 2, 0))
            delta = back * self.act_grad(h_in[..., :n_hidden])
        x_in = x if first_cols is None else x.index_select(1, first_cols)
        replicas = delta.shape[0]
        # (k, B) @ (B, E*out): the inputs are shared, so one product serves every replica
        flat = delta.transpose(0, 1).reshape(batch, -1)
        requests[0] = torch.matmul(x_in.t(), flat).view(x_in.shape[1], replicas, -1).mul_(-lr)
        return StepResult(loss=loss, requests=requests)
