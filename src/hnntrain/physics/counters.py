"""Write-cost counters: pulses per device and direction, program events, senses, refreshes."""

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

    def add_pulses(self, pulses: Tensor) -> None:
        self.abs_sum += pulses.abs().sum((0, 3))
        self.net_sum += pulses.sum((0, 3))

    def add_programs(self, mask: Tensor) -> None:
        self.programs += mask.expand(mask.shape[0], 2, *mask.shape[2:]).sum((0, 3))

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
        return {k: getattr(self, k) for k in ("abs_sum", "net_sum", "programs", "senses", "refreshes")}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value.to(self.abs_sum.device) if isinstance(value, Tensor) else value)
