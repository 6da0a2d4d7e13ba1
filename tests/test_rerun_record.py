"""scripts/rerun_record.py: a record's own command, rerun, compared with what it recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dp_bench.grid import expand, load_spec, run_grid
from dp_bench.machine import ARITHMETIC_ENV
from dp_bench.results import read_record, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_cpu_record_rerun_on_its_own_machine_reproduces_exactly_and_says_so(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("DP_BENCH_DATA", str(data_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    grids = tmp_path / "grids"
    grids.mkdir()
    (grids / "tiny.yaml").write_text(json.dumps({  # JSON is YAML
        "name": "tiny", "tasks": ["cb"], "methods": ["adap_ins_pos"], "seeds": [3], "regimes": ["full"],
        "runs_dir": str(tmp_path / "runs"), "configs_dir": str(ROOT / "experiments"),
        "overrides": {"data.limit_train_examples": 16, "data.limit_eval_examples": 16, "data.max_length": 64,
                      "trainer.max_epochs": 2, "trainer.enable_progress_bar": False, "trainer.logger": False},
    }))
    spec, _ = load_spec(["--config", str(grids / "tiny.yaml")])
    (run,) = expand(spec)
    for name in ARITHMETIC_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the record runs on one thread ...
    assert run_grid([run], out=lambda _: None)["done"] == 1, (run.record_path.parent / "logs" / f"{run.stem}.err").read_text()[-3000:]
    machine = read_record(run.record_path)["machine"]
    assert machine["cpu"]["fingerprint"] and machine["cpu"]["env"] == {"OMP_NUM_THREADS": "1"}

    monkeypatch.delenv("OMP_NUM_THREADS")  # ... and its rerun too, whatever the shell's default
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "rerun_record.py"), "--grids", str(grids),
                           "--out", str(tmp_path / "rerun"), str(run.record_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{run.record_path.name}: rerun with the record's OMP_NUM_THREADS=1" in done.stdout
    assert f"{run.record_path.name}: reproduced exactly, trained weights bit for bit; same CPU arithmetic as the record's" in done.stdout
    assert "1 of 1 records reproduced exactly" in done.stdout
    assert (tmp_path / "rerun" / run.record_path.name).is_file()
    assert not list((tmp_path / "checkpoints").glob("rerun/*"))  # a rerun's checkpoints are deleted


def test_records_no_committed_command_makes_are_not_rerun_and_counted_apart_from_failures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grids = tmp_path / "grids"
    grids.mkdir()
    (grids / "tiny.yaml").write_text(json.dumps({
        "name": "tiny", "tasks": ["cb"], "methods": ["prompt_tuning"], "seeds": [0], "regimes": ["full"],
        "runs_dir": str(tmp_path / "runs"), "configs_dir": str(ROOT / "experiments"),
        "overrides": {"data.max_length": 64},
    }))
    spec, _ = load_spec(["--config", str(grids / "tiny.yaml")])
    (run,) = expand(spec)
    run.record_path.parent.mkdir(parents=True)
    departed = {"grid": "tiny", "status": "interrupted", "config": {"data": {"max_length": 128}}}
    write_json_atomic(run.record_path, departed)  # made by another command than the grid's now
    no_grid = tmp_path / "runs" / "gone.json"
    no_grid.write_text(json.dumps({"grid": "deleted_grid", "status": "interrupted"}))
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "rerun_record.py"), "--grids", str(grids),
                           "--out", str(tmp_path / "rerun"), str(run.record_path), str(no_grid)],
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stderr[-3000:]  # an audit that reran nothing does not pass
    assert f"{run.record_path.name}: not rerun: the committed command no longer configures this record" in done.stdout
    assert "data.max_length: the grid's files say 64, the record says 128" in done.stdout
    assert "gone.json: not rerun:" in done.stdout and "'deleted_grid' has no file" in done.stdout
    assert "0 reruns failed; 2 records not rerun" in done.stdout
    assert not (tmp_path / "rerun").exists()
