"""``tiki_taka``: Tiki-Taka version 2 (Gokmen, Front. Artif. Intell. 2021; TTv1: Gokmen & Haensch,
Front. Neurosci. 14:103, 2020).

Two device-pair arrays and a digital buffer per synapse:

    A (fast)   receives every gradient update, open loop push-pull (as ``sgd``), and starts
               with both devices at the nominal **symmetry point** g_sp (LTP step = LTD step), so
               the device asymmetry pulls A back towards zero: A acts as a leaky accumulator;
    H (digital) every ``transfer_every`` updates one input row i of A is read with the ADC and
               H[i] += transfer_lr * A_read[i] / (2 dw_step)      (in push-pull pulses of C);
    C (slow)   the weights the network computes with (gamma = 0); where |H| >= threshold,
               n = trunc(H) push-pull pulses (at most the pulse cap) go to C and H -= n.

Rows are transferred in turn, ``rows_per_transfer`` at a time; with ``reset_rows`` the read
rows of A are programmed back to g_sp after each transfer. A reuses the device parameters (including device-to-device
draws) of C's devices, as twin devices of the same technology. Pulses and reads on A count in
the same write counter as C's. Hardware: one extra array, 16-bit H per synapse, row reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from hnntrain.physics.devices.base import DeviceModel
from hnntrain.physics.pair import PairArray
from hnntrain.schemes.base import UpdateScheme, register, stochastic_round
from hnntrain.schemes.common import DigitalAccumulator, push_pull, push_pull_count
from hnntrain.spec.config import ConfigError


@dataclass(frozen=True)
class TikiTakaOptions:
    transfer_every: int = 1
    """Updates between transfers of one input row of A to C (>= 1)."""
    transfer_lr: float = 0.5
    """beta: fraction of the read A added to H per transfer (> 0)."""
    threshold: float = 1.0
    """|H| (push-pull pulses) that triggers pulses on C (> 0)."""
    rows_per_transfer: int = 1
    """Input rows of A read (and written to C) per transfer, >= 1 (TTv2 may read several)."""
    reset_rows: bool = False
    """After a transfer, program the read rows of A back to the symmetry point (A then holds
    only what arrived since its last read; on a symmetric device A would otherwise never decay
    and C would integrate A again at every visit)."""

    def check(self) -> None:
        if self.transfer_every < 1:
            raise ConfigError("scheme.transfer_every", "must be >= 1 update")
        if self.transfer_lr <= 0:
            raise ConfigError("scheme.transfer_lr", "must be > 0")
        if self.threshold <= 0:
            raise ConfigError("scheme.threshold", "must be > 0 pulses")
        if self.rows_per_transfer < 1:
            raise ConfigError("scheme.rows_per_transfer", "must be >= 1 row")


def symmetry_point(nominal: DeviceModel, iterations: int = 60) -> float:
    """Conductance where one LTP pulse and one LTD pulse change G by the same amount
    (bisection; the LTP step shrinks and the LTD step grows with G). Mid-range for a linear
    device."""
    lo, hi = float(nominal.g_min), float(nominal.g_max)
    one = torch.ones((), dtype=torch.float64)

    def excess(g: float) -> float:
        gt = torch.tensor(g, dtype=torch.float64)
        return float((nominal.response(gt, one) - gt) - (gt - nominal.response(gt, -one)))

    if abs(excess(lo)) < 1e-12 and abs(excess(hi)) < 1e-12:
        return (lo + hi) / 2
    if excess(lo) <= 0:
        return lo
    if excess(hi) >= 0:
        return hi
    for _ in range(iterations):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if excess(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


@register
class TikiTaka(UpdateScheme):
    name = "tiki_taka"
    Options = TikiTakaOptions

    def __init__(self, options, array, ctx):
        super().__init__(options, array, ctx)
        self.g_sp = symmetry_point(ctx.nominal.to("cpu"))
        # at the nominal symmetry point, within each device's own bounds (device-to-device spread)
        fast = PairArray(array.model.clip(torch.full_like(array.g, self.g_sp)), array.model, array.scale,
                         array.max_pulses)
        fast.counter = array.counter  # one write-cost ledger for both arrays
        fast.extra = True  # its writes and reads are listed apart in the cost
        self.fast = fast
        self.accumulator = DigitalAccumulator(array.weight, array.max_pulses)
        """H, push-pull pulses of C, (in, E, out)."""
        self.updates = 0
        self.row = 0
        self.row_index = torch.arange(array.g.shape[0], device=array.g.device)  # kept, sliced per transfer

    def hardware(self) -> dict:
        return {"digital_bits_per_synapse": 16, "extra_arrays": 1, "sensing": True, "refresh": False,
                "note": f"fast array A at the symmetry point {self.g_sp:.3g} uS; transfer one row per "
                        f"{self.options.transfer_every} update(s)"}

    def update(self, request: Tensor, rows: Tensor | None, generator) -> None:
        n = stochastic_round(push_pull_count(request, self.fast.dw_step), generator, rows)
        self.fast.pulse(push_pull(n), rows, generator)
        self.updates += 1
        if self.updates % self.options.transfer_every == 0:
            self._transfer(generator)

    def _transfer(self, generator) -> None:
        count = self.fast.g.shape[0]
        k = min(self.options.rows_per_transfer, count)
        if self.row + k <= count:
            row = self.row_index[self.row:self.row + k]
        else:  # wrap around the last row
            row = torch.cat((self.row_index[self.row:], self.row_index[:self.row + k - count]))
        sensed = self.ctx.sensor.read_array(self.fast, generator, row)  # counted on the shared ledger
        a_read = (sensed[:, 0] - sensed[:, 1]) * self.fast.scale  # reference: both at g_sp -> 0
        h = self.accumulator.add(push_pull_count(a_read * self.options.transfer_lr, self.array.dw_step), row)
        n = self.accumulator.due(h, self.options.threshold)
        self.accumulator.settle(h, n, row)
        self.array.pulse(push_pull(n), row, generator)
        if self.options.reset_rows:
            mask = torch.zeros_like(self.fast.g, dtype=torch.bool)
            mask[row] = True
            self.fast.set_conductance(torch.full_like(self.fast.g, self.g_sp), mask)  # counted as programs
        self.row = (self.row + row.numel()) % count

    @property
    def buffer(self) -> Tensor:
        """H, push-pull pulses of C still owed, (in, E, out)."""
        return self.accumulator.value

    def state_dict(self) -> dict:
        return {"fast": self.fast.g, "buffer": self.accumulator.value, "updates": self.updates, "row": self.row}

    def load_state_dict(self, state: dict) -> None:
        self.fast.g = state["fast"].to(self.fast.g.device)
        self.fast.w = self.fast._weight(self.fast.g)
        self.accumulator.value = state["buffer"].to(self.accumulator.value.device)
        self.updates, self.row = state["updates"], state["row"]
