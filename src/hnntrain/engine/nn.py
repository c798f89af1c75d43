"""PyTorch layers whose weights live in device-pair arrays: :class:`PairLinear`, :class:`PairConv2d`.

A pair layer is an ``nn.Module`` usable inside any model. Its weights are the conductances of a
:class:`~hnntrain.physics.pair.PairArray` (E = 1), built exactly as the built-in trainer builds its
arrays: the same device models (presets, explicit :class:`~hnntrain.config.DeviceConfig`,
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
  the update generator. Loading restores all of them (and redraws the devices if the seed
  differs), so a restored layer continues with the very numbers it would have produced.
* **Devices.** Device-to-device draws and initial weights come from CPU generators derived
  from ``seed``; the update noise (stochastic rounding, cycle-to-cycle and read noise) from a
  generator on the layer's torch device. ``.to(device)`` moves the array, the scheme state and
  the generator (a generator cannot change device; the new one is seeded from the old one, so
  runs stay reproducible per device). Conductances stay float32 under ``.double()`` / ``.half()``;
  the forward pass casts the weights to the input's dtype.

Limits: no double backward (the function's backward is not differentiable), no
``torch.func`` transforms, zero padding only for convolutions, no groups.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hnntrain.engine.network import (
    active_rows,
    derive_seeds,
    program_array,
    scheme_context,
)
from hnntrain.io.resolve import build_config
from hnntrain.physics.pair import FloatArray, PairArray, init_weights
from hnntrain.schemes import (
    SCHEMES,
    SchemeContext,
    UpdateScheme,
    build_scheme,
    get_scheme,
    parse_options,
)
from hnntrain.spec.config import (
    DeviceConfig,
    PairConfig,
    RunConfig,
    SensingConfig,
    config_hash,
)

__all__ = ["DeviceSpec", "PairConv2d", "PairLayer", "PairLinear", "SchemeSpec", "layer_config"]

DeviceSpec = str | os.PathLike | DeviceConfig | Mapping[str, Any]
"""A preset name, a ``.toml`` file with a ``[device]`` table (as ``hnntrain device fit``
writes), a measured-curve ``.csv``, a :class:`DeviceConfig`, or a mapping of ``device.*`` keys."""

SchemeSpec = str | type | Callable[[Any, SchemeContext], UpdateScheme]
"""A registered scheme name, an :class:`UpdateScheme` subclass, or a factory
``f(array, ctx) -> UpdateScheme`` (one call per layer: a scheme instance belongs to one array)."""

_STATE_FORMAT = 1
_CHUNK = 64  # samples per batched outer-product computation in per-sample mode


# -- configuration -----------------------------------------------------------------------------
def _device_values(device: DeviceSpec) -> dict[str, Any]:
    if isinstance(device, DeviceConfig):
        # only what differs from the defaults, so that a preset's values are not overridden
        defaults = DeviceConfig()
        return {f.name: getattr(device, f.name) for f in dataclasses.fields(DeviceConfig)
                if getattr(device, f.name) != getattr(defaults, f.name)}
    if isinstance(device, Mapping):
        return {str(k).removeprefix("device."): v for k, v in device.items()}
    if isinstance(device, (str, os.PathLike)):
        from hnntrain.io.resolve import (
            device_values as spec_values,  # the one resolver the CLI uses
        )

        return spec_values(os.fspath(device))
    raise TypeError(f"device: expected a preset name, a .toml/.csv path, a DeviceConfig or a mapping, "
                    f"got {type(device).__name__}")


def _section_values(section: str, value: Any, cls: type) -> dict[str, Any]:
    if isinstance(value, cls):
        return {f"{section}.{f.name}": getattr(value, f.name) for f in dataclasses.fields(cls)}
    if isinstance(value, Mapping):
        return {f"{section}.{str(k).removeprefix(section + '.')}": v for k, v in value.items()}
    raise TypeError(f"{section}: expected a {cls.__name__} or a mapping, got {type(value).__name__}")


def layer_config(device: DeviceSpec = "abrupt-ltd", pair: PairConfig | Mapping[str, Any] = PairConfig(),
                 sensing: SensingConfig | Mapping[str, Any] = SensingConfig(), max_pulses: int = 16) -> RunConfig:
    """The validated run configuration of one layer (``device``, ``pair``, ``sensing`` and
    ``scheme.max_pulses``; everything else default), resolved by :func:`~hnntrain.config.build_config`
    as for ``hnntrain run``: presets first, explicit keys over them."""
    values = {f"device.{k}": v for k, v in _device_values(device).items()}
    values.update(_section_values("pair", pair, PairConfig))
    values.update(_section_values("sensing", sensing, SensingConfig))
    values["scheme.max_pulses"] = max_pulses
    return build_config(values)


# -- helpers ---------------------------------------------------------------------------------
def _map_tensors(obj: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    return obj


def _clone_to(obj: Any, where: torch.device | str | None = None) -> Any:
    """Deep copy of the tensors in ``obj`` (on ``where`` when given): states never alias live
    tensors, which the arrays and schemes update in place."""
    if where is None:
        return _map_tensors(obj, lambda t: t.detach().clone())
    return _map_tensors(obj, lambda t: t.detach().to(where, copy=True))


def _scheme_builder(scheme: SchemeSpec, params: Mapping[str, Any] | None):
    """(uses_devices, build(array, ctx)) for a scheme given by name, class or factory."""
    params = dict(params or {})
    if isinstance(scheme, str):
        cls = get_scheme(scheme)
        return cls.uses_devices, lambda array, ctx: build_scheme(scheme, params, array, ctx)
    if isinstance(scheme, UpdateScheme):
        raise TypeError("scheme: pass the scheme's class or a factory f(array, ctx), not an instance "
                        "(an instance is bound to one array, and every layer needs its own)")
    if isinstance(scheme, type) and issubclass(scheme, UpdateScheme):
        if SCHEMES.get(scheme.name) is scheme:  # registered: the same path as the trainer
            return scheme.uses_devices, lambda array, ctx: build_scheme(scheme.name, params, array, ctx)
        return scheme.uses_devices, lambda array, ctx: scheme(parse_options(scheme.Options, params), array, ctx)
    if callable(scheme):
        if params:
            raise TypeError("scheme: options are for a scheme given by name or class; a factory takes none")
        return bool(getattr(scheme, "uses_devices", True)), scheme
    raise TypeError(f"scheme: expected a name, an UpdateScheme subclass or a factory, got {type(scheme).__name__}")


def _seed_from(data: Tensor) -> int:
    return int.from_bytes(hashlib.sha256(data.cpu().numpy().tobytes()).digest()[:8], "little") >> 1


class _PairMatmul(torch.autograd.Function):
    """y = x @ w with the layer's weights; backward records (x, dL/dy) for the layer's update."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, layer: PairLayer) -> Tensor:
        ctx.save_for_backward(x, w)
        ctx.layer = layer
        return x @ w

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        x, w = ctx.saved_tensors
        ctx.layer._record(x, grad)
        grad_x = grad @ w.t() if ctx.needs_input_grad[0] else None
        return grad_x, None, None  # no gradient for w: the scheme, not autograd, updates it


# -- the layers ------------------------------------------------------------------------------
class PairLayer(nn.Module):
    """What :class:`PairLinear` and :class:`PairConv2d` share: the array (rows, 2, 1, out), the
    scheme, the generators, gradient records and state. Not used directly."""

    def __init__(self, fan_in: int, out_features: int, bias: bool, device: DeviceSpec,
                 pair: PairConfig | Mapping[str, Any], sensing: SensingConfig | Mapping[str, Any],
                 max_pulses: int, seed: int | None):
        super().__init__()
        if fan_in < 1 or out_features < 1:
            raise ValueError(f"a pair layer needs at least one input and one output (got {fan_in}, {out_features})")
        self.config = layer_config(device, pair, sensing, max_pulses)
        """The layer's validated configuration (``device``, ``pair``, ``sensing``, ``scheme.max_pulses``)."""
        self.fan_in = int(fan_in)
        self.out_features = int(out_features)
        self.use_bias = bool(bias)
        self.row_count = self.fan_in + (1 if self.use_bias else 0)
        """Array inputs: fan-in plus the bias row."""
        if seed is None:  # follows torch.manual_seed, and differs between layers
            seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
        if seed < 0:
            raise ValueError(f"seed must be >= 0 (got {seed})")
        self.seed = int(seed)
        """Seed of the initial weights, the device-to-device draws and the update noise."""
        self._where = torch.device("cpu")
        init_seed, d2d_seed, _, update_seed = derive_seeds(self.seed, 4)  # the trainer's derivation
        weights = init_weights((self.row_count, 1, self.out_features), self.row_count, self.config.pair,
                               torch.Generator().manual_seed(init_seed))
        self.array: PairArray | FloatArray = program_array(weights, self.config.device, self.config.pair,
                                                           self.config.scheme.max_pulses,
                                                           torch.Generator().manual_seed(d2d_seed))
        """The device pairs (a :class:`~hnntrain.physics.pair.FloatArray` once the ``fp`` scheme is attached)."""
        self.ctx = self._context(self._where)
        """What a scheme may know besides the array (nominal device, sensing)."""
        self.generator = torch.Generator().manual_seed(update_seed)
        """Update noise: pulse rounding, cycle-to-cycle and read noise (on the layer's device)."""
        self.scheme: UpdateScheme | None = None
        """The update scheme (attached by :class:`~hnntrain.optim.DeviceSGD` or :meth:`attach_scheme`)."""
        self._scheme_spec: tuple[SchemeSpec, dict] | None = None
        self._pending_scheme: dict | None = None
        self._records: list[tuple[Tensor, Tensor]] = []

    # -- construction -------------------------------------------------------------------------
    def _context(self, where: torch.device) -> SchemeContext:
        cfg = self.config
        return scheme_context(cfg.device, cfg.sensing, cfg.scheme.max_pulses, where)

    def attach_scheme(self, scheme: SchemeSpec, params: Mapping[str, Any] | None = None) -> UpdateScheme:
        """Build this layer's update scheme (replacing any earlier one) and return it.

        ``scheme``: a registered name (``"crus"``, ``"sgd"``, ...; ``params`` are its options, as
        ``scheme.<option>`` keys in a config), an :class:`UpdateScheme` subclass (registered or
        not; ``params`` likewise), or a factory ``f(array, ctx)``. A scheme state loaded before
        any scheme was attached is applied now. The floating-point reference ``fp`` turns the
        layer into plain weights (:class:`~hnntrain.physics.pair.FloatArray`) holding its current values.
        """
        uses_devices, build = _scheme_builder(scheme, params)
        if not uses_devices and isinstance(self.array, PairArray):
            self.array = FloatArray(self.array.weight.float().clone())
        elif uses_devices and not isinstance(self.array, PairArray):
            raise ValueError("this layer holds floating-point weights (an 'fp' scheme was attached); "
                             "a device scheme needs a new layer")
        built = build(self.array, self.ctx)
        if not callable(getattr(built, "update", None)):
            raise TypeError(f"scheme: the factory returned {type(built).__name__}, not an update scheme")
        self.scheme = built
        self._scheme_spec = (scheme, dict(params or {}))
        if self._pending_scheme is not None:
            pending, self._pending_scheme = self._pending_scheme, None
            self._load_scheme_state(pending)
        return built

    def _load_scheme_state(self, saved: dict) -> None:
        name = getattr(self.scheme, "name", "")
        if saved["name"] != name:
            raise ValueError(f"the saved scheme state belongs to {saved['name']!r}, this layer runs {name!r}")
        self.scheme.load_state_dict(_clone_to(saved["state"], self._where))

    # -- weights --------------------------------------------------------------------------------
    def weight_matrix(self) -> Tensor:
        """(rows, out) weights as the array computes with them (a copy; the bias is the last row)."""
        return self.array.weight[:, 0, :].detach().clone()

    @property
    def grad(self) -> Tensor | None:
        """dL/dW, (rows, out), summed over the backward passes recorded since the last update
        (None when there are none; a layer without a scheme records nothing). For inspection:
        the update uses the per-sample records."""
        if not self._records:
            return None
        total = torch.zeros(self.row_count, self.out_features, dtype=torch.float64, device=self._where)
        for x, g in self._records:
            total += x.reshape(-1, self.row_count).double().t() @ g.reshape(-1, self.out_features).double()
        return total.to(self.array.weight.dtype)

    @property
    def bias(self) -> Tensor | None:
        """(out,) bias (the bias row of the array; a copy), or None without a bias."""
        return self.array.weight[-1, 0, :].detach().clone() if self.use_bias else None

    def _weights_for(self, x: Tensor) -> Tensor:
        w = self.array.weight[:, 0, :].detach()
        if w.dtype != x.dtype:
            w = w.to(x.dtype)
        if torch.is_grad_enabled():
            # a fresh leaf that requires grad, so that backward runs (and records) even when
            # nothing upstream requires grad; it never receives a gradient itself
            w = w.detach().requires_grad_()
        return w

    def _matmul(self, x_aug: Tensor) -> Tensor:
        return _PairMatmul.apply(x_aug, self._weights_for(x_aug), self)

    def _with_bias(self, x: Tensor) -> Tensor:
        if not self.use_bias:
            return x
        return torch.cat((x, x.new_ones(*x.shape[:-1], 1)), dim=-1)

    # -- gradients and updates --------------------------------------------------------------------
    def _record(self, x: Tensor, grad: Tensor) -> None:
        if self.scheme is None:  # a layer nobody trains stays fixed and keeps no records
            return
        samples = x.shape[0] if x.dim() > 1 else 1
        self._records.append((x.detach().reshape(samples, -1, self.row_count),
                              grad.detach().reshape(samples, -1, self.out_features)))

    def discard_gradients(self) -> None:
        """Forget the recorded gradients (``DeviceSGD.zero_grad`` calls this)."""
        self._records = []

    @torch.no_grad()
    def apply_update(self, lr: float, per_sample: bool = True) -> int:
        """Turn the recorded gradients into device operations with the attached scheme and
        forget them; returns the number of samples applied (0: nothing recorded, or a
        gradient that is zero everywhere: the layer is then left untouched, no reads, no pulses).

        ``per_sample``: one ``before_sample(1)`` and one ``update`` per sample, the request
        ``-lr * sum_k outer(x_k, g_k)`` over that sample's positions. Otherwise one
        ``before_sample(B)`` and one ``update`` with the summed request ``-lr * dL/dW``.
        """
        records, self._records = self._records, []
        if not records or not any(bool(g.any()) for _, g in records):
            return 0
        if self.scheme is None:
            raise RuntimeError("this pair layer has no update scheme; create a DeviceSGD for the model "
                               "or call attach_scheme()")
        dtype, gen, scheme = self.array.weight.dtype, self.generator, self.scheme
        samples = sum(x.shape[0] for x, _ in records)
        if not per_sample:
            request = torch.zeros(self.row_count, self.out_features, dtype=dtype, device=self._where)
            active = torch.zeros(self.row_count, dtype=torch.bool, device=self._where)
            for x, g in records:
                request += x.reshape(-1, self.row_count).to(dtype).t() @ g.reshape(-1, self.out_features).to(dtype)
                active |= (x != 0).reshape(-1, self.row_count).any(0)
            rows = active_rows(active)
            request = request.mul_(-lr).unsqueeze(1)
            scheme.before_sample(samples, gen)
            scheme.update(request if rows is None else request.index_select(0, rows), rows, gen)
            return samples
        for x, g in records:
            for start in range(0, x.shape[0], _CHUNK):
                xs = x[start:start + _CHUNK].to(dtype)
                requests = torch.bmm(xs.transpose(1, 2), g[start:start + _CHUNK].to(dtype)).mul_(-lr)
                for b in range(requests.shape[0]):
                    rows = active_rows(xs[b])
                    request = requests[b] if rows is None else requests[b].index_select(0, rows)
                    scheme.before_sample(1, gen)
                    scheme.update(request.unsqueeze(1), rows, gen)
        return samples

    # -- moving between torch devices -----------------------------------------------------------
    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        target = fn(torch.empty(0, device=self._where)).device
        if target != self._where:
            self._relocate(target)
        return self

    def _relocate(self, where: torch.device) -> None:
        """Move the array, the scheme (rebuilt, then its state loaded) and the generator."""
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator, device=self._where).item())
        scheme_state = None if self.scheme is None else self._scheme_state()
        old = self.array
        if isinstance(old, PairArray):
            self.array = PairArray(old.g.to(where), old.model.to(where), old.scale, old.max_pulses)
        else:
            self.array = FloatArray(old.w.to(where))
        self.array.counter.load_state_dict(old.counter.state_dict())
        self._where = where
        self.ctx = self._context(where)
        self.generator = torch.Generator(device=where).manual_seed(seed)
        self._records = [(x.to(where), g.to(where)) for x, g in self._records]
        self._rebuild_scheme(scheme_state)

    def _rebuild_scheme(self, scheme_state: dict | None) -> None:
        if self._scheme_spec is None:
            return
        spec, params = self._scheme_spec
        self._pending_scheme = scheme_state  # applied by attach_scheme (None: a fresh scheme)
        self.attach_scheme(spec, params)

    def _scheme_state(self) -> dict:
        return {"name": getattr(self.scheme, "name", ""), "state": self.scheme.state_dict()}

    # -- state ------------------------------------------------------------------------------------
    def get_extra_state(self) -> dict:
        scheme = self._scheme_state() if self.scheme is not None else self._pending_scheme
        array = self.array.state_dict()
        return _clone_to({
            "format": _STATE_FORMAT,
            "config": config_hash(self.config),
            "seed": self.seed,
            "array": {"kind": "pair" if isinstance(self.array, PairArray) else "float", **array},
            "scheme": scheme,
            "generator": {"device": self._where.type, "state": self.generator.get_state()},
        })

    def set_extra_state(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            raise ValueError("not a pair-layer state (or one from an incompatible version)")
        if state["config"] != config_hash(self.config):
            raise ValueError("the saved pair layer has another device, pair, sensing or max_pulses "
                             "configuration; build the layer with the same settings")
        saved = state["array"]
        pair = saved["kind"] == "pair"
        shape = tuple((saved["g"] if pair else saved["w"]).shape)
        expected = (self.row_count, 2, 1, self.out_features) if pair else (self.row_count, 1, self.out_features)
        if shape != expected:
            raise ValueError(f"saved array has shape {shape}, this layer needs {expected}")
        saved = _clone_to(saved, self._where)
        body = {k: v for k, v in saved.items() if k != "kind"}
        if pair:
            if not isinstance(self.array, PairArray):
                raise ValueError("the saved layer holds device pairs, this one floating-point weights")
            if state["seed"] != self.seed:  # another chip: redraw its devices from the saved seed
                self.seed = int(state["seed"])
                template = PairArray.create(torch.zeros(self.row_count, 1, self.out_features, dtype=torch.float64),
                                            self._draw_devices(self.seed), self.config.pair,
                                            self.config.scheme.max_pulses)
                self.array = PairArray(template.g.to(self._where), template.model.to(self._where),
                                       template.scale, template.max_pulses)
        elif isinstance(self.array, PairArray):
            self.array = FloatArray(body["w"])
        self.array.load_state_dict(body)
        gen = state["generator"]
        if gen["device"] == self._where.type:
            self.generator.set_state(gen["state"].cpu())
        else:  # a generator cannot change device: continue from a seed derived from the saved one
            self.generator.manual_seed(_seed_from(gen["state"]))
        self._records = []
        if self._scheme_spec is not None:
            # rebuilt so that it is bound to the (possibly new) array, then given the saved state
            self._rebuild_scheme(state["scheme"])
        else:
            self._pending_scheme = state["scheme"]

    def extra_repr(self) -> str:
        d = self.config.device
        name = d.preset or (d.table if d.model == "table" else d.model)
        scheme = getattr(self.scheme, "name", None) if self.scheme is not None else None
        return f"bias={self.use_bias}, device={name}, scheme={scheme}, seed={self.seed}"


class PairLinear(PairLayer):
    """``y = [x, 1] @ W`` with W (in_features + 1, out_features) stored in device pairs.

    Arguments as :class:`torch.nn.Linear`, plus: ``device`` (preset name, fitted ``.toml``,
    measured ``.csv``, :class:`~hnntrain.config.DeviceConfig` or mapping of device keys),
    ``pair`` and ``sensing`` (:class:`~hnntrain.config.PairConfig`,
    :class:`~hnntrain.config.SensingConfig` or mappings), ``max_pulses`` (pulse cap per device
    per update) and ``seed`` (None: drawn from torch's global generator, so ``torch.manual_seed``
    makes models reproducible and layers differ). Inputs (..., in_features); the first axis is
    the sample axis of the per-sample updates.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: DeviceSpec = "abrupt-ltd",
                 pair: PairConfig | Mapping[str, Any] = PairConfig(),
                 sensing: SensingConfig | Mapping[str, Any] = SensingConfig(),
                 max_pulses: int = 16, seed: int | None = None):
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
                 max_pulses: int = 16, seed: int | None = None):
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
