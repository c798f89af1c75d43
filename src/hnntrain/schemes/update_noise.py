"""The update-noise metric, per layer and for the whole network.

Update noise (UN, the figure of merit of the CRUS paper, arXiv 2111.07113; defined here) over a window of updates t = 1..T:

    UN = || sum_t dW_realized(t) - sum_t dW_SGD(t) ||^2 / || sum_t dW_SGD(t) ||^2

with dW_SGD what plain SGD asked for and dW_realized what the devices did. For one layer the
norms run over its weights; for the network the squared norms are summed over every weight of
every layer before the ratio is taken (so a 785 x 100 layer weighs as much as its weights, not
as much as a 101 x 10 one). Window 1 is the per-update noise (dominated by pulse quantization);
a long window exposes systematic error (drift, saturation, bias) that averages out of nothing.
Both are kept per replica.

dW_realized is everything the scheme wrote during the update, on every row of the layer: the
pulses for the request, and also refreshes, resets and Tiki-Taka transfers, which may land on
rows the request did not touch (their request there is zero, so all they write counts as error).
"""

from __future__ import annotations

import torch
from torch import Tensor


def squared_norms(realized: Tensor, requested: Tensor) -> tuple[Tensor, Tensor]:
    """Per replica (||realized - requested||^2, ||requested||^2) of (rows, E, out) tensors."""
    dims = (0, 2)
    return (realized - requested).square().sum(dims), requested.square().sum(dims)


def window1_norms(weight: Tensor, before: Tensor, request: Tensor, rows: Tensor | None) -> tuple[Tensor, Tensor]:
    """:func:`squared_norms` of one update, per replica, from the layer's weights after and
    ``before`` it (all rows) and its request (k, E, out) on ``rows`` (None: every row).

    Without a dense request tensor or a float64 copy of the layer: with d = W - W_before,

        ||d - q||^2 = sum over all rows of d^2 - sum over the request's rows of d^2
                      + sum over the request's rows of (d - q)^2

    (rows outside the request ask for nothing, so all they changed is error). d is exact in
    float32 wherever the two weights are within a factor 2 of each other (Sterbenz), i.e. for
    every small change; the sums are float64."""
    diff = weight.detach() - before
    dims = (0, 2)
    q = request.detach().double()
    if rows is None:
        return (diff.double() - q).square().sum(dims), q.square().sum(dims)
    picked = diff.index_select(0, rows).double()
    everywhere = torch.linalg.vector_norm(diff, dim=dims, dtype=torch.float64).square()
    err = everywhere - picked.square().sum(dims) + (picked - q).square().sum(dims)
    return err.clamp_(min=0.0), q.square().sum(dims)


def noise_ratio(realized: Tensor, requested: Tensor) -> tuple[Tensor, Tensor]:
    """Per replica ||realized - requested||^2 / ||requested||^2 for (in, E, out) tensors, and
    a mask of replicas whose request was non-zero (the ratio is undefined otherwise)."""
    return ratio_of(*squared_norms(realized, requested))


def ratio_of(err: Tensor, ask: Tensor) -> tuple[Tensor, Tensor]:
    """err / ask where ask > 0 (0 elsewhere), and the mask ask > 0."""
    valid = ask > 0
    return torch.where(valid, err / ask.clamp(min=1e-300), torch.zeros_like(ask)), valid


class MeanRatio:
    """Running per-replica mean of a ratio, over the updates where it is defined."""

    def __init__(self, replicas: int, device):
        self.sum = torch.zeros(replicas, dtype=torch.float64, device=device)
        self.count = torch.zeros(replicas, dtype=torch.float64, device=device)

    def add(self, ratio: Tensor, valid: Tensor) -> None:
        self.sum += ratio
        self.count += valid

    def take(self) -> Tensor:
        """The mean (NaN where nothing was measured), then reset."""
        mean = self.sum / self.count
        self.sum.zero_()
        self.count.zero_()
        return mean


class UpdateNoise:
    """Window-1 and long-window update noise of one layer, accumulated per replica."""

    def __init__(self, weight: Tensor, window: int):
        replicas = weight.shape[1]
        self.window = int(window)
        self.w_start = weight.detach().to(torch.float64, copy=True)
        self.requested = torch.zeros_like(self.w_start)
        self.updates_in_window = 0
        self.window1 = MeanRatio(replicas, weight.device)
        """Window-1 UN since the last :meth:`take`."""
        self.window1_in_window = MeanRatio(replicas, weight.device)
        """Window-1 UN within the current long window (for the trace)."""
        self.long = MeanRatio(replicas, weight.device)
        self.last: tuple[Tensor, Tensor] | None = None
        """(window-1 mean, long-window UN) per replica of the window closed last."""

    def record_request(self, requested: Tensor, rows: Tensor | None) -> None:
        """Add one update's SGD request (k, E, out) to the long-window sum."""
        if rows is None:
            self.requested += requested
        else:
            self.requested.index_add_(0, rows, requested.double())

    def record_window1(self, err: Tensor, ask: Tensor) -> None:
        """One update's squared norms (:func:`window1_norms`) into the window-1 means."""
        ratio, valid = ratio_of(err, ask)
        self.window1.add(ratio, valid)
        self.window1_in_window.add(ratio, valid)

    def end_update(self, weight: Tensor) -> tuple[Tensor, Tensor] | None:
        """Close the long window after ``window`` updates (the realized sum is W_now - W_start);
        returns the closed window's squared norms, if one closed."""
        self.updates_in_window += 1
        if self.updates_in_window >= self.window:
            return self.close_window(weight)
        return None

    def close_window(self, weight: Tensor) -> tuple[Tensor, Tensor] | None:
        if self.updates_in_window == 0:
            return None
        w_now = weight.detach().to(torch.float64, copy=True)  # becomes the next window's start
        err, ask = squared_norms(w_now - self.w_start, self.requested)
        ratio, valid = ratio_of(err, ask)
        self.long.add(ratio, valid)
        self.last = (self.window1_in_window.take(), torch.where(valid, ratio, torch.nan))
        self.w_start = w_now
        self.requested.zero_()
        self.updates_in_window = 0
        return err, ask

    def take(self) -> dict[str, list[float]]:
        """Per-replica means since the last call (NaN when nothing was measured), then reset."""
        return {"window1": self.window1.take().tolist(), "window": self.long.take().tolist()}

    def state_dict(self) -> dict:
        return dict(self.__dict__)

    def load_state_dict(self, state: dict) -> None:
        self.__dict__.update(state)


class NetworkUpdateNoise:
    """Update noise of every layer and of the whole network (squared norms summed over layers).

    Per update: :meth:`snapshot` before anything the update writes (sensing, refresh, pulses)
    when a window-1 sample is due, :meth:`record_request` per layer, then :meth:`end_update`."""

    def __init__(self, weights: list[Tensor], window: int):
        self.layers = [UpdateNoise(w, window) for w in weights]
        replicas, device = weights[0].shape[1], weights[0].device
        self.window1 = MeanRatio(replicas, device)
        self.window1_in_window = MeanRatio(replicas, device)
        self.long = MeanRatio(replicas, device)
        self.last: tuple[Tensor, Tensor] | None = None
        """Network (window-1 mean, long-window UN) per replica of the window closed last."""
        self.requests: list[tuple[Tensor, Tensor | None] | None] = [None] * len(weights)

    @property
    def updates_in_window(self) -> int:
        return self.layers[0].updates_in_window

    @staticmethod
    def snapshot(weights: list[Tensor]) -> list[Tensor]:
        """Every layer's weights, all rows, before an update (for a window-1 sample; a float32
        copy: :func:`window1_norms` takes differences in the weights' own precision)."""
        return [w.detach().clone() for w in weights]

    def record_request(self, layer: int, request: Tensor, rows: Tensor | None) -> None:
        self.layers[layer].record_request(request, rows)
        self.requests[layer] = (request, rows)

    def end_update(self, weights: list[Tensor], before: list[Tensor] | None) -> bool:
        """Close the update: a window-1 sample over everything written since ``before`` (None:
        no sample this update) and the long windows. True when a long window closed."""
        if before is not None:
            err_sum, ask_sum = 0.0, 0.0
            for noise, w, w0, (request, rows) in zip(self.layers, weights, before, self.requests):
                err, ask = window1_norms(w, w0, request, rows)
                noise.record_window1(err, ask)
                err_sum, ask_sum = err_sum + err, ask_sum + ask
            ratio, valid = ratio_of(err_sum, ask_sum)
            self.window1.add(ratio, valid)
            self.window1_in_window.add(ratio, valid)
        self.requests = [None] * len(self.layers)
        closed = [noise.end_update(w) for noise, w in zip(self.layers, weights)]
        if closed[0] is None:
            return False
        self._close(closed)
        return True

    def close_window(self, weights: list[Tensor]) -> bool:
        """Close a partial long window (at the end of an epoch); True when one was open."""
        closed = [noise.close_window(w) for noise, w in zip(self.layers, weights)]
        if closed[0] is None:
            return False
        self._close(closed)
        return True

    def _close(self, closed: list[tuple[Tensor, Tensor]]) -> None:
        ratio, valid = ratio_of(sum(err for err, _ in closed), sum(ask for _, ask in closed))
        self.long.add(ratio, valid)
        self.last = (self.window1_in_window.take(), torch.where(valid, ratio, torch.nan))

    def take(self) -> dict:
        """Network and per-layer means since the last call, per replica, then reset."""
        return {"window1": self.window1.take().tolist(), "window": self.long.take().tolist(),
                "layers": [noise.take() for noise in self.layers]}

    def state_dict(self) -> dict:
        return {"layers": [n.state_dict() for n in self.layers], "window1": self.window1.__dict__,
                "window1_in_window": self.window1_in_window.__dict__, "long": self.long.__dict__,
                "last": self.last}

    def load_state_dict(self, state: dict) -> None:
        for noise, s in zip(self.layers, state["layers"]):
            noise.load_state_dict(s)
        for key in ("window1", "window1_in_window", "long"):
            getattr(self, key).__dict__.update(state[key])
        self.last = state["last"]
