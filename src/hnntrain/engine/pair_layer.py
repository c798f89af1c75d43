"""The pair layer that :class:`~hnntrain.nn.PairLinear` and :class:`~hnntrain.nn.PairConv2d`
share: an ``nn.Module`` whose weights are a device-pair array (E = 1) built as the trainer builds
its arrays, a custom autograd matmul that records per-sample gradients, the attached scheme,
and a state that restores the very numbers (see :mod:`hnntrain.nn` for the semantics)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from hnntrain.engine.layer_spec import (
    DeviceSpec,
    SchemeSpec,
    layer_config,
    scheme_builder,
)
from hnntrain.engine.layer_update import apply_records, recorded_gradient
from hnntrain.engine.network import derive_seeds, program_array, scheme_context
from hnntrain.physics import rng
from hnntrain.physics.pair import FloatArray, PairArray, init_weights
from hnntrain.schemes import SchemeContext, UpdateScheme
from hnntrain.spec.config import PairConfig, SensingConfig, config_hash

_STATE_FORMAT = 2  # 2: counter-based update noise (an update count instead of a generator state)


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
    scheme, the random key, gradient records and state. Not used directly."""

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
        self.key = rng.Key.from_seed(update_seed, 1)
        """Update noise: pulse rounding, cycle-to-cycle and read noise (counter-based)."""
        self.updates = 0
        """Updates applied so far (the update index of the random stream)."""
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
        uses_devices, build = scheme_builder(scheme, params)
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
        return recorded_gradient(self._records).to(self.array.weight.dtype)

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
        The rule is :func:`hnntrain.engine.layer_update.apply_records`."""
        records, self._records = self._records, []
        if not records or not any(bool(g.any()) for _, g in records):
            return 0
        if self.scheme is None:
            raise RuntimeError("this pair layer has no update scheme; create a DeviceSGD for the model "
                               "or call attach_scheme()")
        self.scheme.ctx.lr = lr  # rates inside a scheme that scale with the learning rate follow it
        return apply_records(records, self.scheme, lr, per_sample, self._next_keys,
                             self.array.weight.dtype, self._where)

    def _next_keys(self) -> tuple[rng.Key, rng.Key]:
        """Keys of the next update's two calls (before_sample, update)."""
        step = self.key.fold(self.updates)
        self.updates += 1
        return step.fold(0, 0), step.fold(0, 1)

    # -- moving between torch devices -----------------------------------------------------------
    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        target = fn(torch.empty(0, device=self._where)).device
        if target != self._where:
            self._relocate(target)
        return self

    def _relocate(self, where: torch.device) -> None:
        """Move the array and the scheme (rebuilt, then its state loaded)."""
        scheme_state = None if self.scheme is None else self._scheme_state()
        old = self.array
        if isinstance(old, PairArray):
            self.array = PairArray(old.g.to(where), old.model.to(where), old.scale, old.max_pulses)
        else:
            self.array = FloatArray(old.w.to(where))
        self.array.counter.load_state_dict(old.counter.state_dict())
        self._where = where
        self.ctx = self._context(where)
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
            "updates": self.updates,
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
                _, d2d_seed, _, update_seed = derive_seeds(self.seed, 4)
                self.key = rng.Key.from_seed(update_seed, 1)  # the saved chip's update noise
                self.array = program_array(torch.zeros(self.row_count, 1, self.out_features, dtype=torch.float64),
                                           self.config.device, self.config.pair, self.config.scheme.max_pulses,
                                           torch.Generator().manual_seed(d2d_seed), self._where)
        elif isinstance(self.array, PairArray):
            self.array = FloatArray(body["w"])
        self.array.load_state_dict(body)
        self.updates = int(state["updates"])
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


