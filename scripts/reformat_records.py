"""Rewrites JSON records in the current format (``dp_bench.results.dumps_json``), values untouched.

Why this exists: every tracked record travels in the 64 MiB a GPU-machine call carries, beside
the backbone's weights. Records written before flat lists went on one line took twice the bytes;
with ``--compress``, plain ``<stem>.json`` run records (what grids wrote before 2026-12-06)
become ``<stem>.json.gz``, as grids now write them, about a fifth of the bytes. Each file is
parsed, rewritten, read back and compared; a file whose values would change is left as it was
and named, and the script exits 1. A compressed copy replaces its ``.json`` only once it reads
back equal.

    python scripts/reformat_records.py results/runs results/bench
    python scripts/reformat_records.py --compress results/runs
"""

import argparse
import json
from pathlib import Path

from dp_bench.results import dumps_json, read_json_text, record_files, write_json_atomic

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--compress", action="store_true", help="write <stem>.json records as <stem>.json.gz, then delete the .json")
parser.add_argument("folders", nargs="+", type=Path)
args = parser.parse_args()
changed = unchanged = compressed = 0
refused = []
for path in (p for folder in args.folders for p in record_files(folder)):
    before = read_json_text(path)
    payload = json.loads(before)
    after = dumps_json(payload)
    if json.loads(after) != payload:
        refused.append(str(path))
        continue
    target = path.with_name(path.name + ".gz") if args.compress and path.name.endswith(".json") else path
    if target.exists() and target != path:
        refused.append(f"{path} (its compressed copy {target.name} exists already)")
        continue
    if after == before and target == path:
        unchanged += 1
        continue
    write_json_atomic(target, payload)
    assert json.loads(read_json_text(target)) == payload, target
    if target != path:
        path.unlink()
        compressed += 1
    else:
        changed += 1
print(f"{changed} rewritten, {compressed} compressed, {unchanged} already in the format, {len(refused)} refused")
for path in refused:
    print(f"refused (values would change, or both formats are there): {path}")
raise SystemExit(1 if refused else 0)
