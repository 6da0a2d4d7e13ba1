#!/usr/bin/env bash
# Grid runs on a lent GPU machine (15 minutes of device time a session), prepared in advance.
# Every run is a committed `dp-bench grid` command; the records come back in $OUT/<name>.tgz.
#
#   scripts/device_gpu.sh stash DIR      copies the files of a carried folder to /tmp/stash/
#                                        (kept while the machine stays warm, 30 s after a call)
#   scripts/device_gpu.sh grids          joins the stashed MiniLM weights, then runs the MiniLM
#                                        grids of GRIDS: `fewshot` (default: paper_fewshot_gpu,
#                                        then paper_fewshot_fewglue_gpu), `full` (paper_full_gpu,
#                                        then paper_multitask_gpu) or grid names, SHARDS shards
#                                        at once on the one GPU, stopped after GRID_SECONDS (GRID_ARGS:
#                                        more `dp-bench grid` flags, no spaces inside one, e.g.
#                                        --methods=[prompt_tuning,adap_ins_pos]); beside them
#                                        scripts/rerun_record.py reruns REPRO's records (default:
#                                        two finished ones; REPRO=none: no reruns) to check they
#                                        reproduce on a GPU, and DETERMINISM's records (default:
#                                        none) three times at once: twice with
#                                        --trainer.deterministic=true (/tmp/det-a, /tmp/det-b),
#                                        once without (/tmp/det-n); $OUT/determinism.txt says
#                                        whether the two deterministic reruns agree and each
#                                        rerun's wall time. Once the grids end, BENCH (default:
#                                        none) are `dp-bench bench` flags for a benchmark on the
#                                        then idle GPU, written to $OUT
#   scripts/device_gpu.sh smollm2        joins the stashed SmolLM2 GGUF into .device/smollm2/
#                                        and runs smollm2_fewshot_gpu
#
# One call carries 64 MiB with the tracked tree, counted as disk usage (25 MiB on 2026-12-06,
# once grid records were gzip-compressed; 59 MiB before, which left no room), growing with the
# records, so scripts/prepare_device.sh cuts each weights file into parts
# that fit beside the tree, one folder per part under .device-parts/ (ignored). The calls,
# each carrying:
#   1..k.  .device-parts/minilm-<i>           stash .device-parts/minilm-<i>     (one call a part)
#   k+1.   .device/whl, the .device/superglue/<Task> (and .device/superglue/fewglue/<Task>)
#          folders the grids read (all of .device/superglue, 9 MB, no longer fits),
#          .device/all-MiniLM-L6-v2-fp16/{config.json,tokenizer.json,tokenizer_config.json}
#                                             DP_BENCH_GIT_SHA=<sent commit> ... grids
#   then   .device-parts/smollm2-<i>          stash .device-parts/smollm2-<i>    (one call a part)
#   last.  .device/whl .device/whl-gguf, the .device/superglue/<Task> folders it reads
#                                             DP_BENCH_GIT_SHA=<sent commit> ... smollm2
#   more.  (nothing)                          DP_BENCH_GIT_SHA=<sent commit> GRIDS=<grid> ... grids
#          A grid longer than one call (10 minutes) goes on in further calls: first unpack the
#          last call's $OUT/minilm.tgz records into the tree (untracked; they travel with it), so
#          the grid there resumes its interrupted runs from the checkpoints/ the machine kept
#          (the stash, the joined weights and the installed wheels stay too).
# Make each call within 30 s of the last (or the machine, and the stash, go back).
# Set DP_BENCH_GIT_SHA: the tree there is a copy whose .git, if any, is not your checkout.
set -u
OUT=${OUT:-/tmp/out}
GRID_SECONDS=${GRID_SECONDS:-450}
SHARDS=${SHARDS:-16}
GRIDS=${GRIDS:-fewshot}
read -r -a GRID_FLAGS <<< "${GRID_ARGS:-}"  # an array: no glob expansion of [..]
DETERMINISM=${DETERMINISM:-}
BENCH=${BENCH:-}
REPRO=${REPRO:-results/runs/paper_fewshot_gpu/cb__prompt_tuning__few_shot__all-MiniLM-L6-v2-fp16__s0.json.gz results/runs/paper_fewshot_gpu/cb__adap_ins_pos__few_shot__all-MiniLM-L6-v2-fp16__s0.json.gz}
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
        timeout $((deadline - SECONDS)) python3 -m dp_bench.cli grid --config "$grid" --shard "$i/$SHARDS" "${GRID_FLAGS[@]}"
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
  tar czf "$OUT/$tag.tgz" $(ls -d "${dirs[@]}" 2>/dev/null) /tmp/$tag-*.log  # a grid not yet begun has no folder
}

# Each DETERMINISM record's two deterministic reruns against each other (everything
# rerun_record compares: every epoch's metrics and every prediction), with the wall times.
compare_deterministic() {
  python3 - /tmp/det-a /tmp/det-b /tmp/det-n <<'PY'
import sys
from pathlib import Path
from dp_bench.results import first_difference, read_record, record_files
a, b, n = map(Path, sys.argv[1:])
for path in record_files(a):
    other, plain = b / path.name, n / path.name
    if not other.is_file():
        print(f"{path.name}: the second deterministic rerun has no record"); continue
    one, two = read_record(path), read_record(other)
    departs = first_difference(one, two)
    walls = [f"{read_record(p)['wall_time_s']:.0f} s" if p.is_file() else "-" for p in (path, other, plain)]
    print(f"{path.name}: deterministic reruns {'agree exactly' if departs is None else 'differ, first in ' + departs};"
          f" test {one['test']} / {two['test']}; wall time deterministic {walls[0]}, {walls[1]}, without {walls[2]}")
PY
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# Concatenates /tmp/stash/NAME.part* into DIR and checks it against the stashed NAME.sha256.
join_parts() {
  local name=$1 dir=$2
  mkdir -p "$dir" && cat /tmp/stash/"$name".part* > "$dir/$(awk '{print $2}' /tmp/stash/"$name".sha256)" || exit 1
  (cd "$dir" && sha256sum -c /tmp/stash/"$name".sha256) || exit 1
}

case "${1:-}" in
  grids)
    join_parts minilm .device/all-MiniLM-L6-v2-fp16
    install_wheels .device/whl/*.whl
    [ "$REPRO" = none ] || python3 scripts/rerun_record.py --out /tmp/repro $REPRO > /tmp/minilm-repro.log 2>&1 &
    if [ -n "$DETERMINISM" ]; then  # jobs of this shell: run_grids waits for them, or stops them
      for k in a b; do
        python3 scripts/rerun_record.py --out /tmp/det-$k --fit-arg=--trainer.deterministic=true $DETERMINISM > /tmp/minilm-det-$k.log 2>&1 &
      done
      python3 scripts/rerun_record.py --out /tmp/det-n $DETERMINISM > /tmp/minilm-det-n.log 2>&1 &
    fi
    case $GRIDS in
      fewshot) GRIDS="paper_fewshot_gpu paper_fewshot_fewglue_gpu" ;;
      full) GRIDS="paper_full_gpu paper_multitask_gpu" ;;
    esac
    run_grids minilm $(for g in $GRIDS; do echo "experiments/grids/$g.yaml"; done)
    if [ -n "$DETERMINISM" ]; then
      compare_deterministic | tee "$OUT/determinism.txt"
      tar czf "$OUT/determinism.tgz" /tmp/det-? /tmp/minilm-det-*.log 2>/dev/null
    fi
    [ -z "$BENCH" ] || python3 -m dp_bench.cli bench --device cuda --backbone .device/all-MiniLM-L6-v2-fp16 --out "$OUT" $BENCH ;;
  stash)
    mkdir -p /tmp/stash && cp "$2"/* /tmp/stash/ && ls -la /tmp/stash ;;
  smollm2)
    join_parts smollm2 .device/smollm2
    install_wheels .device/whl/*.whl .device/whl-gguf/*.whl
    run_grids smollm2 experiments/grids/smollm2_fewshot_gpu.yaml ;;
  *) echo "usage: $0 grids | stash DIR | smollm2" >&2; exit 2 ;;
esac
