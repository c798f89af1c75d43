"""What a fused kernel declares about itself, and the callable the engine hands out for it.

Each kernel module lists, per scheme name, a :class:`Kernel`: the fused ``update``, the fused
``before_sample`` if there is one, and what they need beyond the generic conditions checked in
:func:`hnntrain.engine.kernels.updaters` (the scheme's own class, a device model the kernels
implement, float32 weights on the CPU). The engine then asks the declarations, not the scheme
names. :class:`Fused` binds a kernel function to its scheme; being one is what makes an
update (or before-sample) callable count as fused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


def always(scheme: Any) -> bool:
    """No condition beyond the generic ones."""
    return True


@dataclass(frozen=True)
class Kernel:
    """The fused engine's implementation of one scheme."""

    update: Callable[..., None]
    """``update(scheme, request, rows, key)``: the scheme's ``update``, same numbers."""
    before: Callable[..., None] | None = None
    """``before(scheme, samples, key)``: the scheme's ``before_sample``, same numbers (None:
    the scheme's own runs)."""
    inverts_nominal: bool = False
    """The update inverts the controller's nominal device model, which the kernels implement
    for exponential and linear models only (a measured nominal device keeps the reference)."""
    before_accepts: Callable[[Any], bool] = always
    """Whether ``before`` implements this scheme instance (e.g. no reset noise)."""


class Fused:
    """``function`` bound to ``scheme``: calling it with ``args`` runs ``function(scheme, *args)``."""

    __slots__ = ("function", "scheme")

    def __init__(self, function: Callable[..., None], scheme: Any):
        self.function = function
        self.scheme = scheme

    def __call__(self, *args) -> None:
        self.function(self.scheme, *args)

    def __repr__(self) -> str:
        return f"Fused({self.function.__name__}, {self.scheme.name})"
