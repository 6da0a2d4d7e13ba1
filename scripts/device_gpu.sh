#!/usr/bin/env bash
# Grid runs on a lent GPU machine (15 minutes of device time a session), prepared in advance.
# Every run is a committed `dp-bench grid` command; the records come back in $OUT/<name>.tgz.
#
#   scripts/device_gpu.sh stash DIR      copies a carried folder to /tmp/stash/ (kept while the
#                                        machine stays warm, 30 s after a call): one call
#                                        carries 64 MiB with the tracked tree (16 MiB now)
#   scripts/device_gpu.sh grids          the MiniLM few-shot grids (paper_fewshot_gpu, then
#                                        paper_fewshot_fewglue_gpu), SHARDS shards at once on
#                                        the one GPU, stopped after GRID_SECONDS; beside them
#                                        scripts/rerun_record.py reruns REPRO's records (default:
#                                        two finished ones) to check they reproduce on a GPU
#   scripts/device_gpu.sh smollm2 DIR    joins the stashed .device-smol-a half and DIR's into
#                                        .device/smollm2/ and runs smollm2_fewshot_gpu
#
# The calls, each carrying (scripts/prepare_device.sh builds these ignored folders):
#   1. .device/all-MiniLM-L6-v2-fp16          stash .device/all-MiniLM-L6-v2-fp16
#   2. .device/whl .device/superglue          DP_BENCH_GIT_SHA=<sent commit> ... grids
#   3. .device-smol-a                         stash .device-smol-a
#   4. .device-smol-b .device/whl .device/superglue
#                                             DP_BENCH_GIT_SHA=<sent commit> ... smollm2 .device-smol-b
# Set DP_BENCH_GIT_SHA: the tree there is a copy whose .git, if any, is not your checkout.
set -u
OUT=${OUT:-/tmp/out}
GRID_SECONDS=${GRID_SECONDS:-450}
SHARDS=${SHARDS:-16}
REPRO=${REPRO:-results/runs/paper_fewshot_gpu/cb__prompt_tuning__few_shot__all-MiniLM-L6-v2-fp16__s0.json results/runs/paper_fewshot_gpu/cb__adap_ins_pos__few_shot__all-MiniLM-L6-v2-fp16__s0.json}
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 DP_BENCH_DATA=$PWD/.device/superglue WANDB_MODE=disabled
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false

install_wheels() {
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$@" || exit 1
}

# Runs the grids one after another in each of SHARDS parallel shards until GRID_SECONDS pass;
# stops early when runs fail and none finishes (a broken setup should not eat device time).
run_grids() {
  local tag=$1; shift
  local deadline=$((SECONDS + GRID_SECONDS)) dirs=() grid
  for grid in "$@"; do dirs+=("results/runs/$(basename "$grid" .yaml)"); done  # grid name = file name
  for i in $(seq 0 $((SHARDS - 1))); do
    ( for grid in "$@"; do
        [ $((deadline - SECONDS)) -gt 0 ] || break
        timeout $((deadline - SECONDS)) python3 -m dp_bench.cli grid --config "$grid" --shard "$i/$SHARDS"
      done ) > "/tmp/$tag-shard$i.log" 2>&1 &
  done
  while [ -n "$(jobs -r)" ] && [ $SECONDS -lt $deadline ]; do
    sleep 15
    read -r done failed <<< "$(python3 scripts/count_records.py "${dirs[@]}")"
    echo "[$SECONDS s] finished $done, failed $failed"
    if [ "$failed" -ge 4 ] && [ "$done" -eq 0 ]; then
      echo "runs fail and none finishes: stopping"; for d in "${dirs[@]}"; do tail -n 25 "$d"/logs/*.err; done 2>/dev/null | tail -n 40
      break
    fi
  done
  # `timeout` stops a shard's grid, not the fit it started: stop those too (their records say
  # "interrupted", and a later `dp-bench grid` resumes them from last.ckpt).
  kill $(jobs -p) 2>/dev/null; pkill -TERM -f "dp_bench.cli (grid|fit)"; sleep 8
  python3 scripts/count_records.py "${dirs[@]}" --by-status
  grep -h "recorded" /tmp/$tag-repro.log 2>/dev/null
  tar czf "$OUT/$tag.tgz" "${dirs[@]}" /tmp/$tag-*.log
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
case "${1:-}" in
  grids)
    [ -e .device/all-MiniLM-L6-v2-fp16 ] || ln -s /tmp/stash/all-MiniLM-L6-v2-fp16 .device/all-MiniLM-L6-v2-fp16
    install_wheels .device/whl/*.whl
    python3 scripts/rerun_record.py --out /tmp/repro $REPRO > /tmp/minilm-repro.log 2>&1 &
    run_grids minilm experiments/grids/paper_fewshot_gpu.yaml experiments/grids/paper_fewshot_fewglue_gpu.yaml ;;
  stash)
    mkdir -p /tmp/stash && cp -r "$2" /tmp/stash/ && ls -la /tmp/stash ;;
  smollm2)
    mkdir -p .device/smollm2 && cat /tmp/stash/.device-smol-a/gguf.part* "$2"/gguf.part* > .device/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    (cd .device/smollm2 && sha256sum -c "$OLDPWD/$2/SHA256SUMS") || exit 1
    install_wheels .device/whl/*.whl "$2"/*.whl
    run_grids smollm2 experiments/grids/smollm2_fewshot_gpu.yaml ;;
  *) echo "usage: $0 grids | stash DIR | smollm2 DIR" >&2; exit 2 ;;
esac
