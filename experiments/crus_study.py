"""CRUS experiments behind docs/crus.md: the ablation table and the issue's accuracy targets.

Each configuration trains 3 replicas in lockstep (``train.replicas = 3``: three independent
draws of initial weights, device-to-device variation and pulse noise from one run seed), so
"mean of 3 seeds" is the mean over replicas. Results go to OUT/<name>/result.json; a Markdown
table is printed and written to OUT/<study>.md, and the UN curves to OUT/<study>-un.png.

    python experiments/crus_study.py ablation --samples 20000 --out runs/crus-study
    python experiments/crus_study.py targets --epochs 1 --out runs/crus-study
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from hnntrain.engine.run import load_datasets, run
from hnntrain.experiments.figures import plot_update_noise
from hnntrain.io.resolve import build_config

BASE = {"device.preset": "abrupt-ltd", "sensing.adc_bits": 4, "sensing.every": 100, "device.c2c": 0.02,
        "train.replicas": 3}

ABLATION = [
    ("fp (reference)", {"scheme.name": "fp"}),
    ("sgd (open loop)", {"scheme.name": "sgd"}),
    ("CRUS", {"scheme.name": "crus"}),
    ("CRUS without reverse updates", {"scheme.name": "crus", "scheme.reverse": False}),
    ("CRUS without refresh", {"scheme.name": "crus", "scheme.refresh": False}),
    ("CRUS, hand thresholds (no optimization)", {"scheme.name": "crus", "scheme.optimize": False}),
    ("CRUS, no tracking between senses", {"scheme.name": "crus", "scheme.track": False}),
    ("CRUS, exact conductance (no ADC, K = 1)", {"scheme.name": "crus", "sensing.adc_bits": 0, "sensing.every": 1}),
    ("CRUS, K = 1", {"scheme.name": "crus", "sensing.every": 1}),
    ("CRUS, K = 1000", {"scheme.name": "crus", "sensing.every": 1000}),
    ("CRUS, b = 8", {"scheme.name": "crus", "sensing.adc_bits": 8}),
    ("CRUS, b = 3", {"scheme.name": "crus", "sensing.adc_bits": 3}),
    ("CRUS, b = 2", {"scheme.name": "crus", "sensing.adc_bits": 2}),
    ("CRUS, c2c = 0 %", {"scheme.name": "crus", "device.c2c": 0.0}),
    ("CRUS, c2c = 1 %", {"scheme.name": "crus", "device.c2c": 0.01}),
    ("CRUS, c2c = 5 %", {"scheme.name": "crus", "device.c2c": 0.05}),
    ("mixed precision (digital accumulator)", {"scheme.name": "mixed_precision"}),
    ("CRUS + digital accumulator (not in the paper)", {"scheme.name": "crus", "scheme.accumulate": True}),
]


def targets() -> list[tuple[str, dict]]:
    out = []
    for preset in ("abrupt-ltd", "abrupt-ltp", "nonlinear-both"):
        for scheme in ("sgd", "crus"):
            out.append((f"{scheme}, {preset}, 4-bit / 100", {"device.preset": preset, "scheme.name": scheme}))
        out.append((f"crus, {preset}, 3-bit / 1000", {"device.preset": preset, "scheme.name": "crus",
                                                      "sensing.adc_bits": 3, "sensing.every": 1000}))
    out.append(("fp (reference)", {"scheme.name": "fp"}))
    return out


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=["ablation", "targets"])
    parser.add_argument("--samples", type=int, default=None, help="training subset (default: all 60,000)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/crus-study"))
    parser.add_argument("--only", default=None, help="run only configurations whose name contains this")
    args = parser.parse_args()
    plan = ABLATION if args.study == "ablation" else targets()
    common = {**BASE, "train.epochs": args.epochs, "train.samples": args.samples}
    datasets = load_datasets(build_config(common))
    rows, results = [], {}
    for name, overrides in plan:
        if args.only and args.only not in name:
            continue
        out = args.out / args.study / slug(name)
        done = out / "result.json"
        if done.exists() and json.loads(done.read_text())["status"] == "ok":
            res = json.loads(done.read_text())  # finished earlier: the study resumes
        else:
            start = time.monotonic()
            res = run(build_config({**common, **overrides}), out, datasets=datasets)
            print(f"{name}: {time.monotonic() - start:.0f} s", flush=True)
        results[name] = res
        last = res["epochs"][-1]
        accs = [a * 100 for a in res["replicas"]]
        rows.append(f"| {name} | {statistics.mean(accs):.2f} ± {statistics.stdev(accs):.2f} | "
                    f"{last['update_noise']['window1']:.3g} | {last['update_noise']['window']:.3g} | "
                    f"{last['pulses']['per_sample']:.0f} | {last['refreshes'] / max(1, len(accs)):.0f} | "
                    f"{res['samples_per_s']:.0f} |")
    samples = args.samples or 60000
    header = (f"{args.study}: MNIST 784-100-10, batch 1, {args.epochs} epoch(s) of {samples} samples, test on 10k, "
              f"3 replicas; default device abrupt-ltd, 4-bit ADC, K = 100, c2c 2 %\n\n"
              "| configuration | test accuracy % (mean ± std) | UN window 1 | UN window 1000 | pulses/sample | "
              "refreshes per replica | samples/s |\n| --- | --- | --- | --- | --- | --- | --- |")
    table = header + "\n" + "\n".join(rows) + "\n"
    print(table)
    (args.out / f"{args.study}.md").write_text(table)
    plot_update_noise(results, args.out / f"{args.study}-un.png", title=f"update noise, {args.study}")


if __name__ == "__main__":
    main()
