"""The fused engine: numba kernels that do one layer's update in one pass.

:func:`updaters` picks, per layer, the fused update of the scheme (its :class:`~.registry.Kernel`
in ``KERNELS`` of :mod:`hnntrain.engine.kernels.updates`, where it can run the scheme)
or the scheme's own reference ``update``, following
``runtime.engine`` (see :class:`~hnntrain.spec.config.RuntimeConfig`). The fused path runs on
the CPU; its numbers are the reference's to float rounding (tests/test_engine.py).
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

from hnntrain.engine.kernels.registry import Fused, Kernel
from hnntrain.physics import rng
from hnntrain.spec.config import ConfigError

Update = Callable[..., None]
ACTIVATIONS = ("sigmoid", "tanh", "relu")
"""Hidden activations of the fused forward and backward pass (:mod:`.network`)."""
_warned = False


def available() -> bool:
    """True where numba imports (the kernels' only extra dependency)."""
    return rng.numba is not None


def set_threads(threads: int) -> int:
    """Threads the kernels split replicas over (numba's, at most ``NUMBA_NUM_THREADS``); returns
    the number set. The numbers do not depend on it (:class:`~.devices.ReplicaParallel`)."""
    if not available():
        return 1
    threads = max(1, min(int(threads), rng.numba.config.NUMBA_NUM_THREADS))
    rng.numba.set_num_threads(threads)
    return threads


def _kernel_for(scheme) -> Kernel | None:
    """The scheme's :class:`~.registry.Kernel` where its update can run fused: a kernel that
    accepts this instance, the scheme's own class (a subclass may change the update), a
    device model the kernels implement, float32 weights on the CPU."""
    from hnntrain.engine.kernels.devices import supported
    from hnntrain.engine.kernels.refresh import nominal_arguments
    from hnntrain.engine.kernels.updates import KERNELS
    from hnntrain.schemes import SCHEMES

    kernel = KERNELS.get(scheme.name)
    if kernel is None or type(scheme) is not SCHEMES.get(scheme.name):
        return None
    if kernel.inverts_nominal and nominal_arguments(scheme.ctx.nominal) is None:
        return None
    array = scheme.array
    if array.uses_devices and not supported(array.model):
        return None
    weight = array.weight
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        return None
    return kernel


def _fused_for(scheme) -> Fused | None:
    kernel = _kernel_for(scheme)
    return None if kernel is None else Fused(kernel.update, scheme)


def _fused_before(scheme) -> Fused | None:
    kernel = _kernel_for(scheme)
    if kernel is None or kernel.before is None or not kernel.before_accepts(scheme):
        return None
    return Fused(kernel.before, scheme)


def is_fused(update: Update) -> bool:
    """True for an update (or before-sample) callable from the fused engine."""
    return isinstance(update, Fused)


def before_samplers(schemes: list, engine: str) -> list[Update]:
    """One ``before_sample(samples, key)`` callable per layer: fused sensing and refresh where a
    kernel exists (:mod:`.refresh`), else the scheme's own."""
    if engine == "reference" or not available():
        return [s.before_sample for s in schemes]
    return [_fused_before(s) or s.before_sample for s in schemes]


def updaters(schemes: list, engine: str) -> list[Update]:
    """One update callable (request, rows, key) per layer for ``runtime.engine = engine``."""
    global _warned
    if engine == "reference":
        return [s.update for s in schemes]
    if not available():
        if engine == "fused":
            raise ConfigError("runtime.engine", "the fused engine needs numba (pip install numba); "
                                                "use auto or reference")
        if not _warned:
            warnings.warn("numba is not installed: using the reference engine (pip install numba for the "
                          "fused one)", stacklevel=2)
            _warned = True
        return [s.update for s in schemes]
    chosen = []
    for scheme in schemes:
        fused = _fused_for(scheme)
        chosen.append(scheme.update if fused is None else fused)
    return chosen
