"""Corrects the commit a batch of run records names, keeping what they said before.

Why this exists: runs on a lent GPU machine ran in a copy of the tree whose ``.git`` was a
stale snapshot, so ``git rev-parse`` there named an older commit and called the tree dirty,
although the tree sent was the clean commit the run command named in ``DP_BENCH_GIT_SHA``
(``dp_bench.results.git_state`` now lets that variable win). Nothing but the provenance
fields changes; the old values stay under ``provenance`` for anyone who audits.

    python scripts/restamp_git_sha.py --sha SHA --was OLD --why "..." results/runs/<grid> ...
"""

import argparse
from pathlib import Path

from dp_bench.results import read_record, record_files, write_json_atomic

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--sha", required=True, help="the commit whose tree ran")
parser.add_argument("--was", required=True, help="only records that name this commit change")
parser.add_argument("--why", required=True, help="the evidence, kept in each record")
parser.add_argument("folders", nargs="+", type=Path)
args = parser.parse_args()
changed = 0
for path in sorted(p for folder in args.folders for p in record_files(folder, recursive=False)):
    record = read_record(path)
    if record.get("git_sha") != args.was:
        continue
    record["provenance"] = {"git_sha_recorded": record["git_sha"], "git_dirty_recorded": record.get("git_dirty"),
                            "restamped_by": "scripts/restamp_git_sha.py", "why": args.why}
    record["git_sha"], record["git_dirty"] = args.sha, None
    write_json_atomic(path, record)
    changed += 1
print(f"{changed} records now name {args.sha}")
