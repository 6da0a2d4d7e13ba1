"""Run records: atomic writes survive a writer that dies mid-write; records load into rows."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from dp_bench import results
from dp_bench.results import load_results, read_record, write_json_atomic


def make_record(
    task: str = "cb", method: str = "prompt_tuning", seed: int = 0, scores: dict[str, float] | None = None,
    status: str = "finished", grid: str | None = "g", regime: str = "full", backbone: str = "bb",
    positions: dict[str, list[int]] | None = None, prompt: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A hand-made record shaped like ``RunRecorder.write`` output; ``scores`` per task (0..1)."""
    tasks = task.split("+")
    selected = None
    if status == "finished" and scores is not None:
        flat = {}
        for t, s in scores.items():
            flat |= {f"val/{t}/score": s, f"val/{t}/acc": s - 0.01}
        flat["val/score"] = sum(scores.values()) / len(scores)
        predictions = {t: {"metrics": {}, "label": [0, 1], "pred": [0, 0]} for t in tasks}
        for t, pos in (positions or {}).items():
            predictions[t]["position"] = pos
        selected = {"epoch": 1, "step": 8, "monitor": "val/score", "metrics": flat, "predictions": predictions}
    return {
        "schema": 1, "status": status, "error": None if status == "finished" else "RuntimeError: boom",
        "task": task, "tasks": tasks, "method": method, "backbone": backbone, "regime": regime,
        "seed": seed, "grid": grid,
        # The per-metric bests may come from another epoch; tables must not read them.
        "metrics": {f"val/{t}/score": {"value": 0.99, "epoch": 0, "step": 4} for t in tasks},
        "selected": selected, "history": [],
        "config": {"model": {"prompt": prompt or {"position": "prefix"}}},
        "git_sha": "abc", "versions": {}, "wall_time_s": 1.0, "finished_at": f"2026-01-01T00:00:0{seed}",
    }


def write(dir_: Path, name: str, record: dict[str, Any]) -> Path:
    return write_json_atomic(dir_ / name, record)


@pytest.mark.parametrize("payload", [
    {"pred": [0, 1, 2], "nested": [[1, 2], [3]], "empty": [], "mixed": [1, {"a": [2.5, -1e-07, None, True]}]},
    {"text": ["a, b", "c]\n,", "{x}", "[y", "é"], "deep": {"k": [["s", 1], []]}},
    [1, 2, 3],
])
def test_dumps_json_puts_flat_lists_on_one_line_and_round_trips(payload):
    text = results.dumps_json(payload)
    assert json.loads(text) == payload
    assert text.count("\n") < json.dumps(payload, indent=1).count("\n") or "\n" not in json.dumps(payload, indent=1)
    if isinstance(payload, dict) and "pred" in payload:
        assert '"pred": [0, 1, 2]' in text and '"a": [2.5, -1e-07, null, true]' in text


def test_write_json_atomic_keeps_old_file_when_the_write_fails(tmp_path, monkeypatch):
    target = write_json_atomic(tmp_path / "r.json", {"old": True})

    def fail(fd):
        raise OSError("disk full")

    monkeypatch.setattr(results.os, "fsync", fail)  # the new text is half on disk when this raises
    with pytest.raises(OSError, match="disk full"):
        write_json_atomic(target, {"new": [1, 2, 3]})
    assert json.loads(target.read_text()) == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temp litter


def test_write_json_atomic_killed_writer_leaves_no_half_file(tmp_path):
    old = make_record(scores={"cb": 0.5})
    target = write_json_atomic(tmp_path / "r.json", old)
    # The child stops with the new document in its temp file, not yet renamed; then it is
    # killed (SIGKILL: no cleanup handler runs, as with the OOM killer).
    child = textwrap.dedent("""
        import sys, time
        from dp_bench import results
        def stuck(fd):
            print("writing", flush=True)
            time.sleep(60)
        results.os.fsync = stuck
        results.write_json_atomic(sys.argv[1], {"new": [1, 2, 3]})
    """)
    proc = subprocess.Popen([sys.executable, "-c", child, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        proc.kill()
        proc.wait()
    assert json.loads(target.read_text()) == old
    leftovers = [p for p in tmp_path.iterdir() if p.name != "r.json"]
    assert leftovers and all(p.name.startswith(".") for p in leftovers)  # hidden temp file only
    frame, problems = load_results(tmp_path)  # ... which readers skip
    assert problems == [] and list(frame["file"]) == [str(target)]


def test_gz_records_are_gzip_compressed_json_that_reads_back(tmp_path):
    record = make_record(scores={"cb": 0.5})
    plain, packed = write_json_atomic(tmp_path / "r.json", record), write_json_atomic(tmp_path / "s.json.gz", record)
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()  # the same text, compressed
    assert packed.stat().st_size < plain.stat().st_size
    assert write_json_atomic(tmp_path / "t.json.gz", record).read_bytes() == packed.read_bytes()  # no timestamp inside
    assert read_record(packed) == read_record(plain) == json.loads(json.dumps(record))
    frame, problems = load_results(tmp_path)
    assert problems == [] and sorted(Path(f).name for f in frame["file"]) == ["r.json", "s.json.gz", "t.json.gz"]
    assert [results.record_stem(p) for p in results.record_files(tmp_path)] == ["r", "s", "t"]
    assert results.checkpoint_dir(tmp_path / "g" / "s.json.gz") == results.checkpoint_dir(tmp_path / "g" / "s.json")
    (tmp_path / "cut.json.gz").write_bytes(packed.read_bytes()[:-9])  # a half-copied file
    with pytest.raises(ValueError, match="cut.json.gz"):
        read_record(tmp_path / "cut.json.gz")


def test_reformat_records_compresses_plain_records_values_unchanged(tmp_path):
    folder = tmp_path / "runs" / "g"
    record = make_record(scores={"cb": 0.5})
    plain = write_json_atomic(folder / "a.json", record)
    text = plain.read_text()
    write_json_atomic(folder / "b.json", record)
    write_json_atomic(folder / "b.json.gz", record)  # both forms of one run: neither is touched
    script = Path(__file__).resolve().parents[1] / "scripts" / "reformat_records.py"
    done = subprocess.run([sys.executable, str(script), "--compress", str(tmp_path / "runs")], capture_output=True, text=True)
    assert done.returncode == 1 and "1 compressed" in done.stdout and "b.json (its compressed copy" in done.stdout
    assert not plain.exists() and gzip.decompress((folder / "a.json.gz").read_bytes()).decode() == text
    assert (folder / "b.json").exists()


def test_read_record_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"task": ')
    with pytest.raises(ValueError, match="bad.json"):
        read_record(bad)


def test_load_results_rows_per_task_at_selected_epoch(tmp_path):
    write(tmp_path, "a.json", make_record("cb", scores={"cb": 0.7}, positions={"cb": [0, 3, 3]}))
    write(tmp_path / "sub", "b.json", make_record("cb+rte", regime="multitask", scores={"cb": 0.5, "rte": 0.6}))
    write(tmp_path, "c.json", make_record("rte", status="failed"))
    (tmp_path / "broken.json").write_text("{not json")
    write(tmp_path, "d.json", {k: v for k, v in make_record("cb", status="interrupted").items() if k != "method"})

    frame, problems = load_results(tmp_path)
    assert len(problems) == 2
    assert any("broken.json" in p for p in problems) and any("d.json" in p and "method" in p for p in problems)
    rows = {(Path(r.file).name, r.task): r for r in frame.itertuples()}
    assert set(rows) == {("a.json", "cb"), ("b.json", "cb"), ("b.json", "rte"), ("c.json", "rte")}
    assert rows["a.json", "cb"].score == pytest.approx(0.7)  # selected, not the best-of 0.99
    assert rows["a.json", "cb"].decisions == {"position": [0, 3, 3]}
    assert rows["b.json", "rte"].score == pytest.approx(0.6) and rows["b.json", "rte"].run_task == "cb+rte"
    assert rows["c.json", "rte"].status == "failed" and rows["c.json", "rte"].score != rows["c.json", "rte"].score  # NaN


def test_records_with_a_test_evaluation_report_it_not_the_selection_split(tmp_path):
    record = make_record("cb", scores={"cb": 0.9})  # 0.9 on the held-out selection split
    record["test"] = {"cb": {"acc": 0.6, "f1_macro": 0.4, "score": 0.5}}
    record["test_predictions"] = {"cb": {"example_idx": [0, 1, 2], "label": [0, 1, 2], "pred": [0, 1, 1], "position": [2, 0, 1]}}
    write(tmp_path, "held.json", record)
    write(tmp_path, "val.json", make_record("cb", "adap_ins_pos", scores={"cb": 0.8}))
    rows = {Path(r.file).name: r for r in load_results(tmp_path)[0].itertuples()}
    assert (rows["held.json"].score, rows["held.json"].report) == (pytest.approx(0.5), "test")
    assert rows["held.json"].predictions == {"example_idx": [0, 1, 2], "label": [0, 1, 2], "pred": [0, 1, 1]}
    assert rows["held.json"].decisions == {"position": [2, 0, 1]}
    assert (rows["val.json"].score, rows["val.json"].report) == (pytest.approx(0.8), "selection")


def test_a_train_holdout_record_without_its_test_is_not_finished(tmp_path):
    # A process killed during the test after fit, before records said so themselves: its
    # selected metrics are holdout numbers and must not stand in for val.jsonl.
    record = make_record("cb", scores={"cb": 0.9})
    record["config"]["data"] = {"selection": "train_holdout"}
    write(tmp_path, "killed.json", record)
    write(tmp_path, "val.json", make_record("cb", "adap_ins_pos", scores={"cb": 0.8}))  # selection on val: no test
    rows = {Path(r.file).name: r for r in load_results(tmp_path)[0].itertuples()}
    assert (rows["killed.json"].status, rows["killed.json"].error) == ("interrupted", results.TEST_PENDING)
    assert rows["val.json"].status == "finished"
    record["test"] = {"cb": {"acc": 0.6, "score": 0.5}}
    assert results.record_status(record) == "finished"


def test_load_results_empty_dir_has_columns(tmp_path):
    frame, problems = load_results(tmp_path)
    assert frame.empty and problems == []
    assert {"score", "acc", "method", "task", "status"} <= set(frame.columns)


def test_git_state_counts_changes_to_inputs_not_to_results(tmp_path, monkeypatch):
    monkeypatch.delenv("DP_BENCH_GIT_SHA", raising=False)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    for name in ("code.py", "results/runs/r.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("0")
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    (tmp_path / "results/runs/r.json").write_text("rerun")  # a committed record, run again
    assert results.git_state(tmp_path / "results")["git_dirty"] is False
    (tmp_path / "code.py").write_text("1")
    assert results.git_state(tmp_path / "results")["git_dirty"] is True


def test_git_state_takes_the_sha_from_the_environment_when_set(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.delenv("DP_BENCH_GIT_SHA", raising=False)
    assert results.git_state(tmp_path) == {"git_sha": None, "git_dirty": None}
    monkeypatch.setenv("DP_BENCH_GIT_SHA", "0" * 40)
    assert results.git_state(tmp_path) == {"git_sha": "0" * 40, "git_dirty": None}
    # Also inside a checkout: a copied tree's .git may be stale (the device copy's is).
    assert results.git_state(Path(__file__).parent) == {"git_sha": "0" * 40, "git_dirty": None}


def test_training_protocol_ignores_the_task_list_and_fills_the_default_lr_scale():
    base = {"trainer": {"max_epochs": 10}, "data": {"max_length": 128, "selection": "train_holdout", "tasks": ["cb"],
            "regime": "full"}, "model": {"prompt": {"length": 20}, "backbone": "bb"}, "record": {"path": "a.json"}}
    multitask = base | {"data": base["data"] | {"tasks": ["cb", "copa"], "regime": "multitask"}, "record": {"path": "b.json"}}
    assert results.training_protocol(base) == results.training_protocol(multitask)
    assert results.training_protocol(base) == results.training_protocol(base | {"model": base["model"] | {"lr_scale": 1.0}})
    assert results.training_protocol(base) != results.training_protocol(base | {"model": base["model"] | {"lr_scale": 0.3}})
    assert results.training_protocol(base) != results.training_protocol(base | {"trainer": {"max_epochs": 3}})
    assert results.training_protocol(base) != results.training_protocol(base | {"model": {"prompt": {"length": 5}}})


def test_versions_that_differ_names_moved_packages_only():
    recorded = {"transformers": "5.24.0", "torch": "2.13.0+cpu", "datasets": None, "wandb": "0.31.0"}
    here = {"transformers": "5.25.0", "torch": "2.13.0+cpu", "datasets": "5.2.0", "numpy": "2.4.6"}
    assert results.versions_that_differ(recorded, here) == ["transformers 5.24.0 -> 5.25.0"]
    assert results.versions_that_differ(recorded, recorded) == []


def test_first_difference_names_the_first_epoch_whose_weights_differ_behind_equal_metrics():
    def record(*digests: str | None) -> dict[str, Any]:
        history = [{"epoch": e, "step": e, "metrics": {"val/score": 0.5}} for e in range(len(digests))]
        for entry, digest in zip(history, digests, strict=True):
            if digest is not None:
                entry["trainable_sha256"] = digest
        return {"history": history, "selected": None}

    assert results.first_difference(record("a", "b"), record("a", "b")) is None
    assert results.weights_compared(record("a", "b"), record("a", "b"))
    assert results.first_difference(record("a", "b"), record("a", "c")) == "epoch 1's trained weights, its metrics equal"
    # a record older than the digest: only its metrics and predictions can be compared
    assert results.first_difference(record(None, None), record("a", "c")) is None
    assert not results.weights_compared(record(None, None), record("a", "c"))
    assert not results.weights_compared(record("a", None), record("a", "c"))
    assert not results.weights_compared(record(), record())  # nothing compared is not "bit for bit"
