"""Writes this host's CPU arithmetic to a record and compares it with every host on file.

A CPU run reproduces exactly where its kernels round as they did (``dp_bench/machine.py``).
The 2-core VM that runs our CPU grids moves between hosts, of more than one CPU vendor, and
which kernel pins (if any) give the same bits on all of them is a question for the hosts
themselves: this records, for one host, the fingerprint under no pin and under each pin of
``machine.PINS`` (each in a fresh process), then says per pin which kernels differ from each
host already recorded.

    python scripts/cpu_arithmetic.py                    # writes results/machines/<platform>__<CPU>.json

A pin that gives no differing kernel on two hosts is one under which their CPU runs could
reproduce each other (the rest of a fit's kernels permitting: a rerun is still the test).
"""

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from dp_bench.machine import (
    PINS,
    fingerprint_in_a_process,
    host_record_name,
    kernels_not_compared,
    kernels_that_differ,
    machine_info,
)
from dp_bench.results import git_state, package_versions, write_json_atomic

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, default=Path("results/machines"), help="folder of host records")
parser.add_argument("--pins", nargs="+", choices=list(PINS), default=list(PINS), help="which pins to try (default: all)")
args = parser.parse_args()

start = time.perf_counter()
machine = machine_info()
fingerprints = {label: fingerprint_in_a_process(PINS[label]) for label in args.pins}
# machine_info's fingerprint ran in this process, "default" in another: they must agree
if fingerprints.get("default", machine["cpu"]["fingerprint"]) != machine["cpu"]["fingerprint"]:
    raise SystemExit("the fingerprint differs between processes on this host: kernel choice is not fixed here")
record = {"command": " ".join(["python", *sys.argv]), "created": datetime.now(UTC).isoformat(timespec="seconds"),
          "machine": machine, "pins": {label: PINS[label] for label in args.pins}, "fingerprints": fingerprints,
          **git_state(), "versions": package_versions(), "wall_time_s": round(time.perf_counter() - start, 1)}
path = args.out / host_record_name(machine)
write_json_atomic(path, record)
print(f"wrote {path}: {machine['cpu']['model_name']} ({machine['cpu']['vendor']} "
      f"{machine['cpu']['family_model_stepping']}), torch {machine['cpu']['torch_capability']}")

for other in sorted(args.out.glob("*.json")):
    if other == path:
        continue
    theirs = json.loads(other.read_text())
    print(f"against {other.name}: {theirs['machine']['cpu']['model_name']} ({theirs['machine']['cpu']['vendor']} "
          f"{theirs['machine']['cpu']['family_model_stepping']}), recorded {theirs['created']}")
    for label in fingerprints:
        if label in theirs["fingerprints"]:
            pair = ({"torch_threads": theirs["machine"]["torch_threads"], "cpu": {"fingerprint": theirs["fingerprints"][label]}},
                    {"torch_threads": machine["torch_threads"], "cpu": {"fingerprint": fingerprints[label]}})
            differ = kernels_that_differ(*pair)
            unknown = kernels_not_compared(*pair)  # a host recorded before a kernel joined the fingerprint
            print(f"  {label:28s} {'the same bits' if not differ else ', '.join(differ) + ' differ'}"
                  + (f" (not compared: {', '.join(unknown)}, hashed on one host only)" if unknown else ""))
