"""What a training run measures besides the weights: training loss, update noise per layer
(window 1 on every ``un_every``-th update, long windows of ``un_window`` updates), test
accuracy, write-cost counters, and the record of each epoch in ``result.json``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hnntrain.engine.network import Network
from hnntrain.schemes.update_noise import NetworkUpdateNoise


@torch.no_grad()
def evaluate(net: Network, test_x: Tensor, test_y: Tensor, replicas: int, chunk: int = 2000) -> Tensor:
    """Test accuracy per replica (fraction), on the CPU."""
    weights = net.weights()
    correct = torch.zeros(replicas, dtype=torch.float64, device=test_x.device)
    for start in range(0, test_x.shape[0], chunk):
        logits = net.mlp.logits(weights, test_x[start:start + chunk])
        correct += (logits.argmax(-1) == test_y[start:start + chunk]).sum(-1)
    return (correct / test_x.shape[0]).cpu()


def counter_totals(arrays: list[Any], replicas: int) -> dict[str, float]:
    """Write-cost totals of the run so far: mean over replicas, summed over layers."""
    ltp = np.zeros(2)
    ltd = np.zeros(2)
    senses = refreshes = programs = 0.0
    for array in arrays:
        totals = array.counter.totals()
        ltp += np.mean(totals["ltp"], axis=1)
        ltd += np.mean(totals["ltd"], axis=1)
        programs += float(np.mean(np.sum(totals["programs"], axis=0)))
        senses += totals["senses"] / replicas
        refreshes += totals["refreshes"] / replicas
    return {"ltp_plus": ltp[0], "ltp_minus": ltp[1], "ltd_plus": ltd[0], "ltd_minus": ltd[1],
            "senses": senses, "refreshes": refreshes, "programs": programs}


class TrainingMeasures:
    """Loss, update noise, accuracy trace and counters of one run; explicit state for checkpoints."""

    def __init__(self, net: Network, replicas: int, un_every: int, un_window: int, where: torch.device,
                 split: str = "test"):
        self.replicas = replicas
        self.split = split
        """Which images evaluations use, ``test`` or ``validation``: names the accuracy keys."""
        self.un_every = un_every
        self.update_noise = NetworkUpdateNoise(net.weights(), un_window)
        self.updates = 0
        self.loss_sum = torch.zeros(replicas, dtype=torch.float64, device=where)
        self.loss_count = 0
        self.un_trace: list[dict] = []
        """Update noise of every closed long window: samples seen, window-1 and window UN."""
        self.evals: list[dict] = []
        """Accuracy during training (on the ``split`` images): samples seen, mean and per replica."""
        self.counter_marks = counter_totals(net.arrays, replicas)

    # -- during an update ------------------------------------------------------------------
    def window1_due(self) -> bool:
        """Window-1 update noise is sampled on every ``un_every``-th update."""
        return self.updates % self.un_every == 0

    def before_step(self, net: Network) -> list[Tensor] | None:
        """Before anything an update writes (sensing, refresh, pulses): the weights a window-1
        sample compares against, when one is due."""
        return self.update_noise.snapshot(net.weights()) if self.window1_due() else None

    def record_request(self, layer: int, request: Tensor, rows: Tensor | None) -> None:
        self.update_noise.record_request(layer, request, rows)

    def end_step(self, net: Network, before: list[Tensor] | None, loss: Tensor, samples: int,
                 samples_done: int) -> None:
        """After every layer of one update: update noise, loss, update count, closed windows."""
        closed = self.update_noise.end_update(net.weights(), before)
        self.loss_sum += loss
        self.loss_count += samples
        self.updates += 1
        if closed:
            self.trace_window(samples_done + samples)

    def trace_window(self, samples: int) -> None:
        """Append the closed window's network UN (mean over replicas) to the trace."""
        window1, window = self.update_noise.last
        self.un_trace.append({"samples": samples, "window1": float(window1.nanmean()),
                              "window": float(window.nanmean())})

    def record_eval(self, accuracy: Tensor, samples: int) -> None:
        self.evals.append({"samples": samples, f"{self.split}_accuracy": float(accuracy.mean()),
                           "replicas": accuracy.tolist()})

    def mean_loss(self) -> float:
        return float(self.loss_sum.mean()) / max(self.loss_count, 1)

    # -- at the end of an epoch -------------------------------------------------------------
    def close_epoch(self, net: Network, accuracy: Tensor, epoch: int, samples_done: int, seconds: float) -> dict:
        """The epoch's record for ``result.json``; resets the loss and the counter marks."""
        self.record_eval(accuracy, samples_done)
        if self.update_noise.close_window(net.weights()):
            self.trace_window(samples_done)
        un = self.update_noise.take()
        totals = counter_totals(net.arrays, self.replicas)
        delta = {k: totals[k] - self.counter_marks[k] for k in totals}
        self.counter_marks = totals
        samples = max(self.loss_count, 1)
        pulses_total = delta["ltp_plus"] + delta["ltp_minus"] + delta["ltd_plus"] + delta["ltd_minus"]

        def mean_of(values: list[float]) -> float:
            vals = [v for v in values if math.isfinite(v)]
            return float(np.mean(vals)) if vals else float("nan")

        record = {
            "epoch": epoch,
            f"{self.split}_accuracy": float(accuracy.mean()),
            f"{self.split}_accuracy_replicas": accuracy.tolist(),
            "train_loss": float(self.loss_sum.sum()) / (samples * self.replicas),
            "update_noise": {  # the network's (squared norms summed over layers), mean over replicas
                "window1": mean_of(un["window1"]),
                "window": mean_of(un["window"]),
                "layers": [{k: mean_of(v) for k, v in layer.items()} for layer in un["layers"]],
            },
            "pulses": {
                "ltp_plus": delta["ltp_plus"], "ltd_plus": delta["ltd_plus"],
                "ltp_minus": delta["ltp_minus"], "ltd_minus": delta["ltd_minus"],
                "total": pulses_total, "per_sample": pulses_total / samples,
            },
            "senses": delta["senses"],
            "refreshes": delta["refreshes"],
            "programs": delta["programs"],
            "seconds": seconds,
        }
        self.loss_sum.zero_()
        self.loss_count = 0
        return record

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"updates": self.updates, "loss_sum": self.loss_sum, "loss_count": self.loss_count,
                "un_trace": self.un_trace, "evals": self.evals, "counter_marks": self.counter_marks,
                "noise": self.update_noise.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        for key in ("updates", "loss_count", "un_trace", "evals", "counter_marks"):
            setattr(self, key, state[key])
        self.loss_sum = state["loss_sum"].to(self.loss_sum.device)
        self.update_noise.load_state_dict(state["noise"])
