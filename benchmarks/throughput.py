"""Throughput of on-chip training at batch 1 on the default 784-100-10 network.

Prints, for the ``fp`` and ``sgd`` schemes on the ``abrupt-ltd`` device, with E = 1 and E = 32
replicas and 1 or 2 torch threads: samples/s, replica-samples/s, the share of time spent in
the update pass, and the update pass's achieved memory bandwidth next to a plain tensor copy
measured in the same run. Uses real MNIST (fetched if needed) because the input sparsity sets
how many synapses a sample touches; ``--synthetic`` avoids the fetch.

    python benchmarks/throughput.py [--samples 3000] [--synthetic]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from hnntrain.engine.train import Trainer  # noqa: E402
from hnntrain.io.resolve import build_config  # noqa: E402

BYTES_PER_SYNAPSE = 24  # G+ and G- read and written (16 B), weight written (4 B), request read (4 B)


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


def measure(scheme: str, replicas: int, threads: int, images, labels, warmup: int = 300) -> dict:
    cfg = build_config({"scheme.name": scheme, "device.preset": "abrupt-ltd", "train.replicas": replicas,
                        "runtime.threads": threads})
    trainer = Trainer(cfg, images, labels, images[:10], labels[:10])
    torch.set_num_threads(threads)
    update_time = [0.0]
    synapses = [0]
    for updater in trainer.schemes:
        inner = updater.update

        def timed(request, rows, gen, _inner=inner):
            start = time.perf_counter()
            _inner(request, rows, gen)
            update_time[0] += time.perf_counter() - start
            synapses[0] += request.numel()

        updater.update = timed
    x = trainer.train_x
    y = trainer.train_y
    with torch.no_grad():
        for i in range(warmup):
            trainer.train_step(x[i:i + 1], y[i:i + 1])
        update_time[0] = 0.0
        synapses[0] = 0
        start = time.perf_counter()
        n = x.shape[0]
        for i in range(n):
            trainer.train_step(x[i:i + 1], y[i:i + 1])
        elapsed = time.perf_counter() - start
    return {
        "samples_per_s": n / elapsed,
        "replica_samples_per_s": n * replicas / elapsed,
        "update_share": update_time[0] / elapsed,
        "update_gb_s": synapses[0] * BYTES_PER_SYNAPSE / update_time[0] / 1e9 if scheme != "fp" else None,
        "synapses_per_update": synapses[0] / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000, help="timed training samples per configuration")
    parser.add_argument("--synthetic", action="store_true", help="random sparse inputs instead of MNIST")
    parser.add_argument("--one", nargs=3, metavar=("SCHEME", "E", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    images, labels = load_data(args.samples + 300, args.synthetic)
    if args.one:  # child process mode: one line, used to compare OpenMP wait policies
        res = measure(args.one[0], int(args.one[1]), int(args.one[2]), images, labels)
        print(f"{res['samples_per_s']:.0f}")
        return
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"{'synthetic' if args.synthetic else 'MNIST'} inputs, batch 1, 784-100-10, device abrupt-ltd")
    header = f"{'scheme':6} {'E':>3} {'thr':>3} {'samples/s':>10} {'replica-samples/s':>18} {'update %':>9} " \
             f"{'update GB/s':>12} {'copy GB/s':>10} {'update/copy':>12}"
    print(header)
    print("-" * len(header))
    for threads in (1, 2):
        copy_gb = copy_bandwidth(threads)
        for scheme in ("fp", "sgd"):
            for replicas in (1, 32):
                res = measure(scheme, replicas, threads, images, labels)
                upd = res["update_gb_s"]
                print(f"{scheme:6} {replicas:>3} {threads:>3} {res['samples_per_s']:>10,.0f} "
                      f"{res['replica_samples_per_s']:>18,.0f} {res['update_share'] * 100:>8.0f}% "
                      f"{upd if upd is not None else float('nan'):>12.2f} {copy_gb:>10.2f} "
                      f"{(upd / copy_gb) if upd is not None else float('nan'):>12.3f}", flush=True)
    # The same sgd/E=1 measurement with OpenMP's default spin-waiting, in a fresh process.
    env = dict(os.environ, OMP_WAIT_POLICY="ACTIVE")
    cmd = [sys.executable, __file__, "--samples", str(args.samples), "--one", "sgd", "1", "2"]
    if args.synthetic:
        cmd.append("--synthetic")
    active = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout.strip()
    print(f"\nsgd, E=1, 2 threads with OMP_WAIT_POLICY=ACTIVE (spin-wait): {active} samples/s")


if __name__ == "__main__":
    main()
