"""PyTorch layers whose weights live in device-pair arrays: :class:`PairLinear`, :class:`PairConv2d`.

A pair layer is an ``nn.Module`` usable inside any model. Its weights are the conductances of a
:class:`~hnntrain.physics.pair.PairArray` (E = 1), built exactly as the built-in trainer builds its
arrays: the same device models (presets, explicit :class:`~hnntrain.spec.config.DeviceConfig`,
fitted ``.toml`` device files, measured ``.csv`` curves), the same pair mapping and the same
sensing; the update schemes are the registered ones (:mod:`hnntrain.schemes`), attached per layer
by :class:`hnntrain.optim.DeviceSGD`.

Semantics (see ``docs/api.md``):

* **Bias row.** With ``bias=True`` the array has one more input row, driven by a constant 1
  (as in the built-in MLP): ``W`` is (rows, out) with rows = fan-in + 1, and
  ``y = [x, 1] @ W``. The bias is a device pair like every other weight.
* **Not Parameters.** The conductances are plain tensors held by the array, never
  ``nn.Parameter``: ``model.parameters()`` does not list them, so a torch optimizer cannot
  touch them, and only the layer's scheme changes them (through pulses). The forward pass is a
  custom autograd function: the input gradient flows on as usual, and the backward pass records
  the layer input (``[x, 1]``; for a convolution the unfolded patches) and the output gradient
  of every sample. :class:`~hnntrain.optim.DeviceSGD` turns those records into requests.
  :attr:`PairLayer.grad` gives dL/dW for inspection.
* **Samples.** The first axis of the input is the sample axis; every other leading axis (the
  positions of a convolution, a sequence axis) is summed within a sample: one sample's request
  is ``-lr * sum_k outer(x_k, g_k)`` (rank 1 for a plain linear layer, rank <= positions for a
  convolution). Requests are the sample's share of the gradient of the loss as written, so with
  a mean-reduced loss over B samples each per-sample request is 1/B of that sample's own
  gradient step and the B requests add up to one mini-batch SGD step.
* **State.** ``state_dict()`` holds, under ``<prefix>_extra_state``: the conductances and write
  counters, the device seed (which fixes the device-to-device draws), the scheme's state and
  the update count (the update noise is counter-based, :mod:`hnntrain.physics.rng`). Loading
  restores all of them (and redraws the devices if the seed differs), so a restored layer
  continues with the very numbers it would have produced.
* **Devices.** Device-to-device draws and initial weights come from CPU generators derived
  from ``seed``; the update noise (stochastic rounding, cycle-to-cycle and read noise) is a hash
  of the seed, the update count and the element: the same numbers on every torch device.
  ``.to(device)`` moves the array and the scheme state. Conductances stay float32 under ``.double()`` / ``.half()``;
  the forward pass casts the weights to the input's dtype.

Limits: no double backward (the function's backward is not differentiable), no
``torch.func`` transforms, zero padding only for convolutions, no groups.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from hnntrain.engine.layer_spec import DeviceSpec, SchemeSpec, layer_config
from hnntrain.engine.pair_layer import PairLayer
from hnntrain.spec.config import PairConfig, SensingConfig

__all__ = ["DeviceSpec", "PairConv2d", "PairLayer", "PairLinear", "SchemeSpec", "layer_config"]


class PairLinear(PairLayer):
    """``y = [x, 1] @ W`` with W (in_features + 1, out_features) stored in device pairs.

    Arguments as :class:`torch.nn.Linear`, plus: ``device`` (preset name, fitted ``.toml``,
    measured ``.csv``, :class:`~hnntrain.spec.config.DeviceConfig` or mapping of device keys),
    ``pair`` and ``sensing`` (:class:`~hnntrain.spec.config.PairConfig`,
    :class:`~hnntrain.spec.config.SensingConfig` or mappings), ``max_pulses`` (pulse cap per device
    per update; 0: none) and ``seed`` (None: drawn from torch's global generator, so ``torch.manual_seed``
    makes models reproducible and layers differ). Inputs (..., in_features); the first axis is
    the sample axis of the per-sample updates.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: DeviceSpec = "abrupt-ltd",
                 pair: PairConfig | Mapping[str, Any] = PairConfig(),
                 sensing: SensingConfig | Mapping[str, Any] = SensingConfig(),
                 max_pulses: int = 0, seed: int | None = None):
        super().__init__(in_features, out_features, bias, device, pair, sensing, max_pulses, seed)
        self.in_features = int(in_features)

    @property
    def weight(self) -> Tensor:
        """(out_features, in_features) weights, as :class:`torch.nn.Linear` holds them (a copy)."""
        return self.array.weight[: self.in_features, 0, :].detach().t().clone()

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"PairLinear expects {self.in_features} input features, got {x.shape[-1]}")
        return self._matmul(self._with_bias(x))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, " + super().extra_repr()


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    out = (value, value) if isinstance(value, int) else tuple(value)
    if len(out) != 2 or not all(isinstance(v, int) for v in out):
        raise ValueError(f"{name}: expected an int or a pair of ints, got {value!r}")
    return out  # type: ignore[return-value]


class PairConv2d(PairLayer):
    """2-D convolution whose kernel lives in device pairs: rows = in_channels * kh * kw (+1 bias).

    The input is unfolded into patches (:func:`torch.nn.functional.unfold`, zero padding) and
    multiplied by W (rows, out_channels): every output position is one array read with the
    patch as input. The per-sample request is the sum over that sample's positions of
    ``outer(patch, g)``, one rank-k update per sample (a crossbar would apply it position by
    position; the sum is what those updates request in total). Inputs (B, C, H, W) or (C, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 dilation: int | tuple[int, int] = 1, bias: bool = True, device: DeviceSpec = "abrupt-ltd",
                 pair: PairConfig | Mapping[str, Any] = PairConfig(),
                 sensing: SensingConfig | Mapping[str, Any] = SensingConfig(),
                 max_pulses: int = 0, seed: int | None = None):
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        kh, kw = self.kernel_size
        super().__init__(in_channels * kh * kw, out_channels, bias, device, pair, sensing, max_pulses, seed)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)

    @property
    def weight(self) -> Tensor:
        """(out_channels, in_channels, kh, kw) kernel, as :class:`torch.nn.Conv2d` holds it (a copy)."""
        w = self.array.weight[: self.fan_in, 0, :].detach().t()
        return w.reshape(self.out_channels, self.in_channels, *self.kernel_size).clone()

    def _out_size(self, size: int, axis: int) -> int:
        k, s, p, d = self.kernel_size[axis], self.stride[axis], self.padding[axis], self.dilation[axis]
        return math.floor((size + 2 * p - d * (k - 1) - 1) / s + 1)

    def forward(self, x: Tensor) -> Tensor:
        unbatched = x.dim() == 3
        if unbatched:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"PairConv2d expects (B, {self.in_channels}, H, W) inputs, got {tuple(x.shape)}")
        h_out, w_out = self._out_size(x.shape[2], 0), self._out_size(x.shape[3], 1)
        patches = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride).transpose(1, 2)
        y = self._matmul(self._with_bias(patches))  # (B, positions, out)
        y = y.transpose(1, 2).reshape(x.shape[0], self.out_channels, h_out, w_out)
        return y.squeeze(0) if unbatched else y

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, " + super().extra_repr())
