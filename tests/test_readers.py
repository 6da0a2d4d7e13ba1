"""Readers: jsonl errors, official split sizes, data_dir resolution, and the hub path."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from dp_bench.data import readers
from dp_bench.data.readers import load_split, read_jsonl, resolve_data_dir
from dp_bench.data.tasks import TASKS, get_task

# (task, split) -> (records, examples, label counts by class index) from the data README.
OFFICIAL = {
    ("cb", "train"): (250, 250, {1: 119, 0: 115, 2: 16}),
    ("cb", "val"): (56, 56, {1: 28, 0: 23, 2: 5}),
    ("cb", "test"): (250, 250, None),
    ("rte", "train"): (2490, 2490, {0: 1249, 1: 1241}),
    ("rte", "val"): (277, 277, {0: 146, 1: 131}),
    ("rte", "test"): (3000, 3000, None),
    ("boolq", "val"): (3270, 3270, {0: 1237, 1: 2033}),
    ("boolq", "test"): (3245, 3245, None),
    ("wic", "train"): (5428, 5428, {0: 2714, 1: 2714}),
    ("wic", "val"): (638, 638, {0: 319, 1: 319}),
    ("wic", "test"): (1400, 1400, None),
    ("multirc", "train"): (456, 27243, {0: 15218, 1: 12025}),
    ("multirc", "val"): (83, 4848, {0: 2773, 1: 2075}),
    ("multirc", "test"): (166, 9693, None),
    ("copa", "train"): (400, 400, {0: 195, 1: 205}),
    ("copa", "val"): (100, 100, {0: 55, 1: 45}),
    ("copa", "test"): (500, 500, None),
    ("wsc", "train"): (554, 554, {0: 295, 1: 259}),
    ("wsc", "val"): (104, 104, {0: 66, 1: 38}),
    ("wsc", "test"): (146, 146, None),
}
FEWGLUE = {  # task -> (train rows, dev32 rows); MultiRC counts answer options of 32 questions
    "boolq": (32, 32), "cb": (32, 32), "copa": (32, 32), "rte": (32, 32),
    "wic": (32, 32), "multirc": (154, 167), "wsc": (32, 32),
}


def _write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


# ------------------------------------------------------------------------- read_jsonl


def test_read_jsonl_skips_blank_lines_and_reads_a_last_line_without_newline(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


def test_read_jsonl_malformed_line_names_file_and_line(tmp_path):
    path = _write(tmp_path / "bad.jsonl", ['{"a": 1}', '{"a": 2', '{"a": 3}'])
    with pytest.raises(ValueError, match=rf"{path}:2: malformed JSON"):
        read_jsonl(path)
    path = _write(tmp_path / "list.jsonl", ["[1, 2]"])
    with pytest.raises(ValueError, match=rf"{path}:1: expected a JSON object, got list"):
        read_jsonl(path)


def test_read_jsonl_missing_file_names_the_path(tmp_path):
    with pytest.raises(ValueError, match=rf"file not found: {tmp_path / 'nope.jsonl'}"):
        read_jsonl(tmp_path / "nope.jsonl")


# ------------------------------------------------------------------- load_split errors


def test_missing_field_names_file_line_and_field(tmp_path):
    _write(tmp_path / "CB" / "val.jsonl", [
        json.dumps({"premise": "p", "hypothesis": "h", "label": "neutral", "idx": 0}),
        json.dumps({"premise": "p", "label": "neutral", "idx": 1}),
    ])
    with pytest.raises(ValueError, match=r"CB/val\.jsonl:2: missing field 'hypothesis'"):
        load_split(get_task("cb"), "val", str(tmp_path))


def test_labeled_split_needs_a_label(tmp_path):
    _write(tmp_path / "CB" / "train.jsonl", [json.dumps({"premise": "p", "hypothesis": "h", "idx": 0})])
    with pytest.raises(ValueError, match=r"CB/train\.jsonl:1: missing field 'label'"):
        load_split(get_task("cb"), "train", str(tmp_path))
    _write(tmp_path / "CB" / "test.jsonl", [json.dumps({"premise": "p", "hypothesis": "h", "idx": 0})])
    assert load_split(get_task("cb"), "test", str(tmp_path))[0].label is None


def test_unknown_label_names_file_line_and_choices(tmp_path):
    _write(tmp_path / "RTE" / "val.jsonl", [json.dumps({"premise": "p", "hypothesis": "h", "label": "yes", "idx": 0})])
    with pytest.raises(ValueError, match=r"RTE/val\.jsonl:1: unknown label 'yes' for task rte \(expected one of entailment, not_entailment\)"):
        load_split(get_task("rte"), "val", str(tmp_path))


def test_missing_split_file_says_which(tmp_path):
    with pytest.raises(ValueError, match=rf"task wic: split 'val' not found: {tmp_path / 'WiC' / 'val.jsonl'} does not exist"):
        load_split(get_task("wic"), "val", str(tmp_path))


def test_missing_boolq_train_says_how_to_provide_it_or_go_few_shot(tmp_path):
    with pytest.raises(ValueError) as err:
        load_split(get_task("boolq"), "train", str(tmp_path))
    msg = str(err.value)
    assert str(tmp_path / "BoolQ" / "train.jsonl") in msg and "DP_BENCH_DATA" in msg
    assert "experiments/regimes/few_shot.yaml" in msg and "fewglue" in msg


def test_resolve_data_dir_prefers_config_then_env(tmp_path, monkeypatch):
    monkeypatch.delenv("DP_BENCH_DATA", raising=False)
    assert resolve_data_dir(None) is None
    monkeypatch.setenv("DP_BENCH_DATA", str(tmp_path))
    assert resolve_data_dir(None) == str(tmp_path)
    (tmp_path / "other").mkdir()
    assert resolve_data_dir(str(tmp_path / "other")) == str(tmp_path / "other")
    with pytest.raises(ValueError, match=r"data_dir='/no/such/dir' is not a directory"):
        resolve_data_dir("/no/such/dir")
    monkeypatch.setenv("DP_BENCH_DATA", "/no/such/dir")
    with pytest.raises(ValueError, match=r"DP_BENCH_DATA='/no/such/dir' is not a directory"):
        resolve_data_dir(None)


# -------------------------------------------------------------------------- real files


@pytest.mark.parametrize(("name", "split"), list(OFFICIAL))
def test_official_split_sizes_match_the_data_readme(data_dir, name, split):
    records, n_examples, labels = OFFICIAL[name, split]
    task = get_task(name)
    assert len(read_jsonl(data_dir / task.dir_name / f"{split}.jsonl")) == records
    examples = load_split(task, split, str(data_dir))
    assert len(examples) == n_examples
    assert len({e.uid for e in examples}) == n_examples
    assert Counter(e.label for e in examples) == (labels or {None: n_examples})


def test_multirc_question_counts(data_dir):
    task = get_task("multirc")
    for split, questions in (("train", 5131), ("val", 953), ("test", 1820)):
        assert len({e.group for e in load_split(task, split, str(data_dir))}) == questions


@pytest.mark.parametrize("name", list(TASKS))
def test_fewglue_sizes(data_dir, name):
    n_train, n_dev = FEWGLUE[name]
    task = get_task(name)
    assert len(load_split(task, "fewglue_train", str(data_dir))) == n_train
    assert len(load_split(task, "fewglue_dev32", str(data_dir))) == n_dev


# ---------------------------------------------------------------------------- the hub


def _as_hub_rows(task, records):
    """The Hugging Face super_glue row layout of official jsonl records (integer labels,
    -1 when unlabeled, WSC target flattened, MultiRC one row per answer)."""

    def label(obj):
        return task.raw_labels.index(obj["label"]) if "label" in obj else -1

    rows = []
    for r in records:
        if task.name == "multirc":
            for q in r["passage"]["questions"]:
                for a in q["answers"]:
                    rows.append({"paragraph": r["passage"]["text"], "question": q["question"], "answer": a["text"],
                                 "idx": {"paragraph": r["idx"], "question": q["idx"], "answer": a["idx"]},
                                 "label": label(a)})
        elif task.name == "wsc":
            rows.append({"text": r["text"], **r["target"], "idx": r["idx"], "label": label(r)})
        else:
            rows.append({**{k: v for k, v in r.items() if k != "label"}, "label": label(r)})
    return rows


@pytest.mark.parametrize("name", list(TASKS))
@pytest.mark.parametrize("split", ["val", "test"])
def test_hub_rows_give_the_same_examples_as_jsonl(data_dir, monkeypatch, name, split):
    import datasets

    task = get_task(name)
    records = read_jsonl(data_dir / task.dir_name / f"{split}.jsonl")
    calls = []

    def fake_load_dataset(path, config, split):
        calls.append((path, config, split))
        return _as_hub_rows(task, records)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert load_split(task, split, None) == load_split(task, split, str(data_dir))
    assert calls == [(readers.HF_DATASET, task.hf_config, {"val": "validation"}.get(split, split))]


def test_an_unreachable_hub_says_how_to_use_a_local_data_folder(monkeypatch):
    import datasets

    def offline(path, config, split):  # what datasets raises with HF_HUB_OFFLINE=1 and no cache
        raise ConnectionError(f"Couldn't reach '{path}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ValueError, match=r"task cb: no data folder is set.*OfflineModeIsEnabled.*DP_BENCH_DATA") as err:
        load_split(get_task("cb"), "train", None)
    assert isinstance(err.value.__cause__, ConnectionError)


def test_hub_has_no_fewglue():
    with pytest.raises(ValueError, match=r"split 'fewglue_train' exists only as local FewGLUE files"):
        load_split(get_task("cb"), "fewglue_train", None)
