"""Throughput of on-chip training at batch 1 on the default 784-100-10 network (``make bench``).

Measures in one run, on the ``abrupt-ltd`` device with 2 % cycle-to-cycle noise:

* samples/s and replica-samples/s of fp, sgd, crus, mixed_precision and tiki_taka at
  E = 1, 8, 32, 128 replicas, with ``runtime.threads`` 1 and 2 (the fused kernels split replicas
  over them; torch keeps one thread at batch 1), each with ``runtime.engine = auto``
  (the fused numba engine where the scheme has a kernel, else the reference);
* the reference engine on the same configurations for every scheme but fp, at
  E = 1 and 32 (speed-up of the fused engine, taken inside this run);
* a plain PyTorch batch-1 loop (nn.Linear + autograd + torch.optim.SGD) on the same network,
  measured again right before every configuration, so that "x plain" compares neighbours in
  time (``replica-samples/s`` over the plain loop's samples/s);
* the update pass's effective bandwidth (24 bytes per requested synapse: G+ and G- read and
  written, weight written, request read) next to a plain tensor copy;
* first-call JIT time of the fused engine in a fresh process, with an empty numba cache (cold)
  and with the cache it left (cached).

Timings drift on a shared machine: compare ratios inside one run. Each configuration runs for
about ``--seconds`` after a warm-up. Writes ``--out`` (JSON) and prints a table.

    python benchmarks/throughput.py [--seconds 1.5] [--synthetic] [--out benchmarks/throughput.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from hnntrain.engine import kernels  # noqa: E402
from hnntrain.engine.train import Trainer, pick_kernel_threads, pick_threads  # noqa: E402
from hnntrain.io.resolve import build_config  # noqa: E402

BYTES_PER_SYNAPSE = 24
SCHEMES = ("fp", "sgd", "crus", "mixed_precision", "tiki_taka")
REPLICAS = (1, 8, 32, 128)


def copy_bandwidth(threads: int, megabytes: int = 256) -> float:
    """GB/s of ``dst.copy_(src)`` on a large float32 tensor (read + write counted)."""
    torch.set_num_threads(threads)
    src = torch.rand(megabytes * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.numel() * 4 / best / 1e9


def load_data(samples: int, synthetic: bool):
    if synthetic:
        gen = torch.Generator().manual_seed(0)
        images = (torch.rand(samples, 784, generator=gen) < 0.19).float() * torch.rand(samples, 784, generator=gen)
        labels = torch.randint(0, 10, (samples,), generator=gen)
        return images, labels
    from hnntrain.io.data import load_mnist

    train, _ = load_mnist(quiet=True)
    return train.images[:samples], train.labels[:samples]


def trainer_for(scheme: str, replicas: int, threads: int, engine: str, images, labels) -> Trainer:
    cfg = build_config({"scheme.name": scheme, "device.preset": "abrupt-ltd", "device.c2c": 0.02,
                        "train.replicas": replicas, "runtime.threads": threads, "runtime.engine": engine})
    return Trainer(cfg, images, labels, images[:10], labels[:10])


def measure(scheme: str, replicas: int, threads: int, engine: str, images, labels, seconds: float) -> dict:
    trainer = trainer_for(scheme, replicas, threads, engine, images, labels)
    torch.set_num_threads(pick_threads(trainer.cfg))  # what Trainer.fit sets for runtime.threads
    kernels.set_threads(pick_kernel_threads(trainer.cfg))
    update_time = [0.0]
    synapses = [0]

    def timed(update):
        def run(request, rows, key):
            start = time.perf_counter()
            update(request, rows, key)
            update_time[0] += time.perf_counter() - start
            synapses[0] += request.numel()
        return run

    trainer.layer_updates = [timed(u) for u in trainer.layer_updates]
    x, y = trainer.train_x, trainer.train_y
    n = x.shape[0]
    warmup = 0
    with torch.no_grad():
        start = time.perf_counter()  # warm-up: compiled kernels loaded, caches filled
        while warmup < 3 or (warmup < 30 and time.perf_counter() - start < 0.5):
            trainer.train_step(x[warmup:warmup + 1], y[warmup:warmup + 1])
            warmup += 1
        update_time[0], synapses[0] = 0.0, 0
        steps = 0
        start = time.perf_counter()
        while steps < 10 or (time.perf_counter() - start < seconds and warmup + steps < n):
            i = warmup + steps
            trainer.train_step(x[i:i + 1], y[i:i + 1])
            steps += 1
        elapsed = time.perf_counter() - start
    return {
        "scheme": scheme, "replicas": replicas, "threads": threads, "engine": trainer.engine,
        "fused_step": trainer.fused_step, "steps": steps,
        "samples_per_s": steps / elapsed,
        "replica_samples_per_s": steps * replicas / elapsed,
        "update_share": update_time[0] / elapsed,
        "update_gb_s": synapses[0] * BYTES_PER_SYNAPSE / update_time[0] / 1e9 if scheme != "fp" else None,
    }


def plain_pytorch(threads: int, images, labels, seconds: float, lr: float = 0.1) -> float:
    """Samples/s of nn.Linear + autograd + torch.optim.SGD at batch 1 on 784-100-10 (sigmoid)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 100), torch.nn.Sigmoid(), torch.nn.Linear(100, 10))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = images.float(), labels
    steps = 0
    start = time.perf_counter()
    while steps < 50 or time.perf_counter() - start < seconds:
        i = steps % x.shape[0]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        opt.step()
        steps += 1
    return steps / (time.perf_counter() - start)


def jit_probe() -> None:
    """Child process: seconds of the first fused steps beyond the steady-state cost (JIT)."""
    images, labels = load_data(200, synthetic=True)
    total = 0.0
    for scheme in ("sgd", "mixed_precision"):
        trainer = trainer_for(scheme, 1, 1, "fused", images, labels)
        x, y = trainer.train_x, trainer.train_y
        times = []
        with torch.no_grad():
            for i in range(4):
                start = time.perf_counter()
                trainer.train_step(x[i:i + 1], y[i:i + 1])
                times.append(time.perf_counter() - start)
        total += times[0] - min(times[1:])
    print(f"{total:.3f}")


def jit_times() -> dict:
    """First-call JIT seconds in fresh processes: with an empty numba cache, then with its cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        runs = [subprocess.run([sys.executable, __file__, "--jit-probe"], env=env, capture_output=True, text=True,
                               check=True).stdout.strip() for _ in range(2)]
    return {"cold_s": float(runs[0]), "cached_s": float(runs[1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="timed seconds per configuration")
    parser.add_argument("--synthetic", action="store_true", help="random sparse inputs instead of MNIST")
    parser.add_argument("--out", default="benchmarks/throughput.json", help="JSON file to write")
    parser.add_argument("--schemes", default=",".join(SCHEMES), help="comma-separated schemes")
    parser.add_argument("--replicas", default=",".join(map(str, REPLICAS)), help="comma-separated E values")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--jit-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.jit_probe:
        jit_probe()
        return
    schemes = args.schemes.split(",")
    replica_counts = [int(v) for v in args.replicas.split(",")]
    thread_counts = [int(v) for v in args.threads.split(",")]
    images, labels = load_data(20_000, args.synthetic)
    inputs = "synthetic" if args.synthetic else "MNIST"
    report: dict = {"torch": torch.__version__, "cpus": os.cpu_count(), "inputs": inputs,
                    "device": "abrupt-ltd, c2c 0.02", "network": "784-100-10, batch 1", "runs": [], "plain_pytorch": {},
                    "copy_gb_s": {}}
    report["jit"] = jit_times()
    header = (f"{'scheme':16} {'E':>4} {'thr':>3} {'engine':>9} {'samples/s':>10} {'replica-samples/s':>18} "
              f"{'update %':>9} {'update GB/s':>12} {'x plain':>8}")
    print(header)
    print("-" * len(header))
    for threads in thread_counts:
        plain = plain_pytorch(threads, images, labels, args.seconds)
        copy = copy_bandwidth(threads)
        report["plain_pytorch"][threads] = plain
        report["copy_gb_s"][threads] = copy
        print(f"{'plain pytorch':16} {1:>4} {threads:>3} {'':>9} {plain:>10,.0f} {plain:>18,.0f}")
        for scheme in schemes:
            for replicas in replica_counts:
                engines = ["auto"]
                if threads == thread_counts[0] and replicas in (1, 32) and scheme != "fp":
                    engines.append("reference")
                for engine in engines:
                    plain_now = plain_pytorch(threads, images, labels, args.seconds / 3)
                    res = measure(scheme, replicas, threads, engine, images, labels, args.seconds)
                    res["plain_samples_per_s"] = plain_now
                    res["vs_plain"] = res["replica_samples_per_s"] / plain_now
                    res["copy_gb_s"] = copy
                    report["runs"].append(res)
                    gb = res["update_gb_s"]
                    print(f"{scheme:16} {replicas:>4} {threads:>3} {res['engine']:>9} {res['samples_per_s']:>10,.0f} "
                          f"{res['replica_samples_per_s']:>18,.0f} {res['update_share'] * 100:>8.0f}% "
                          f"{gb if gb is not None else float('nan'):>12.2f} {res['vs_plain']:>8.2f}", flush=True)
    print(f"\nplain copy: {', '.join(f'{v:.1f} GB/s ({t} thr)' for t, v in report['copy_gb_s'].items())}; "
          f"JIT of the fused engine: {report['jit']['cold_s']:.2f} s cold, {report['jit']['cached_s']:.2f} s cached")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
