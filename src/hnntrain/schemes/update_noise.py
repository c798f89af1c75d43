"""The update-noise metric.

Update noise (UN, the figure of merit of the CRUS paper, arXiv 2111.07113; defined here) of a layer over a window of updates t = 1..T:

    UN = || sum_t dW_realized(t) - sum_t dW_SGD(t) ||^2 / || sum_t dW_SGD(t) ||^2

with dW_SGD what plain SGD asked for and dW_realized what the devices did. Window 1 is the
per-update noise (dominated by pulse quantization); a long window exposes systematic error
(drift, saturation, bias) that averages out of nothing. Both are kept per replica.
"""

from __future__ import annotations

import torch
from torch import Tensor


def noise_ratio(realized: Tensor, requested: Tensor) -> tuple[Tensor, Tensor]:
    """Per replica ||realized - requested||^2 / ||requested||^2 for (in, E, out) tensors, and
    a mask of replicas whose request was non-zero (the ratio is undefined otherwise)."""
    dims = (0, 2)
    ask = requested.square().sum(dims)
    err = (realized - requested).square().sum(dims)
    valid = ask > 0
    return torch.where(valid, err / ask.clamp(min=1e-300), torch.zeros_like(ask)), valid


class UpdateNoise:
    """Window-1 and long-window update noise of one layer, accumulated per replica."""

    def __init__(self, weight: Tensor, window: int):
        replicas = weight.shape[1]
        self.window = int(window)
        self.w_start = weight.detach().clone().double()
        self.requested = torch.zeros_like(self.w_start)
        self.updates_in_window = 0
        zeros = torch.zeros(replicas, dtype=torch.float64, device=weight.device)
        self.sum1, self.count1 = zeros.clone(), zeros.clone()
        self.sum_w, self.count_w = zeros.clone(), zeros.clone()
        self.window1_in_window = zeros.clone()
        self.window1_count_in_window = zeros.clone()
        self.last: tuple[Tensor, Tensor] | None = None
        """(window-1 mean, long-window UN) per replica of the window closed last."""

    def record_request(self, requested: Tensor, rows: Tensor | None) -> None:
        """Add one update's SGD request (k, E, out) to the long-window sum."""
        if rows is None:
            self.requested += requested
        else:
            self.requested.index_add_(0, rows, requested.double())

    def record_window1(self, realized: Tensor, requested: Tensor) -> None:
        ratio, valid = noise_ratio(realized.double(), requested.double())
        self.sum1 += ratio
        self.count1 += valid
        self.window1_in_window += ratio
        self.window1_count_in_window += valid

    def end_update(self, weight: Tensor) -> None:
        """Close the long window after ``window`` updates (the realized sum is W_now - W_start)."""
        self.updates_in_window += 1
        if self.updates_in_window >= self.window:
            self.close_window(weight)

    def close_window(self, weight: Tensor) -> None:
        if self.updates_in_window == 0:
            return
        w_now = weight.detach().double()
        ratio, valid = noise_ratio(w_now - self.w_start, self.requested)
        self.sum_w += ratio
        self.count_w += valid
        self.last = (self.window1_in_window / self.window1_count_in_window, torch.where(valid, ratio, torch.nan))
        self.window1_in_window.zero_()
        self.window1_count_in_window.zero_()
        self.w_start = w_now.clone()
        self.requested.zero_()
        self.updates_in_window = 0

    def take(self) -> dict[str, list[float]]:
        """Per-replica means since the last call (NaN when nothing was measured), then reset."""
        out = {
            "window1": (self.sum1 / self.count1).tolist(),
            "window": (self.sum_w / self.count_w).tolist(),
        }
        for t in (self.sum1, self.count1, self.sum_w, self.count_w):
            t.zero_()
        return out

    def state_dict(self) -> dict:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)
