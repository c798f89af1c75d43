"""Time to re-price a results store of 100 runs (target: < 5 s), without training again.

Trains one tiny real run per scheme on synthetic data (so every counter the cost model reads is
real), stores them as 100 rows with distinct config hashes (the seed is varied in the stored
config; re-pricing reads the counters only, so the training behind a row does not change its
time), then times the two ways a user re-prices: ``hnntrain cost STORE --set ...`` as a
subprocess (Python start-up and imports included) and the library call it makes (open the
store, read the rows, price each under overridden prices, Pareto fronts).

    python benchmarks/reprice.py [--runs 100]
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hnntrain.engine.run import run  # noqa: E402
from hnntrain.experiments.pricing import cost_rows, same_hardware  # noqa: E402
from hnntrain.experiments.store import ResultStore  # noqa: E402
from hnntrain.io.data import Dataset  # noqa: E402
from hnntrain.io.resolve import build_config  # noqa: E402

SCHEMES = ("fp", "sgd", "unidirectional", "threshold", "manhattan", "mixed_precision", "tiki_taka",
           "nonlinearity_aware", "crus", "crus:accumulate=true")
OVERRIDES = {"cost.pulse_preset": "ecram", "cost.mvm_adc_bits": 6}


def synthetic(n: int, seed: int = 0, classes: int = 4, pixels: int = 36) -> Dataset:
    gen = np.random.default_rng(seed)
    prototypes = gen.random((classes, pixels)) < 0.3
    labels = gen.integers(0, classes, n)
    images = (prototypes[labels] ^ (gen.random((n, pixels)) < 0.05)).astype(np.float32)
    return Dataset(images=torch.from_numpy(images), labels=torch.from_numpy(labels.astype(np.int64)))


def build_store(path: Path, runs: int, work: Path) -> None:
    data = (synthetic(300, 1), synthetic(100, 2))
    results = []
    for spec in SCHEMES:
        name, _, option = spec.partition(":")
        values = {"scheme.name": name, "model.hidden": [16], "train.samples": 300, "device.preset": "abrupt-ltd",
                  "sensing.adc_bits": 4, "sensing.every": 30}
        if option:
            key, _, value = option.partition("=")
            values[f"scheme.{key}"] = value == "true"
        results.append(run(build_config(values), work / spec.replace(":", "-"), datasets=data))
    with ResultStore(path) as store:
        for i in range(runs):
            result = copy.deepcopy(results[i % len(results)])
            result["config"]["train"]["seed"] = i
            result["config_hash"] = f"{i:016x}"
            store.record(result, sweep="reprice-benchmark")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store_path = Path(tmp) / "store.sqlite"
        build_store(store_path, args.runs, Path(tmp))
        started = time.perf_counter()
        with ResultStore(store_path, create=False) as store:
            rows = cost_rows([(r.config_hash, r.result) for r in store.runs()], OVERRIDES, group=same_hardware)
        library = time.perf_counter() - started
        assert len(rows) == args.runs, len(rows)
        command = [sys.executable, "-m", "hnntrain.cli", "cost", str(store_path)]
        for key, value in OVERRIDES.items():
            command += ["--set", f"{key}={value}"]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        cli = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import hnntrain.cli"], check=True)
        startup = time.perf_counter() - started
    print(f"re-pricing {args.runs} stored runs ({len(SCHEMES)} schemes) under {OVERRIDES}:")
    print(f"  library (open store, read rows, price, Pareto): {library:.3f} s")
    print(f"  `hnntrain cost STORE --set ...` subprocess:    {cli:.3f} s "
          f"(of which Python start-up + imports: {startup:.3f} s)")
    print(f"  target < 5 s: {'met' if cli < 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
