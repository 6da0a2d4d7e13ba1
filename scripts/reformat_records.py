"""Rewrites JSON records in the current format (``dp_bench.results.dumps_json``), values untouched.

Why this exists: records written before flat lists went on one line took twice the bytes, and
every tracked record travels in the 64 MiB a GPU-machine call carries. Each file is parsed,
rewritten, parsed again and compared; a file whose values would change is left as it was and
named, and the script exits 1.

    python scripts/reformat_records.py results/runs results/bench
"""

import json
import sys
from pathlib import Path

from dp_bench.results import dumps_json, write_json_atomic

changed = unchanged = 0
refused = []
for folder in map(Path, sys.argv[1:]):
    for path in sorted(folder.rglob("*.json")):
        before = path.read_text()
        payload = json.loads(before)
        after = dumps_json(payload)
        if json.loads(after) != payload:
            refused.append(str(path))
            continue
        if after == before:
            unchanged += 1
            continue
        write_json_atomic(path, payload)
        assert json.loads(path.read_text()) == payload, path
        changed += 1
print(f"{changed} rewritten, {unchanged} already in the format, {len(refused)} refused")
for path in refused:
    print(f"refused (values would change): {path}")
sys.exit(1 if refused else 0)
