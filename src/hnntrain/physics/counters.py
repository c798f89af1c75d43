"""Write-cost counters: pulses per device and direction, program events, senses, refreshes, and
the rows and synapses that writes and reads address (what :mod:`hnntrain.physics.cost` prices)."""

from __future__ import annotations

import torch
from torch import Tensor


class WriteCounter:
    """Pulses per device (G+, G-) and direction (LTP, LTD), program events, senses; per replica.

    Pulse tensors are (k, 2, E, out): device on axis 1, replica on axis 2.

    Pulses are accumulated as |n| and n sums so one update costs two reductions; LTP and LTD
    totals follow as (|n| + n)/2 and (|n| - n)/2.
    """

    def __init__(self, replicas: int, device: torch.device | str):
        self.abs_sum = torch.zeros(2, replicas, dtype=torch.float64, device=device)
        self.net_sum = torch.zeros(2, replicas, dtype=torch.float64, device=device)
        self.programs = torch.zeros(2, replicas, dtype=torch.float64, device=device)
        self.senses = 0
        """Device reads (each device counts once per read)."""
        self.refreshes = 0
        """Refresh events (scheme-defined: one per pair that is refreshed)."""
        # What the cost model prices besides pulse totals. Per chip (replica) unless "summed
        # over replicas" is said: a write or a read addresses the same rows in every replica.
        self.write_calls = 0
        """Write operations (one ``pulse`` call each; refresh rewrites excluded)."""
        self.rows_written = 0
        """Input rows those writes addressed."""
        self.synapses_written = 0
        """Synapses (rows x columns) those writes addressed: the digital state they touch."""
        self.extra_write_calls = self.extra_rows_written = self.extra_synapses_written = 0
        """The same for writes on a scheme's extra array (Tiki-Taka's A)."""
        self.rows_read = 0
        """Rows read by senses (extra array included)."""
        self.extra_senses = 0
        """Device reads on an extra array (a subset of ``senses``), summed over replicas."""
        self.extra_rows_read = 0
        self.refresh_calls = 0
        """Refresh rewrites (whole-array pulse operations after resets)."""
        self.refresh_ltp = 0.0
        """LTP pulses of refresh rewrites (included in the pulse totals), summed over replicas."""
        self.refresh_ltd = 0.0
        self.program_rows = 0.0
        """Rows holding at least one reset device, summed over resets and replicas."""

    def add_pulses(self, pulses: Tensor, refresh: bool = False, extra: bool = False) -> None:
        """Count a (k, 2, E, out) pulse tensor: totals, and as a refresh rewrite or a write."""
        self.abs_sum += pulses.abs().sum((0, 3))
        self.net_sum += pulses.sum((0, 3))
        if refresh:  # rare: a host sync per refresh is fine
            self.refresh_calls += 1
            self.refresh_ltp += float(pulses.clamp(min=0).sum())
            self.refresh_ltd += float(pulses.clamp(max=0).sum().neg())
        else:
            self.add_write(pulses.shape[0], pulses.shape[3], extra)

    def add_write(self, rows: int, columns: int, extra: bool = False) -> None:
        """One write operation addressing ``rows`` x ``columns`` synapses."""
        if extra:
            self.extra_write_calls += 1
            self.extra_rows_written += rows
            self.extra_synapses_written += rows * columns
        else:
            self.write_calls += 1
            self.rows_written += rows
            self.synapses_written += rows * columns

    def add_reads(self, devices: int, rows: int, extra: bool = False) -> None:
        """``devices`` device reads (all replicas) on ``rows`` rows."""
        self.senses += devices
        self.rows_read += rows
        if extra:
            self.extra_senses += devices
            self.extra_rows_read += rows

    def add_programs(self, mask: Tensor) -> None:
        both = mask.expand(mask.shape[0], 2, *mask.shape[2:])
        self.programs += both.sum((0, 3))
        self.program_rows += float(both.any(1).any(-1).sum())

    def totals(self) -> dict[str, list[list[float]] | int]:
        """``ltp``/``ltd``: [device][replica] pulse totals (device 0 = G+, 1 = G-)."""
        abs_sum, net_sum = self.abs_sum.cpu(), self.net_sum.cpu()
        return {
            "ltp": ((abs_sum + net_sum) / 2).tolist(),
            "ltd": ((abs_sum - net_sum) / 2).tolist(),
            "programs": self.programs.cpu().tolist(),
            "senses": self.senses,
            "refreshes": self.refreshes,
        }

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("abs_sum", "net_sum", "programs", "senses", "refreshes", *COST_COUNTS)}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value.to(self.abs_sum.device) if isinstance(value, Tensor) else value)


COST_COUNTS = ("write_calls", "rows_written", "synapses_written", "extra_write_calls", "extra_rows_written",
               "extra_synapses_written", "rows_read", "extra_senses", "extra_rows_read", "refresh_calls",
               "refresh_ltp", "refresh_ltd", "program_rows")
"""Scalar counters beyond the pulse totals (checkpointed; absent from checkpoints that predate them)."""

SUMMED_OVER_REPLICAS = ("extra_senses", "refresh_ltp", "refresh_ltd", "program_rows")


def run_counters(arrays: list, replicas: int) -> dict[str, float]:
    """Run totals for the cost model (``result.json``'s ``counters``): per chip, summed over
    layers. Pulses and program events are means over replicas; so are reads."""
    out = dict.fromkeys(("ltp", "ltd", "programs", "reads", *COST_COUNTS), 0.0)
    for array in arrays:
        c = array.counter
        abs_sum, net_sum = c.abs_sum.sum(0).mean(), c.net_sum.sum(0).mean()
        out["ltp"] += float((abs_sum + net_sum) / 2)
        out["ltd"] += float((abs_sum - net_sum) / 2)
        out["programs"] += float(c.programs.sum(0).mean())
        out["reads"] += c.senses / replicas
        for key in COST_COUNTS:
            out[key] += getattr(c, key) / (replicas if key in SUMMED_OVER_REPLICAS else 1)
    out["extra_reads"] = out.pop("extra_senses")
    return out
