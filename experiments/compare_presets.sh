#!/usr/bin/env bash
# The comparison tables of docs/baselines.md: every scheme, 3 seeds, on the three nonlinear
# presets (4-bit ADC every 100 samples, c2c 2 %) and on the ideal device (no c2c).
set -euo pipefail
OUT=${OUT:-runs/compare-presets}
SAMPLES=${SAMPLES:-20000}
for preset in ideal abrupt-ltd abrupt-ltp nonlinear-both; do
  c2c=0.02; [ "$preset" = ideal ] && c2c=0
  hnntrain compare --device "$preset" --seeds 3 --samples "$SAMPLES" --c2c "$c2c" --out "$OUT/$preset"
done
