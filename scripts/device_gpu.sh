#!/usr/bin/env bash
# One lent GPU session, prepared in advance (device time is scarce: 15 minutes a session).
# Runs, in order: the benchmark on CUDA (dp-bench bench), then the few-shot grid
# experiments/grids/paper_fewshot_gpu.yaml in 8 parallel shards on the same GPU, and packs
# the records into $OUT. Everything it runs is a committed dp-bench command.
#
# Needs, carried as the ignored folder .device/ (see scripts/prepare_device.sh):
#   .device/whl/                    jsonargparse, docstring-parser, typeshed-client wheels
#   .device/all-MiniLM-L6-v2-fp16/  the default backbone saved in half precision
#   .device/superglue/              train/val jsonl and FewGLUE sets (no test files)
set -u
GRID_SECONDS=${GRID_SECONDS:-330}
SHARDS=${SHARDS:-8}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 DP_BENCH_DATA=$PWD/.device/superglue WANDB_MODE=disabled PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

echo "== bench"
timeout 200 python3 -m dp_bench.cli bench --device cuda --backbone .device/all-MiniLM-L6-v2-fp16 \
  --out results/bench ${BENCH_ARGS:-} > "$OUT/bench.log" 2>&1
echo "bench exit $?"; tail -n 30 "$OUT/bench.log"

echo "== grid, $SHARDS shards, at most $GRID_SECONDS s"
for i in $(seq 0 $((SHARDS - 1))); do
  timeout "$GRID_SECONDS" python3 -m dp_bench.cli grid --config experiments/grids/paper_fewshot_gpu.yaml \
    --shard "$i/$SHARDS" > "$OUT/shard$i.log" 2>&1 &
done
wait
python3 -m dp_bench.cli grid --config experiments/grids/paper_fewshot_gpu.yaml --dry-run | head -n 1
python3 -m dp_bench.cli grid --config experiments/grids/paper_fewshot_gpu.yaml --dry-run | grep -cE "^\[.*\] done" || true
tar czf "$OUT/results.tgz" results/bench results/runs/paper_fewshot_gpu
cat "$OUT"/shard0.log | tail -n 5
