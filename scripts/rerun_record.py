"""Reruns a grid record's own command into another folder and compares what it reports.

The acceptance test of a published number: the record's grid (``experiments/grids/<grid>.yaml``)
gives the exact ``dp-bench fit`` command (``dp-bench grid --dry-run`` prints the same); only
``--record.path`` changes, W&B stays off, and it runs under the record's thread counts and kernel
pins (``machine.cpu.env``). A record whose config departs from what the grid's files set now
(``grid.config_departures``) is reported and not rerun. On CPU the reported metrics must match
exactly; on a GPU within noise (cuDNN/cuBLAS kernels are not bitwise deterministic).

    python scripts/rerun_record.py --out /tmp/repro results/runs/<grid>/<stem>.json.gz ...

An audit rather than a chosen example: ``--draw N --seed S`` reruns N of the given records
drawn at random, among the finished ones that ran on this kind of machine (and, with
``--max-wall-s``, took at most that long, so that the draw fits a session):

    python scripts/rerun_record.py --out /tmp/audit --draw 12 --seed 1 --max-wall-s 600 results/runs/*/*.json.gz

Prints one line per record and reported metric: recorded, rerun, difference; then whether it
reproduced exactly (every epoch's validation metrics and every prediction, and the trained
weights' digest at every epoch where the record has one, ``trainable_sha256``; else where it
first departs), whether the record ran on the same CPU arithmetic as this machine
(``machine.kernels_that_differ``: the bits of each kind of kernel on fixed inputs, and the
thread count; the kernels that differ are named; unknown for records older than the
fingerprint, which name their host only by its platform string), and which package versions
differ from the record's (``make install`` pins the records' versions: constraints.txt); then
how many records reproduced exactly, how many reruns failed and how many records were not rerun
(no committed command makes them, or their backbone has no copy here); exit status 1 when a
rerun fails or a record is not rerun. Only the rerun records
stay: each rerun's checkpoints (``checkpoints/<out folder name>/<stem>``, gigabytes for a
``fine_tuning`` run) are deleted once it ends.
"""

import argparse
import contextlib
import os
import random
import shutil
import subprocess
from pathlib import Path

from dp_bench.backbones import resolve_backbone
from dp_bench.grid import config_departures, run_of_record
from dp_bench.machine import kernels_not_compared, kernels_that_differ, machine_info, pinned_env
from dp_bench.results import (
    checkpoint_dir,
    first_difference,
    machine_kind,
    read_record,
    record_rows,
    versions_that_differ,
    weights_compared,
)

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, required=True, help="folder for the rerun records")
parser.add_argument("--grids", type=Path, default=Path("experiments/grids"))
parser.add_argument("--draw", type=int, metavar="N", help="rerun N records drawn at random from those given")
parser.add_argument("--seed", type=int, default=0, help="seed of the --draw")
parser.add_argument("--max-wall-s", type=float, help="--draw only among records whose run took at most this long")
parser.add_argument("--fit-arg", action="append", default=[], metavar="ARG",
                    help="appended to each record's command (repeatable), e.g. --fit-arg=--trainer.deterministic=true: "
                    "the rerun then tests that setting against the record, not the record's own command")
parser.add_argument("records", nargs="+", type=Path)
args = parser.parse_args()


def drawn(paths: list[Path]) -> list[Path]:
    """``args.draw`` of ``paths``: finished records of this machine's kind, within the wall-time cap."""
    here = machine_kind({"machine": machine_info()})
    wall_s = {}  # eligible path -> its run's wall time
    for path in sorted(set(paths)):
        record = read_record(path)
        if record["status"] != "finished" or machine_kind(record) != here:
            continue
        if args.max_wall_s is None or record["wall_time_s"] <= args.max_wall_s:
            wall_s[path] = record["wall_time_s"]
    chosen = sorted(random.Random(args.seed).sample(list(wall_s), min(args.draw, len(wall_s))))
    print(f"drew {len(chosen)} of {len(wall_s)} eligible records ({here}, of {len(set(paths))} given):")
    for path in chosen:
        print(f"  {path} ({wall_s[path]:.0f} s)")
    return chosen


def drop_checkpoints(rerun_path: Path) -> None:
    """Deletes the checkpoints of the fit that writes ``rerun_path``, and their folder once empty."""
    folder = checkpoint_dir(rerun_path)
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):  # not empty: other reruns into a folder of that name
        folder.parent.rmdir()


def committed_run(path: Path, record: dict):
    """The grid's run that makes this record, ready to rerun here; ValueError saying why not."""
    run = run_of_record(path, record, args.grids)  # no grid file, or one that plans no run writing this record
    departures = config_departures(run, record.get("config") or {})
    if departures:  # the grid's files changed since the record: its command no longer makes it
        raise ValueError(f"the committed command no longer configures this record ({'; '.join(departures)})")
    try:
        resolve_backbone(run.backbone)  # a missing local copy fails here, before a fit is launched
    except ValueError as err:
        raise ValueError(f"{err}. The .device/ copies are not committed: scripts/prepare_device.sh saves "
                         "MiniLM in half precision; the grid file's header says the rest") from err
    return run


failed = 0  # reruns that exited with an error or wrote no record
refused = 0  # records not rerun: no committed command makes them, or their backbone is not here
# Records reproduced exactly, by what the record's machine shares with this one.
WHERE = {True: "same CPU arithmetic as the record's", False: "other CPU arithmetic than the record's",
         None: "CPU arithmetic unknown (the record predates machine.cpu.fingerprint)", "GPU": "a GPU record: within noise is its test"}
exact = dict.fromkeys(WHERE, 0)
weights_exact = 0  # of those, how many with every epoch's trained weights the same bits
records = drawn(args.records) if args.draw is not None else args.records
for path in records:
    record = read_record(path)
    try:
        run = committed_run(path, record)
    except ValueError as err:
        print(f"{path.name}: not rerun: {err}")
        refused += 1
        continue
    rerun_path = args.out / path.name
    command = run.command()
    command[command.index("--record.path") + 1] = str(rerun_path)
    drop_checkpoints(rerun_path)  # an earlier rerun's into the same --out: not this run's to resume
    # The record's thread counts and kernel pins (machine.ARITHMETIC_ENV, as it ran): a run made
    # with OMP_NUM_THREADS=1 reruns with one thread whatever this shell's default.
    pinned = pinned_env(record.get("machine"))
    if pinned:
        print(f"{path.name}: rerun with the record's {' '.join(f'{k}={v}' for k, v in sorted(pinned.items()))}")
    code = subprocess.run([*command, "--trainer.logger=false", *args.fit_arg], check=False,
                          env={**os.environ, **pinned}).returncode
    drop_checkpoints(rerun_path)  # the record is what is compared
    if code != 0 or not rerun_path.is_file():
        print(f"{path.name}: rerun failed (exit status {code})")
        failed += 1
        continue
    rerun = read_record(rerun_path)
    differ = kernels_that_differ(record.get("machine"), rerun.get("machine"))
    where = "GPU" if machine_kind(record) != "CPU" else None if differ is None else not differ
    before, after = record_rows(record, path), record_rows(rerun, rerun_path)
    same = True
    for old, new in zip(before, after, strict=True):
        same &= old["selected_epoch"] == new["selected_epoch"]
        for metric in ("score", "acc"):
            if metric in old:
                same &= old[metric] == new[metric]
                print(f"{path.name} {old['task']} {old['report']} {metric}: recorded {old[metric]:.6f} "
                      f"rerun {new[metric]:.6f} diff {new[metric] - old[metric]:+.6f} "
                      f"(selected epoch {old['selected_epoch']} / {new['selected_epoch']})")
    departs = first_difference(record, rerun)
    same &= departs is None
    named = f" ({', '.join(differ)} differ)" if differ else ""
    unknown = kernels_not_compared(record.get("machine"), rerun.get("machine"))
    if unknown:  # the record predates these kernels' hashes: "same" holds for the others only
        named += f" (not compared: {', '.join(unknown)}, hashed in one of the two only)"
    if where is None:  # the host's name is all such a record has to tell
        named = f" (recorded on {record.get('machine', {}).get('platform')}, rerun on {rerun['machine']['platform']})"
    moved = versions_that_differ(record.get("versions", {}), rerun["versions"])
    libraries = f"; other package versions: {', '.join(moved)}" if moved else ""
    bitwise = same and weights_compared(record, rerun)
    how = (", trained weights bit for bit" if bitwise
           else " (metrics and predictions; the record predates the weights' digest)" if same else "")
    print(f"{path.name}: {'reproduced exactly' if same else 'differs'}{how}"
          f"{f' (first in {departs})' if departs else ''}; {WHERE[where]}{named}{libraries}")
    exact[where] += same
    weights_exact += bitwise
print(f"{sum(exact.values())} of {len(records)} records reproduced exactly (every epoch's metrics and every prediction; "
      f"{exact[True]} on the same CPU arithmetic, {exact[False]} other, {exact[None]} unknown, {exact['GPU']} GPU; "
      f"{weights_exact} with the trained weights bit for bit); {failed} reruns failed; {refused} records not rerun")
raise SystemExit(1 if failed or refused else 0)
