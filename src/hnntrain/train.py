"""Training and evaluation loop: ensembles in lockstep, metrics, checkpoints, the result file.

One :class:`Trainer` owns every piece of run state (arrays, scheme states, generators, metric
accumulators, position in the epoch) so that :meth:`Trainer.state_dict` is a complete
checkpoint: a resumed run continues with the very numbers it would have produced unbroken.

Randomness: four generators derive from ``train.seed`` (weights, device-to-device draws, data
order, and per-update noise: pulse rounding, cycle-to-cycle and read noise). The first three
live on the CPU, so the same seed gives the same devices on any compute device.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from hnntrain.config import RunConfig
from hnntrain.devices import build_device, nominal_device
from hnntrain.metrics import UpdateNoise
from hnntrain.model import MLP
from hnntrain.pair import FloatArray, PairArray, init_weights
from hnntrain.schemes import SchemeContext, build_scheme, get_scheme
from hnntrain.sensing import Sensor

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"


class TrainingDiverged(RuntimeError):
    """Weights or loss became NaN or infinite."""


def config_hash(cfg: RunConfig) -> str:
    """Stable hash of the resolved config (runtime settings excluded: they do not change results)."""
    data = cfg.to_dict()
    data.pop("runtime", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def pick_threads(cfg: RunConfig) -> int:
    """Intra-op threads. Measured with benchmarks/throughput.py on 2 cores: at batch 1 one
    thread beats two at E = 1 (1,359 vs 396 samples/s with passive OpenMP waits) and at E = 32
    (2,422 vs 2,115 replica-samples/s): the ops are too small to split. Large batches use
    every core."""
    if cfg.runtime.threads:
        return cfg.runtime.threads
    work = cfg.train.batch_size * cfg.train.replicas
    return 1 if work < 512 else (os.cpu_count() or 1)


def derive_seeds(seed: int, count: int) -> list[int]:
    """``count`` independent 63-bit seeds from one run seed (numpy SeedSequence spawning)."""
    return [int(s.generate_state(1, dtype=np.uint64)[0] >> 1) for s in np.random.SeedSequence(seed).spawn(count)]


class Trainer:
    """Trains ``cfg.train.replicas`` replicas of one configuration in lockstep."""

    def __init__(self, cfg: RunConfig, train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor):
        self.cfg = cfg
        self.device = torch.device(cfg.runtime.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("runtime.device: CUDA was requested but torch sees no CUDA device; use --device cpu")
        scheme_cls = get_scheme(cfg.scheme.name)
        n_classes = int(max(int(train_y.max()), int(test_y.max())) + 1)
        sizes = [train_x.shape[1], *cfg.model.hidden, n_classes]
        self.mlp = MLP(sizes, cfg.model.activation, cfg.model.bias)
        self.train_x = self._with_bias(train_x[: cfg.train.samples]).to(self.device)
        self.train_y = train_y[: cfg.train.samples].to(self.device)
        self.test_x = self._with_bias(test_x[: cfg.train.test_samples]).to(self.device)
        self.test_y = test_y[: cfg.train.test_samples].to(self.device)

        init_seed, d2d_seed, data_seed, update_seed = derive_seeds(cfg.train.seed, 4)
        init_gen = torch.Generator().manual_seed(init_seed)
        d2d_gen = torch.Generator().manual_seed(d2d_seed)
        self.data_gen = torch.Generator().manual_seed(data_seed)
        self.update_gen = torch.Generator(device=self.device).manual_seed(update_seed)

        replicas = cfg.train.replicas
        nominal = nominal_device(cfg.device, device=self.device)
        self.ctx = SchemeContext(nominal=nominal, sensing=cfg.sensing,
                                 sensor=Sensor(cfg.sensing, float(nominal.g_min), float(nominal.g_max)),
                                 device=cfg.device, max_pulses=cfg.scheme.max_pulses)
        has_d2d = cfg.device.d2d_g > 0 or cfg.device.d2d_nl > 0
        self.arrays: list[Any] = []
        self.schemes = []
        for in_size, out_size in self.mlp.weight_shapes():
            weights = init_weights((in_size, replicas, out_size), in_size, cfg.pair, init_gen)
            if scheme_cls.uses_devices:
                shape = (in_size, 2, replicas, out_size) if has_d2d else ()
                model = build_device(cfg.device, shape, d2d_gen, device="cpu")
                array = PairArray.create(weights, model, cfg.pair, cfg.scheme.max_pulses)
                array = PairArray(array.g.to(self.device), model.to(self.device), array.scale, array.max_pulses)
            else:
                array = FloatArray(weights.float().to(self.device))
            self.arrays.append(array)
            self.schemes.append(build_scheme(cfg.scheme.name, dict(cfg.scheme.params), array, self.ctx))
        self.noise = [UpdateNoise(a.weight, cfg.train.un_window) for a in self.arrays]
        # Only columns with a non-zero input can be pulsed at batch 1 (a crossbar drives no
        # pulses on idle rows); selecting them saves most of the update work on sparse inputs.
        self.sparse_inputs = self.device.type == "cpu"

        self.epoch = 0
        self.position = 0
        self.order: Tensor | None = None
        self.updates = 0
        self.loss_sum = torch.zeros(replicas, dtype=torch.float64, device=self.device)
        self.loss_count = 0
        self.history: list[dict] = []
        self.un_trace: list[dict] = []
        self.evals: list[dict] = []
        """Test accuracy during training: samples seen, mean and per-replica accuracy."""
        """Update noise of every closed long window: samples seen, window-1 and window UN."""
        self.train_seconds = 0.0
        self.samples_done = 0
        self.busy = False
        """True while an update or an epoch close is half applied (no exact checkpoint then)."""
        self._counter_marks = self._counter_totals()

    # -- data -------------------------------------------------------------------------------
    def _with_bias(self, x: Tensor) -> Tensor:
        x = x.float()
        if not self.mlp.bias:
            return x
        return torch.cat((x, torch.ones(x.shape[0], 1)), dim=1)

    def _new_order(self) -> Tensor:
        n = self.train_x.shape[0]
        if self.cfg.train.shuffle:
            return torch.randperm(n, generator=self.data_gen)
        return torch.arange(n)

    # -- one update -------------------------------------------------------------------------
    def train_step(self, x: Tensor, y: Tensor) -> None:
        cols = None
        if self.sparse_inputs:
            active = (x != 0).any(0) if x.shape[0] > 1 else x[0] != 0
            cols = active.nonzero().squeeze(1)
            if cols.numel() > 0.6 * x.shape[1]:
                cols = None  # dense is cheaper than gather/scatter
        for scheme in self.schemes:
            scheme.before_sample(x.shape[0], self.update_gen)
        weights = [a.weight for a in self.arrays]
        step = self.mlp.step(weights, x, y, self.cfg.train.lr, cols)
        measure = self.updates % self.cfg.train.un_every == 0
        for layer, (array, scheme, noise, request) in enumerate(zip(self.arrays, self.schemes, self.noise, step.requests)):
            layer_cols = cols if layer == 0 else None
            before = None
            if measure:
                before = array.weight if layer_cols is None else array.weight.index_select(0, layer_cols)
                before = before.clone()
            noise.record_request(request, layer_cols)
            scheme.update(request, layer_cols, self.update_gen)
            if measure:
                after = array.weight if layer_cols is None else array.weight.index_select(0, layer_cols)
                noise.record_window1(after - before, request)
            noise.end_update(array.weight)
        self.loss_sum += step.loss
        self.loss_count += x.shape[0]
        self.updates += 1
        if self.noise[0].updates_in_window == 0:  # a long window just closed in every layer
            self._trace_window(pending=x.shape[0])

    def _trace_window(self, pending: int = 0) -> None:
        """Append the closed window's UN (mean over layers and replicas) to the trace."""
        window1 = torch.stack([n.last[0] for n in self.noise]).nanmean()
        window = torch.stack([n.last[1] for n in self.noise]).nanmean()
        self.un_trace.append({"samples": self.samples_done + pending,
                              "window1": float(window1), "window": float(window)})

    # -- evaluation -------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, chunk: int = 2000) -> Tensor:
        """Test accuracy per replica (fraction)."""
        weights = [a.weight for a in self.arrays]
        correct = torch.zeros(self.cfg.train.replicas, dtype=torch.float64, device=self.device)
        for start in range(0, self.test_x.shape[0], chunk):
            logits = self.mlp.logits(weights, self.test_x[start:start + chunk])
            correct += (logits.argmax(-1) == self.test_y[start:start + chunk]).sum(-1)
        return (correct / self.test_x.shape[0]).cpu()

    def _record_eval(self, accuracy: Tensor) -> None:
        self.evals.append({"samples": self.samples_done, "test_accuracy": float(accuracy.mean()),
                           "replicas": accuracy.tolist()})

    def _counter_totals(self) -> dict[str, float]:
        """Run totals, mean over replicas, summed over layers."""
        ltp = np.zeros(2)
        ltd = np.zeros(2)
        senses = refreshes = programs = 0.0
        for array in self.arrays:
            totals = array.counter.totals()
            ltp += np.mean(totals["ltp"], axis=1)
            ltd += np.mean(totals["ltd"], axis=1)
            programs += float(np.mean(np.sum(totals["programs"], axis=0)))
            senses += totals["senses"] / self.cfg.train.replicas
            refreshes += totals["refreshes"] / self.cfg.train.replicas
        return {"ltp_plus": ltp[0], "ltp_minus": ltp[1], "ltd_plus": ltd[0], "ltd_minus": ltd[1],
                "senses": senses, "refreshes": refreshes, "programs": programs}

    def _check_finite(self) -> None:
        bad = [i for i, a in enumerate(self.arrays) if not bool(torch.isfinite(a.weight).all())]
        if bad or not bool(torch.isfinite(self.loss_sum).all()):
            where = f"weights of layer {bad[0] + 1}" if bad else "the training loss"
            raise TrainingDiverged(
                f"{where} became NaN or infinite in epoch {self.epoch + 1} after {self.position} samples; "
                f"lower train.lr (now {self.cfg.train.lr}) or check the device parameters")

    def _close_epoch(self, seconds: float) -> dict:
        self._check_finite()
        accuracy = self.evaluate()
        self._record_eval(accuracy)
        layers = []
        closes = self.noise[0].updates_in_window > 0
        for noise, array in zip(self.noise, self.arrays):
            noise.close_window(array.weight)
            layers.append(noise.take())
        if closes:
            self._trace_window()
        totals = self._counter_totals()
        delta = {k: totals[k] - self._counter_marks[k] for k in totals}
        self._counter_marks = totals
        samples = max(self.loss_count, 1)
        pulses_total = delta["ltp_plus"] + delta["ltp_minus"] + delta["ltd_plus"] + delta["ltd_minus"]

        def mean_of(key: str) -> float:
            vals = [v for layer in layers for v in layer[key] if math.isfinite(v)]
            return float(np.mean(vals)) if vals else float("nan")

        record = {
            "epoch": self.epoch + 1,
            "test_accuracy": float(accuracy.mean()),
            "test_accuracy_replicas": accuracy.tolist(),
            "train_loss": float(self.loss_sum.sum()) / (samples * self.cfg.train.replicas),
            "update_noise": {
                "window1": mean_of("window1"),
                "window": mean_of("window"),
                "layers": [{k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in layer.items()}
                           for layer in layers],
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
        self.history.append(record)
        self.loss_sum.zero_()
        self.loss_count = 0
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
                        self._record_eval(self.evaluate())
                    self.busy = False
                    if steps % report_every == 0:
                        now = time.monotonic()
                        if progress is not None:
                            progress(self.epoch, self.position, n, float(self.loss_sum.mean()) / max(self.loss_count, 1))
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
            "updates": self.updates,
            "loss_sum": self.loss_sum,
            "loss_count": self.loss_count,
            "history": self.history,
            "un_trace": self.un_trace,
            "evals": self.evals,
            "train_seconds": self.train_seconds,
            "samples_done": self.samples_done,
            "counter_marks": self._counter_marks,
            "arrays": [a.state_dict() for a in self.arrays],
            "schemes": [s.state_dict() for s in self.schemes],
            "noise": [u.state_dict() for u in self.noise],
            "generators": {"data": self.data_gen.get_state(), "update": self.update_gen.get_state()},
        }

    def load_state_dict(self, state: dict) -> None:
        if state["config_hash"] != config_hash(self.cfg):
            raise ValueError("the checkpoint belongs to a different configuration; start a new --out "
                             "directory or run without --resume")
        for key in ("epoch", "position", "order", "updates", "loss_count", "history", "un_trace", "evals",
                    "train_seconds", "samples_done"):
            setattr(self, key, state[key])
        self._counter_marks = state["counter_marks"]
        self.loss_sum = state["loss_sum"].to(self.device)
        for array, s in zip(self.arrays, state["arrays"]):
            array.load_state_dict(s)
        for scheme, s in zip(self.schemes, state["schemes"]):
            scheme.load_state_dict(s)
        for noise, s in zip(self.noise, state["noise"]):
            noise.load_state_dict(s)
        self.data_gen.set_state(state["generators"]["data"])
        self.update_gen.set_state(state["generators"]["update"])

    def hardware(self) -> dict:
        hw = dict(self.schemes[0].hardware())
        hw.update({
            "adc_bits": self.cfg.sensing.adc_bits if hw.get("sensing") else None,
            "sense_every": self.cfg.sensing.every if hw.get("sensing") else None,
            "max_pulses": self.cfg.scheme.max_pulses,
            "devices_per_weight": 2 if self.schemes[0].uses_devices else 0,
        })
        return hw


# -- the run command --------------------------------------------------------------------------
def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_checkpoint(trainer: Trainer, out_dir: Path) -> None:
    tmp = out_dir / (CHECKPOINT + ".tmp")
    torch.save(trainer.state_dict(), tmp)
    os.replace(tmp, out_dir / CHECKPOINT)


def write_result(out_dir: Path, payload: dict) -> None:
    _atomic_write(out_dir / RESULT, (json.dumps(payload, indent=2, default=float) + "\n").encode())


def build_result(cfg: RunConfig, trainer: Trainer | None, status: str, error: str | None) -> dict:
    history = trainer.history if trainer else []
    final = history[-1] if history else None
    seconds = trainer.train_seconds if trainer else 0.0
    samples = trainer.samples_done if trainer else 0
    return {
        "status": status,
        "error": error,
        "config": cfg.to_dict(),
        "config_hash": config_hash(cfg),
        "test_accuracy": final["test_accuracy"] if final else None,
        "replicas": final["test_accuracy_replicas"] if final else [],
        "epochs": history,
        "un_trace": trainer.un_trace if trainer else [],
        "evals": trainer.evals if trainer else [],
        "hardware": trainer.hardware() if trainer else {},
        "samples_per_s": samples / seconds if seconds > 0 else None,
        "replica_samples_per_s": samples * cfg.train.replicas / seconds if seconds > 0 else None,
        "train_seconds": seconds,
        "torch_threads": torch.get_num_threads(),
        "torch_device": cfg.runtime.device,
    }


def load_datasets(cfg: RunConfig):
    """(train, test) datasets: any MNIST-layout IDX files in ``data.dir``, else MNIST from
    $HNNTRAIN_DATA, the cache, or a fetch (hash-checked)."""
    from hnntrain.data import ensure_mnist, load_idx_dir

    directory = Path(cfg.data.dir) if cfg.data.dir else None
    if directory is None or not any(directory.glob("train-images*")):
        directory = ensure_mnist(directory, quiet=True)
    return load_idx_dir(directory, "train"), load_idx_dir(directory, "test")


def run(cfg: RunConfig, out_dir: str | Path, resume: bool = False,
        progress: Callable[[int, int, int, float], None] | None = None,
        on_epoch: Callable[[dict], None] | None = None,
        datasets=None) -> dict:
    """Train ``cfg`` and write ``out_dir/result.json`` (always, also on failure).

    A NaN/inf stops the run with ``status: failed``. SIGINT/SIGTERM stop it between two
    updates and write a checkpoint there, so ``resume=True`` continues with exactly the numbers
    of an unbroken run. A second signal stops at once; the last periodic checkpoint (every
    ``runtime.checkpoint_seconds``) is then where a resume starts.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trainer: Trainer | None = None
    signals = []

    def on_signal(signum, frame):
        signals.append(signum)
        if len(signals) > 1 or trainer is None:  # a second signal, or nothing to save yet: stop now
            raise KeyboardInterrupt

    previous = {}
    if main_thread():
        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        train_ds, test_ds = datasets if datasets is not None else load_datasets(cfg)
        trainer = Trainer(cfg, train_ds.images, train_ds.labels, test_ds.images, test_ds.labels)
        ckpt = out / CHECKPOINT
        if resume and ckpt.exists():
            trainer.load_state_dict(torch.load(ckpt, map_location=trainer.device, weights_only=False))
        trainer.fit(progress=progress, checkpoint=lambda t: save_checkpoint(t, out), on_epoch=on_epoch,
                    should_stop=lambda: bool(signals))
        result = build_result(cfg, trainer, "ok", None)
    except TrainingDiverged as err:
        result = build_result(cfg, trainer, "failed", str(err))
    except KeyboardInterrupt:
        if trainer is not None and not trainer.busy:
            save_checkpoint(trainer, out)
            where = f"epoch {trainer.epoch + 1}, sample {trainer.position}; checkpoint saved"
        else:  # half an update applied: resuming from here would not be exact
            where = ("start-up" if trainer is None else "the middle of an update") + \
                    ("; the last periodic checkpoint is kept" if (out / CHECKPOINT).exists() else "")
        result = build_result(cfg, trainer, "failed", f"interrupted at {where}; continue with --resume --out {out}")
        write_result(out, result)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    write_result(out, result)
    return result


def main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()

