"""Reruns a grid record's own command into another folder and compares what it reports.

The acceptance test of a published number: the record's grid (``experiments/grids/<grid>.yaml``)
gives the exact ``dp-bench fit`` command (``dp-bench grid --dry-run`` prints the same); only
``--record.path`` changes, and W&B stays off. On CPU the reported metrics must match exactly;
on a GPU within noise (cuDNN/cuBLAS kernels are not bitwise deterministic).

    python scripts/rerun_record.py --out /tmp/repro results/runs/<grid>/<stem>.json ...

Prints one line per record and metric: recorded, rerun, difference; exit status 1 when a
rerun fails.
"""

import argparse
import subprocess
from pathlib import Path

from dp_bench.grid import expand, load_spec
from dp_bench.results import read_record, record_rows

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, required=True, help="folder for the rerun records")
parser.add_argument("--grids", type=Path, default=Path("experiments/grids"))
parser.add_argument("records", nargs="+", type=Path)
args = parser.parse_args()

failed = 0
for path in args.records:
    record = read_record(path)
    spec, _ = load_spec(["--config", str(args.grids / f"{record['grid']}.yaml")])
    (run,) = [r for r in expand(spec) if r.record_path.resolve() == path.resolve()]
    rerun_path = args.out / path.name
    command = run.command()
    command[command.index("--record.path") + 1] = str(rerun_path)
    code = subprocess.run([*command, "--trainer.logger=false"], check=False).returncode
    if code != 0 or not rerun_path.is_file():
        print(f"{path.name}: rerun failed (exit status {code})")
        failed += 1
        continue
    before, after = record_rows(record, path), record_rows(read_record(rerun_path), rerun_path)
    for old, new in zip(before, after, strict=True):
        for metric in ("score", "acc"):
            if metric in old:
                print(f"{path.name} {old['task']} {old['report']} {metric}: recorded {old[metric]:.6f} "
                      f"rerun {new[metric]:.6f} diff {new[metric] - old[metric]:+.6f} "
                      f"(selected epoch {old['selected_epoch']} / {new['selected_epoch']})")
raise SystemExit(1 if failed else 0)
