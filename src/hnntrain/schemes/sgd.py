"""``sgd``: open-loop pulsed SGD on the pair, push-pull with stochastic rounding.

Pulse counts come from the nominal (linear-equivalent) step, regardless of the device state:

    n = stochastic_round(dW / (2 * dw_step)),   G+ gets +n pulses, G- gets -n pulses

(push-pull: a weight increase is LTP on G+ and LTD on G-, each worth half of it; dw_step is the
weight change of one nominal pulse on one device). Stochastic rounding makes the request
unbiased on a linear device. On a nonlinear device the realized change depends on where each
device sits on its curve: the failure mode the other schemes address.

Not NeuroSim's rule: NeuroSim (``neurosim``) pulses one device per weight and rounds to the
nearest pulse, so it loses every request under half a pulse; push-pull on both devices with
stochastic rounding is the stronger open-loop baseline.
"""

from __future__ import annotations

from torch import Tensor

from hnntrain.physics import rng
from hnntrain.schemes.base import UpdateScheme, register, stochastic_round
from hnntrain.schemes.common import push_pull, push_pull_count


@register
class OpenLoopSGD(UpdateScheme):
    name = "sgd"

    def update(self, request: Tensor, rows: Tensor | None, key: rng.Key) -> None:
        n = stochastic_round(push_pull_count(request, self.array.dw_step), key, rows)
        self.array.pulse(push_pull(n), rows, key)
