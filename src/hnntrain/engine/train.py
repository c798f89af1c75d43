"""The training loop: epochs over the data, periodic evaluation, checkpoints, and the state
that makes a resumed run continue with exactly the numbers of an unbroken one.

One :class:`Trainer` owns every piece of run state: the network (:mod:`hnntrain.engine.network`),
the measures (:mod:`hnntrain.engine.measure`), the generators and the position in the epoch.
One update is :func:`hnntrain.engine.step.train_step`.

Randomness: four seeds derive from ``train.seed``: CPU generators for the initial weights, the
device-to-device draws and the data order (the same devices on any compute device), and the key
of the counter-based update noise (pulse rounding, cycle-to-cycle and read noise,
:mod:`hnntrain.physics.rng`), which needs no state beyond the update count.
"""

from __future__ import annotations

import os
import time
from typing import Callable

import torch
from torch import Tensor

from hnntrain.engine import kernels
from hnntrain.engine.measure import TrainingMeasures, evaluate
from hnntrain.engine.network import Network, derive_seeds
from hnntrain.engine.step import fused_train_step, train_step
from hnntrain.physics import rng
from hnntrain.spec.config import ConfigError, RunConfig, config_hash


class TrainingDiverged(RuntimeError):
    """Weights or loss became NaN or infinite."""


def pick_threads(cfg: RunConfig) -> int:
    """Intra-op threads. Measured with benchmarks/throughput.py on 2 cores: at batch 1 one
    thread beats two at E = 1 (1,359 vs 396 samples/s with passive OpenMP waits) and at E = 32
    (2,422 vs 2,115 replica-samples/s): the ops are too small to split. Large batches use
    every core (``runtime.threads`` when set)."""
    work = cfg.train.batch_size * cfg.train.replicas
    return 1 if work < 512 else (cfg.runtime.threads or os.cpu_count() or 1)


def pick_kernel_threads(cfg: RunConfig) -> int:
    """Threads the fused kernels split replicas over: ``runtime.threads`` when set, else every
    core from 8 replicas on (each thread then has whole replicas' pulses to apply) and one below.
    A sweep's workers run few replicas each and so stay on one thread."""
    if cfg.runtime.threads:
        return cfg.runtime.threads
    return (os.cpu_count() or 1) if cfg.train.replicas >= 8 else 1


class Trainer:
    """Trains ``cfg.train.replicas`` replicas of one configuration in lockstep."""

    def __init__(self, cfg: RunConfig, train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor):
        self.cfg = cfg
        self.device = torch.device(cfg.runtime.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("runtime.device", "CUDA was requested but torch sees no CUDA device; "
                                                "use --torch-device cpu")
        self.bias = cfg.model.bias
        held_out = cfg.train.validation
        self.split = "validation" if held_out else "test"
        """The images every evaluation uses: the held-out end of the training set, or the test set."""
        if held_out:  # the test arrays are not read at all (they may be None)
            if held_out >= train_x.shape[0]:
                raise ConfigError("train.validation", f"holds out {held_out} of the {train_x.shape[0]} training "
                                                      f"images; it must be smaller (e.g. {train_x.shape[0] // 6})")
            keep = train_x.shape[0] - held_out
            n_classes = int(train_y.max()) + 1
            train_x, train_y, eval_x, eval_y = train_x[:keep], train_y[:keep], train_x[keep:], train_y[keep:]
        else:
            n_classes = int(max(int(train_y.max()), int(test_y.max())) + 1)
            eval_x, eval_y = test_x[: cfg.train.test_samples], test_y[: cfg.train.test_samples]
        self.train_x = self._with_bias(train_x[: cfg.train.samples]).to(self.device)
        self.train_y = train_y[: cfg.train.samples].to(self.device)
        self.test_x = self._with_bias(eval_x).to(self.device)
        """Evaluation images (the test set, or the validation split: see ``split``)."""
        self.test_y = eval_y.to(self.device)

        init_seed, d2d_seed, data_seed, update_seed = derive_seeds(cfg.train.seed, 4)
        self.data_gen = torch.Generator().manual_seed(data_seed)
        self.update_key = rng.Key.from_seed(update_seed, cfg.train.replicas)
        sizes = [train_x.shape[1], *cfg.model.hidden, n_classes]
        self.net = Network(cfg, sizes, torch.Generator().manual_seed(init_seed),
                           torch.Generator().manual_seed(d2d_seed), self.device)
        self.measures = TrainingMeasures(self.net, cfg.train.replicas, cfg.train.un_every, cfg.train.un_window,
                                         self.device, self.split)
        self.layer_updates = kernels.updaters(self.net.schemes, cfg.runtime.engine)
        """Per layer, the update callable: a fused kernel or the scheme's reference update."""
        self.layer_befores = kernels.before_samplers(self.net.schemes, cfg.runtime.engine)
        """Per layer, the before-sample callable (fused sensing and refresh, or the scheme's own)."""
        self.engine = "fused" if any(kernels.is_fused(u) for u in self.layer_updates) else "reference"
        self.fused_step = (cfg.train.batch_size == 1 and all(kernels.is_fused(u) for u in self.layer_updates)
                           and cfg.model.activation in kernels.ACTIVATIONS)
        """Batch 1 with every layer fused: the forward and backward pass run in numba as well."""
        self.epoch = 0
        self.position = 0
        self.order: Tensor | None = None
        self.history: list[dict] = []
        self.train_seconds = 0.0
        self.samples_done = 0
        self.busy = False
        """True while an update or an epoch close is half applied (no exact checkpoint then)."""

    @property
    def arrays(self) -> list:
        return self.net.arrays

    @property
    def schemes(self) -> list:
        return self.net.schemes

    @property
    def un_trace(self) -> list[dict]:
        return self.measures.un_trace

    @property
    def evals(self) -> list[dict]:
        return self.measures.evals

    # -- data -------------------------------------------------------------------------------
    def _with_bias(self, x: Tensor) -> Tensor:
        x = x.float()
        if not self.bias:
            return x
        return torch.cat((x, torch.ones(x.shape[0], 1)), dim=1)

    def _new_order(self) -> Tensor:
        n = self.train_x.shape[0]
        if self.cfg.train.shuffle:
            return torch.randperm(n, generator=self.data_gen)
        return torch.arange(n)

    # -- one update, one evaluation ---------------------------------------------------------
    def train_step(self, x: Tensor, y: Tensor) -> None:
        if self.fused_step and x.shape[0] == 1:
            fused_train_step(self.net, self.measures, x, y, self.cfg.train.lr, self.update_key, self.samples_done,
                             self.layer_updates, self.layer_befores, self.cfg.model.activation)
        else:
            train_step(self.net, self.measures, x, y, self.cfg.train.lr, self.update_key, self.samples_done,
                       self.layer_updates, self.layer_befores)

    def evaluate(self) -> Tensor:
        """Accuracy per replica (fraction) on the evaluation images (test set or validation split)."""
        return evaluate(self.net, self.test_x, self.test_y, self.cfg.train.replicas)

    def _check_finite(self) -> None:
        bad = [i for i, a in enumerate(self.net.arrays) if not bool(torch.isfinite(a.weight).all())]
        if bad or not bool(torch.isfinite(self.measures.loss_sum).all()):
            where = f"weights of layer {bad[0] + 1}" if bad else "the training loss"
            raise TrainingDiverged(
                f"{where} became NaN or infinite in epoch {self.epoch + 1} after {self.position} samples; "
                f"lower train.lr (now {self.cfg.train.lr}) or check the device parameters")

    def _close_epoch(self, seconds: float) -> dict:
        self._check_finite()
        record = self.measures.close_epoch(self.net, self.evaluate(), self.epoch + 1, self.samples_done, seconds)
        self.history.append(record)
        return record

    # -- the loop ---------------------------------------------------------------------------
    def fit(self, progress: Callable[[int, int, int, float], None] | None = None,
            checkpoint: Callable[["Trainer"], None] | None = None,
            on_epoch: Callable[[dict], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> list[dict]:
        """Train until ``train.epochs``; resumes from wherever the state says.

        ``progress(epoch, done, total, loss)`` is called every few hundred samples,
        ``checkpoint(trainer)`` at least every ``runtime.checkpoint_seconds`` and after each
        epoch, ``on_epoch(record)`` after each evaluation. When ``should_stop()`` turns true the
        loop raises KeyboardInterrupt between two updates. ``self.busy`` is true while an update
        or an epoch close is half done: a checkpoint taken then would not resume exactly.
        """
        torch.set_num_threads(pick_threads(self.cfg))
        kernels.set_threads(pick_kernel_threads(self.cfg))
        batch = self.cfg.train.batch_size
        n = self.train_x.shape[0]
        last_checkpoint = time.monotonic()
        report_every = max(256 // batch, 1)
        while self.epoch < self.cfg.train.epochs:
            if self.order is None:
                self.order = self._new_order()
                self.position = 0
            started = time.monotonic()
            epoch_seconds_before = self.train_seconds
            steps = 0
            with torch.no_grad():
                while self.position < n:
                    if should_stop is not None and should_stop():
                        self.train_seconds = epoch_seconds_before + (time.monotonic() - started)
                        raise KeyboardInterrupt
                    self.busy = True
                    idx = self.order[self.position:self.position + batch].to(self.device)
                    self.train_step(self.train_x.index_select(0, idx), self.train_y.index_select(0, idx))
                    self.position += idx.numel()
                    self.samples_done += idx.numel()
                    steps += 1
                    every = self.cfg.train.eval_every
                    if every and self.samples_done % every < idx.numel() and self.position < n:
                        self.measures.record_eval(self.evaluate(), self.samples_done)
                    self.busy = False
                    if steps % report_every == 0:
                        now = time.monotonic()
                        if progress is not None:
                            progress(self.epoch, self.position, n, self.measures.mean_loss())
                        if steps % (report_every * 8) == 0:
                            self._check_finite()
                        if checkpoint is not None and now - last_checkpoint >= self.cfg.runtime.checkpoint_seconds:
                            self.train_seconds = epoch_seconds_before + (now - started)
                            checkpoint(self)
                            last_checkpoint = time.monotonic()
            self.busy = True
            self.train_seconds = epoch_seconds_before + (time.monotonic() - started)
            record = self._close_epoch(self.train_seconds - sum(h["seconds"] for h in self.history))
            self.epoch += 1
            self.order = None
            self.busy = False
            if progress is not None:
                progress(self.epoch - 1, n, n, record["train_loss"])
            if on_epoch is not None:
                on_epoch(record)
            if checkpoint is not None:
                checkpoint(self)
                last_checkpoint = time.monotonic()
        return self.history

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "config_hash": config_hash(self.cfg),
            "epoch": self.epoch,
            "position": self.position,
            "order": self.order,
            "history": self.history,
            "train_seconds": self.train_seconds,
            "samples_done": self.samples_done,
            "network": self.net.state_dict(),
            "measures": self.measures.state_dict(),
            "generators": {"data": self.data_gen.get_state()},
        }

    def load_state_dict(self, state: dict) -> None:
        if state["config_hash"] != config_hash(self.cfg):
            raise ValueError("the checkpoint belongs to a different configuration; start a new --out "
                             "directory or run without --resume")
        for key in ("epoch", "position", "order", "history", "train_seconds", "samples_done"):
            setattr(self, key, state[key])
        self.net.load_state_dict(state["network"])
        self.measures.load_state_dict(state["measures"])
        self.data_gen.set_state(state["generators"]["data"])
