#!/usr/bin/env bash
# The paper-scale check for the next time a GPU is lent (one H200: 15 minutes of device time in all, so this
# aims at ~8): the plan for that machine, then every method's gpu-profile training step against its bare
# backbone, its data pipeline and the projected hours. Writes everything under ${OUT:-gpu_check}/.
#
#   bash aulib/bench/gpu_check.sh            # from the repository root, on the GPU machine
#
# Budget (estimated): plan ~20 s; each method 20 steps + 5 warm-up at the real batch (~1-3 min for the five,
# dominated by model build and cuDNN autotune) plus 8 CPU samples of its loader; torch import and CUDA init ~30 s.
set -u
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
{ date -u; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null; nproc; } | tee "$OUT/device.txt"
timeout 120 python -m aulib plan --profile gpu 2>&1 | tee "$OUT/plan.txt"          # this machine: refuses what does not fit
timeout 400 python -m aulib.bench --profile gpu --steps 20 --warmup 5 --device cuda --keep-going \
    --out "$OUT" 2>&1 | tee "$OUT/bench.txt"
echo "done: $OUT/plan.txt $OUT/bench.txt $OUT/bench_paper_scale.csv"
