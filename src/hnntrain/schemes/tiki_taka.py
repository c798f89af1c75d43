"""``tiki_taka``: Tiki-Taka version 2, TTv2 (Gokmen, "Enabling training of neural networks on
noisy hardware", Front. Artif. Intell. 4:699148, 2021), with the optional chopper of c-TTv2
(Rasch et al., "Fast and robust analog in-memory deep neural network training", Nat. Commun.
15:7133, 2024). TTv1: Gokmen & Haensch, Front. Neurosci. 14:103, 2020.

Two device-pair arrays and a digital buffer per synapse:

    A (fast)   receives every gradient update times ``fast_lr``, open-loop push-pull (as ``sgd``),
               times the chopper sign c_i of its input row; starts with both devices at the nominal **symmetry
               point** g_sp (LTP step = LTD step);
    H (digital) every ``transfer_every`` updates, ``rows_per_transfer`` input rows i of A are read
               (through the ADC of ``[sensing]``), in turn, and

                   H[i] += transfer_lr * lr * c_i * A_read[i] / (2 dw_step)   (pulses of C)

               with ``lr`` the learning rate of the requests (``train.lr``): A's writes and the
               transfer both scale with it;
    C (slow)   the weights the network computes with: where |H| >= ``threshold``, C gets ONE
               push-pull pulse of sign(H) and the buffer forgets,

                   H <- buffer_keep * (H - sign(H))

               ``buffer_keep = 0`` resets H to zero (TTv2); 1 keeps exactly what one pulse did
               not carry.

Chopper (c-TTv2, ``chop_every > 0``): c_i flips after every ``chop_every``-th read of row i.
A's content is written and read with the same sign, while A's offset (the distance of its
symmetry point from the reference, an ADC boundary) reads with alternating sign and cancels in
H. On a symmetric device A never decays and, without a chopper, C integrates A again at every
visit; with a chopper an update's contribution to H stays bounded (it alternates), so a
chopper (or ``reset_rows``, which programs the read rows of A back to g_sp) is what a
symmetric device needs.

A reuses the device parameters (including device-to-device draws) of C's devices, as twin
devices of the same technology. Pulses and reads on A count in the same write counter as C's.
Hardware: one extra array, 16-bit H per synapse, row reads.
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
    """Updates between transfers (>= 1; default 1: a transfer after every update)."""
    fast_lr: float = 1.0
    """A's learning rate relative to ``train.lr``: A receives fast_lr x the SGD request (> 0,
    dimensionless; default 1.0). Above 1 A's content spans more ADC codes when read."""
    transfer_lr: float = 0.1
    """Transfer rate relative to the learning rate: H += transfer_lr * lr * A_read in pulses of
    C (> 0, dimensionless; default 0.1: at lr 0.1 one 4-bit code of A adds 0.09 (ideal) to 0.4
    (3000-level soft bounds) pulses to H, so a pulse needs several reads of the same sign)."""
    threshold: float = 1.0
    """|H| (push-pull pulses of C) at which C gets one pulse (> 0; default 1.0)."""
    buffer_keep: float = 0.0
    """Fraction of what is left in H after a pulse that the buffer keeps: H <- keep * (H -
    sign H), in [0, 1]; default 0: H reset to zero (TTv2)."""
    rows_per_transfer: int = 32
    """Input rows of A read (and written to C) per transfer, >= 1 (default 32). With one pulse
    per transfer this sets how fast C can move: a row gets at most one pulse per visit, every
    rows / rows_per_transfer transfers."""
    reset_rows: bool = False
    """After a transfer, program the read rows of A back to the symmetry point (A then holds
    only what arrived since its last read; default false)."""
    chop_every: int = 0
    """c-TTv2 chopper: reads of a row between flips of its sign (>= 0; default 0: no chopper)."""

    def check(self) -> None:
        if self.transfer_every < 1:
            raise ConfigError("scheme.transfer_every", "must be >= 1 update")
        if not self.fast_lr > 0:
            raise ConfigError("scheme.fast_lr", "must be > 0")
        if not self.transfer_lr > 0:
            raise ConfigError("scheme.transfer_lr", "must be > 0")
        if not self.threshold > 0:
            raise ConfigError("scheme.threshold", "must be > 0 pulses")
        if not 0 <= self.buffer_keep <= 1:
            raise ConfigError("scheme.buffer_keep", "must be in [0, 1]")
        if self.rows_per_transfer < 1:
            raise ConfigError("scheme.rows_per_transfer", "must be >= 1 row")
        if self.chop_every < 0:
            raise ConfigError("scheme.chop_every", "must be >= 0 reads (0: no chopper)")


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
        rows = array.g.shape[0]
        self.row_index = torch.arange(rows, device=array.g.device)  # kept, sliced per transfer
        self.chopper = torch.ones(rows, 1, 1, dtype=array.weight.dtype, device=array.g.device)
        """c_i, the chopper sign of each input row (all +1 without a chopper), (in, 1, 1)."""
        self.reads = torch.zeros(rows, dtype=torch.long, device=array.g.device)
        """Transfers (reads) of each input row so far: the chopper flips every ``chop_every``."""

    def hardware(self) -> dict:
        o = self.options
        chop = f", chopper every {o.chop_every} reads" if o.chop_every else ""
        return {"digital_bits_per_synapse": 16, "extra_arrays": 1, "sensing": True, "refresh": False,
                "note": f"fast array A at the symmetry point {self.g_sp:.3g} uS; {o.rows_per_transfer} row(s) "
                        f"to C per {o.transfer_every} update(s), one pulse each{chop}"}

    @property
    def transfer_gain(self) -> float:
        """H increment per unit of A_read, in push-pull pulses of C per weight unit."""
        return self.options.transfer_lr * self.ctx.lr * 0.5 / self.array.dw_step

    def fast_request(self, request: Tensor, rows: Tensor | None) -> Tensor:
        """What A is asked to change: fast_lr x request, times the chopper signs of ``rows``."""
        if self.options.fast_lr != 1.0:
            request = request * self.options.fast_lr
        if self.options.chop_every:
            request = request * (self.chopper if rows is None else self.chopper.index_select(0, rows))
        return request

    def update(self, request: Tensor, rows: Tensor | None, generator) -> None:
        request = self.fast_request(request, rows)
        n = stochastic_round(push_pull_count(request, self.fast.dw_step), generator, rows)
        self.fast.pulse(push_pull(n), rows, generator)
        self.updates += 1
        if self.updates % self.options.transfer_every == 0:
            self._transfer(generator)

    def transfer_rows(self) -> Tensor:
        """The input rows of the next transfer (in turn, wrapping around the last row)."""
        count = self.fast.g.shape[0]
        k = min(self.options.rows_per_transfer, count)
        if self.row + k <= count:
            return self.row_index[self.row:self.row + k]
        return torch.cat((self.row_index[self.row:], self.row_index[:self.row + k - count]))

    def _transfer(self, generator) -> None:
        row = self.transfer_rows()
        sensed = self.ctx.sensor.read_array(self.fast, generator, row)  # counted on the shared ledger
        a_read = (sensed[:, 0] - sensed[:, 1]) * self.fast.scale  # reference: both at g_sp -> 0
        if self.options.chop_every:
            a_read = a_read * self.chopper.index_select(0, row)
        h = self.accumulator.add(a_read * self.transfer_gain, row)
        fire = h.abs() >= self.options.threshold
        n = torch.where(fire, torch.sign(h), torch.zeros_like(h))
        self.accumulator.value.index_copy_(0, row, torch.where(fire, (h - n) * self.options.buffer_keep, h))
        self.array.pulse(push_pull(n), row, generator)
        self.after_transfer(row)

    def after_transfer(self, row: Tensor) -> None:
        """What follows the pulses on C: the read rows of A reset (``reset_rows``), the chopper
        flipped where due, the next row chosen."""
        if self.options.reset_rows:
            mask = torch.zeros_like(self.fast.g, dtype=torch.bool)
            mask[row] = True
            self.fast.set_conductance(torch.full_like(self.fast.g, self.g_sp), mask)  # counted as programs
        if self.options.chop_every:
            self.reads.index_add_(0, row, torch.ones_like(row))
            due = (self.reads.index_select(0, row) % self.options.chop_every) == 0
            flip = torch.where(due, -1.0, 1.0).to(self.chopper.dtype).view(-1, 1, 1)
            self.chopper.index_copy_(0, row, self.chopper.index_select(0, row) * flip)
        self.row = (self.row + row.numel()) % self.fast.g.shape[0]

    @property
    def buffer(self) -> Tensor:
        """H, push-pull pulses of C still owed, (in, E, out)."""
        return self.accumulator.value

    def state_dict(self) -> dict:
        return {"fast": self.fast.g, "buffer": self.accumulator.value, "updates": self.updates, "row": self.row,
                "chopper": self.chopper, "reads": self.reads}

    def load_state_dict(self, state: dict) -> None:
        self.fast.g = state["fast"].to(self.fast.g.device)
        self.fast.w = self.fast._weight(self.fast.g)
        self.accumulator.value = state["buffer"].to(self.accumulator.value.device)
        self.updates, self.row = state["updates"], state["row"]
        if "chopper" in state:
            self.chopper = state["chopper"].to(self.chopper.device)
            self.reads = state["reads"].to(self.reads.device)
