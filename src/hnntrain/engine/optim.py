"""``DeviceSGD``: SGD whose pair layers are updated by pulses, through an update scheme.

::

    model = nn.Sequential(PairConv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), PairLinear(4 * 6 * 6, 10))
    opt = DeviceSGD(model, scheme="crus", lr=0.05)
    for x, y in loader:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

For every :class:`~hnntrain.nn.PairLayer` in the model, :meth:`DeviceSGD.step` hands the
recorded gradient to the layer's scheme as SGD requests ``dW = -lr * grad`` (per sample by
default: one ``before_sample(1)`` + ``update`` per sample, rank 1 for a linear layer, as
on-chip hardware trains; with ``per_sample=False`` one update with the mini-batch gradient).
The scheme decides the pulses; the same scheme classes serve ``hnntrain run``. Every other
trainable parameter of the model (floating-point layers, norms) gets plain SGD,
``p -= float_lr * p.grad``.

The schemes and their states live in the layers (so ``model.state_dict()`` holds them);
``DeviceSGD.state_dict()`` holds only the learning rates, the mode and the step count.
``DeviceSGD`` is not a :class:`torch.optim.Optimizer` (the pair weights are not parameters), so
torch's LR schedulers do not apply: set ``opt.lr`` instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from hnntrain.engine.nn import PairLayer, SchemeSpec

__all__ = ["DeviceSGD"]


def _check_lr(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number (got {value!r})")
    return float(value)


class DeviceSGD:
    """Pulsed SGD for the pair layers of ``model``, plain SGD for its other parameters.

    ``scheme``: a registered scheme name (``"crus"``, ``"sgd"``, ``"tiki_taka"``, ``"fp"``, ...),
    an :class:`~hnntrain.schemes.UpdateScheme` subclass, or a factory ``f(array, ctx)``; one
    instance is built per pair layer (replacing any scheme it had). None keeps the schemes
    already attached with :meth:`PairLayer.attach_scheme` (every pair layer must have one).
    ``params``: the scheme's options (the ``scheme.<option>`` keys of a config file).
    ``lr``: learning rate of the requests (weight units per unit gradient).
    ``per_sample``: True (default) issues one update per sample, as on-chip hardware at batch 1;
    False one update per step with the summed (mini-batch) gradient.
    ``float_lr``: learning rate of the ordinary parameters (default ``lr``).
    """

    def __init__(self, model: nn.Module, scheme: SchemeSpec | None, lr: float, *,
                 params: Mapping[str, Any] | None = None, per_sample: bool = True, float_lr: float | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"DeviceSGD expects an nn.Module, got {type(model).__name__}")
        self.lr = _check_lr(lr, "lr")
        self.float_lr = None if float_lr is None else _check_lr(float_lr, "float_lr")
        self.per_sample = bool(per_sample)
        self.layers: list[tuple[str, PairLayer]] = [(name, m) for name, m in model.named_modules()
                                                    if isinstance(m, PairLayer)]
        """(qualified name, layer) of every pair layer, in module order."""
        self.float_params: list[nn.Parameter] = [p for p in model.parameters() if p.requires_grad]
        """The ordinary trainable parameters (plain SGD). Pair weights are never parameters."""
        if not self.layers and not self.float_params:
            raise ValueError("the model has neither pair layers nor trainable parameters")
        if scheme is not None:
            for _, layer in self.layers:
                layer.attach_scheme(scheme, params)
        elif params:
            raise ValueError("params are options of a scheme; give the scheme too")
        else:
            missing = [name for name, layer in self.layers if layer.scheme is None]
            if missing:
                raise ValueError(f"scheme=None but pair layer(s) {', '.join(missing)} have no scheme attached")
        self.steps = 0
        """Calls of :meth:`step`."""

    # -- the optimizer protocol ---------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of the ordinary parameters and the pair layers' records.
        (``model.zero_grad()`` alone does not reach the records; :meth:`step` consumes them.)"""
        for p in self.float_params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_()
                p.grad.zero_()
        for _, layer in self.layers:
            layer.discard_gradients()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Apply the gradients recorded since the last step (``closure``, if given, is called
        first with gradients enabled and its value returned, as in torch optimizers)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for _, layer in self.layers:
            layer.apply_update(self.lr, self.per_sample)
        float_lr = self.lr if self.float_lr is None else self.float_lr
        with torch.no_grad():
            for p in self.float_params:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-float_lr)
        self.steps += 1
        return loss

    # -- reporting ------------------------------------------------------------------------------
    def write_counts(self) -> dict[str, dict]:
        """Per pair layer: pulses per device and direction (``ltp``/``ltd`` as [G+, G-]),
        program events, device reads and refreshes since the layer was built."""
        out = {}
        for name, layer in self.layers:
            totals = layer.array.counter.totals()
            out[name] = {"ltp": [row[0] for row in totals["ltp"]], "ltd": [row[0] for row in totals["ltd"]],
                         "programs": [row[0] for row in totals["programs"]],
                         "senses": totals["senses"], "refreshes": totals["refreshes"]}
        return out

    def hardware(self) -> dict[str, dict]:
        """Per pair layer, what its scheme needs beyond the pair array (as ``hnntrain compare``)."""
        return {name: dict(layer.scheme.hardware()) for name, layer in self.layers if layer.scheme is not None}

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The optimizer's own settings and step count; scheme states are in ``model.state_dict()``."""
        return {"lr": self.lr, "float_lr": self.float_lr, "per_sample": self.per_sample, "steps": self.steps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.lr = _check_lr(state["lr"], "lr")
        self.float_lr = None if state["float_lr"] is None else _check_lr(state["float_lr"], "float_lr")
        self.per_sample = bool(state["per_sample"])
        self.steps = int(state["steps"])

    def __repr__(self) -> str:
        schemes = sorted({getattr(layer.scheme, "name", "?") for _, layer in self.layers})
        return (f"DeviceSGD(lr={self.lr}, per_sample={self.per_sample}, schemes={schemes}, "
                f"pair_layers={len(self.layers)}, float_params={len(self.float_params)})")
