"""The ``run`` command: train one configuration into an output folder, with checkpoints,
signals, and the result file that every other tool reads.

``OUT/result.json`` is written also when a run fails; ``OUT/checkpoint.pt`` at least every
``runtime.checkpoint_seconds``, after each epoch, and on Ctrl-C/SIGTERM between two updates.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Callable

import torch

from hnntrain.engine.train import Trainer, TrainingDiverged
from hnntrain.io.data import ensure_mnist, load_idx_dir
from hnntrain.physics.cost import price_result
from hnntrain.physics.counters import run_counters
from hnntrain.spec.config import NUMERICS_VERSION, RunConfig, config_hash

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_checkpoint(trainer: Trainer, out_dir: Path) -> None:
    """The trainer's state plus the resolved config, so ``--resume`` needs no other input."""
    tmp = out_dir / (CHECKPOINT + ".tmp")
    torch.save({**trainer.state_dict(), "config": trainer.cfg.to_dict()}, tmp)
    os.replace(tmp, out_dir / CHECKPOINT)


def checkpoint_config(out_dir: str | Path) -> dict | None:
    """The resolved config (nested tables) an interrupted run in ``out_dir`` was started with:
    from its checkpoint, else from its result.json; None when neither says."""
    out = Path(out_dir)
    if (out / CHECKPOINT).is_file():
        state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=False)
        if isinstance(state, dict) and "config" in state:
            return state["config"]
    try:
        return json.loads((out / RESULT).read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_result(out_dir: Path, payload: dict) -> None:
    _atomic_write(out_dir / RESULT, (json.dumps(payload, indent=2, default=float) + "\n").encode())


def build_result(cfg: RunConfig, trainer: Trainer | None, status: str, error: str | None) -> dict:
    history = trainer.history if trainer else []
    final = history[-1] if history else None
    seconds = trainer.train_seconds if trainer else 0.0
    samples = trainer.samples_done if trainer else 0
    split = "validation" if cfg.train.validation else "test"  # which images the accuracies are on
    extra = {"validation_accuracy": final["validation_accuracy"] if final else None} if cfg.train.validation else {}
    result = {
        "status": status,
        "error": error,
        "config": cfg.to_dict(),
        "config_hash": config_hash(cfg),
        "test_accuracy": final.get("test_accuracy") if final else None,
        **extra,
        "evaluated_on": split,
        "replicas": final[f"{split}_accuracy_replicas"] if final else [],
        "epochs": history,
        "un_trace": trainer.un_trace if trainer else [],
        "evals": trainer.evals if trainer else [],
        "hardware": trainer.net.hardware(cfg) if trainer else {},
        "classes": int(max(int(trainer.train_y.max()), int(trainer.test_y.max()))) + 1 if trainer else None,
        "samples_per_s": samples / seconds if seconds > 0 else None,
        "replica_samples_per_s": samples * cfg.train.replicas / seconds if seconds > 0 else None,
        "train_seconds": seconds,
        "torch_threads": torch.get_num_threads(),
        "torch_device": cfg.runtime.device,
        "engine": trainer.engine if trainer else None,
        "numerics_version": NUMERICS_VERSION,
        "samples": samples,
        "counters": run_counters(trainer.net.arrays, cfg.train.replicas) if trainer else {},
    }
    if trainer is not None:  # priced from the stored fields alone, so `hnntrain cost` re-prices identically
        result["cost"] = price_result(result, cfg.cost)
    return result


def load_datasets(cfg: RunConfig):
    """(train, test) datasets: the MNIST-layout IDX files in ``data.dir`` when it is set (a
    missing folder or file is an error: a mistyped path must not quietly become MNIST), else
    MNIST from $HNNTRAIN_DATA or the cache, fetched there on first use (the fetch says so on
    stderr; every file hash-checked)."""
    directory = Path(cfg.data.dir) if cfg.data.dir else ensure_mnist(None)
    return load_idx_dir(directory, "train"), load_idx_dir(directory, "test")


def run(cfg: RunConfig, out_dir: str | Path, resume: bool = False,
        progress: Callable[[int, int, int, float], None] | None = None,
        on_epoch: Callable[[dict], None] | None = None,
        datasets=None, stop: Callable[[], bool] | None = None, keep_checkpoint: bool = False) -> dict:
    """Train ``cfg`` and write ``out_dir/result.json`` (always, also on failure).

    A NaN/inf stops the run with ``status: failed``. SIGINT/SIGTERM stop it between two
    updates and write a checkpoint there, so ``resume=True`` continues with exactly the numbers
    of an unbroken run. A second signal stops at once; the last periodic checkpoint (every
    ``runtime.checkpoint_seconds``) is then where a resume starts.

    ``stop``: an external stop request (a sweep worker's own signal flag); with it, ``run``
    installs no signal handlers. A finished run deletes its checkpoint unless ``keep_checkpoint``.
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
    if stop is None and main_thread():
        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        train_ds, test_ds = datasets if datasets is not None else load_datasets(cfg)
        trainer = Trainer(cfg, train_ds.images, train_ds.labels, test_ds.images, test_ds.labels)
        ckpt = out / CHECKPOINT
        if resume and ckpt.exists():
            trainer.load_state_dict(torch.load(ckpt, map_location=trainer.device, weights_only=False))
        trainer.fit(progress=progress, checkpoint=lambda t: save_checkpoint(t, out), on_epoch=on_epoch,
                    should_stop=stop or (lambda: bool(signals)))
        result = build_result(cfg, trainer, "ok", None)
        if not keep_checkpoint:
            ckpt.unlink(missing_ok=True)  # result.json is the record now
    except TrainingDiverged as err:
        result = build_result(cfg, trainer, "failed", str(err))
    except KeyboardInterrupt:
        if trainer is not None and not trainer.busy:
            save_checkpoint(trainer, out)
            where = f"epoch {trainer.epoch + 1}, sample {trainer.position}; checkpoint saved"
        else:  # half an update applied: resuming from here would not be exact
            where = ("start-up" if trainer is None else "the middle of an update") + \
                    ("; the last periodic checkpoint is kept" if (out / CHECKPOINT).exists() else "")
        result = build_result(cfg, trainer, "failed", f"interrupted at {where}; continue with --resume "
                                                        f"--out {out} (a sweep or comparison: run it again)")
        write_result(out, result)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    write_result(out, result)
    return result


def main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()

