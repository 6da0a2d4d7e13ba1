"""The published results hold what the acceptance of issue 7 promises, checked on the committed files.

Every record under ``results/runs/`` and ``results/pinned/`` traces to a committed command (its grid file plans it and
configures what the record holds), and ``results/tables/``, ``experiments/tuned/`` and the
README's tables are exactly what ``make table`` writes from those records. Whether a record's
numbers come back when its command is rerun is ``scripts/rerun_record.py``'s audit (minutes a
record, so not here).
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

from dp_bench import tables
from dp_bench.grid import config_departures, run_of_record
from dp_bench.results import read_record, record_files, record_status

ROOT = Path(__file__).resolve().parents[1]
# results/pinned holds tests of reproduction that no table reads; their records trace to grids too.
RECORDS = [*record_files(ROOT / "results" / "runs"), *record_files(ROOT / "results" / "pinned")]


def uncommitted_records() -> list[str]:
    """Files under results/runs/ (or results/pinned/) that git does not have as committed: a user's own runs."""
    try:
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", "results/runs", "results/pinned"],
                                cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: check what is there
        return []
    return status.splitlines()


# The check is of the published results: a checkout with runs of its own (not yet committed,
# tables not yet regenerated) is the user's work in progress, not a failure; CI's clone is clean.
_local = uncommitted_records()
pytestmark = pytest.mark.skipif(bool(_local), reason=f"results/runs/ has uncommitted files ({len(_local)}, e.g. "
                                f"{_local[0][3:] if _local else ''}): the check is of a checkout's committed results")


def test_every_record_is_planned_by_its_committed_grid_and_holds_what_it_configures(monkeypatch):
    monkeypatch.chdir(ROOT)  # grid files name their configs and records relative to the repository
    assert RECORDS, "no records under results/runs"
    problems = []
    for path in RECORDS:
        relative = path.relative_to(ROOT)
        record = read_record(relative)
        try:
            run = run_of_record(relative, record)
        except ValueError as err:
            problems.append(str(err))
            continue
        if record_status(record) == "finished":
            problems += [f"{relative}: {d}" for d in config_departures(run, record.get("config") or {})]
    assert not problems, f"{len(problems)} problems, the first:\n" + "\n".join(problems[:10])


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    """``make table`` into a scratch folder laid out like the repository (README.md, results/tables, tuned/)."""
    out = tmp_path_factory.mktemp("table")
    shutil.copy(ROOT / "README.md", out / "README.md")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        code = tables.main(["--out", str(out / "results" / "tables"), "--readme", str(out / "README.md"),
                            "--tuned", str(out / "tuned")])
    assert code == 0
    return out


def differing_files(ours: Path, committed: Path) -> list[str]:
    """Files that differ or are on one side only, by name relative to the two folders."""
    names = {p.relative_to(ours) for p in ours.rglob("*") if p.is_file()}
    names |= {p.relative_to(committed) for p in committed.rglob("*") if p.is_file()}
    return sorted(str(n) for n in names
                  if not (ours / n).is_file() or not (committed / n).is_file()
                  or not filecmp.cmp(ours / n, committed / n, shallow=False))


def test_committed_tables_are_what_make_table_writes(regenerated):
    assert differing_files(regenerated / "results" / "tables", ROOT / "results" / "tables") == []
    assert differing_files(regenerated / "tuned", ROOT / "experiments" / "tuned") == []


def test_readme_tables_are_byte_identical_to_what_make_table_embeds(regenerated):
    assert (regenerated / "README.md").read_bytes() == (ROOT / "README.md").read_bytes()
