"""Counts the run records of grid folders by status (scripts/device_gpu.sh's progress line).

    python scripts/count_records.py results/runs/A results/runs/B              -> "<finished> <failed>"
    python scripts/count_records.py results/runs/A results/runs/B --by-status  -> a line per grid and status
"""

import json
import sys
from collections import Counter
from pathlib import Path

from dp_bench.results import read_json_text, record_files

folders = [Path(a) for a in sys.argv[1:] if not a.startswith("--")]
counts: Counter = Counter()
for path in (p for folder in folders for p in record_files(folder, recursive=False)):
    try:
        counts[(path.parent.name, json.loads(read_json_text(path)).get("status", "?"))] += 1
    except (OSError, EOFError, ValueError):
        counts[(path.parent.name, "unreadable")] += 1
if "--by-status" in sys.argv:
    for (grid, status), n in sorted(counts.items()):
        print(f"{grid}: {status} {n}")
else:
    total = Counter()
    for (_, status), n in counts.items():
        total[status] += n
    print(total["finished"], total["failed"])
