"""TaskSpec: registry, labels, and how each task is cast into (text_a, text_b, label)."""

from __future__ import annotations

import dataclasses

import pytest

from dp_bench.data.readers import load_split
from dp_bench.data.tasks import TASKS, Example, _registry, get_task

W = "x.jsonl:7"


def test_registry_names_and_spec_shapes():
    assert list(TASKS) == ["boolq", "cb", "copa", "rte", "wic", "multirc", "wsc"]
    for name, spec in TASKS.items():
        assert spec.name == name and spec.dir_name.lower() == name
        assert len(spec.label_names) == len(spec.verbalizer) == len(spec.raw_labels) == spec.num_labels
        assert all(len(w.split()) == 1 for w in spec.verbalizer)
    assert get_task("cb").verbalizer == ("yes", "no", "maybe")
    assert get_task("cb").metrics == ("acc", "f1_macro")
    assert get_task("multirc").metrics == ("f1a", "em")


def test_get_task_unknown_lists_choices():
    with pytest.raises(ValueError, match=r"unknown task 'superglue'; choose from boolq, cb, copa, rte, wic, multirc, wsc"):
        get_task("superglue")


def test_registry_rejects_duplicates():
    cb = get_task("cb")
    with pytest.raises(ValueError, match="duplicate task name 'cb'"):
        _registry((cb, dataclasses.replace(cb)))


def test_label_index_maps_raw_values_and_names_the_culprit():
    assert get_task("cb").label_index("neutral", W) == 2
    assert get_task("boolq").label_index(True, W) == 1
    assert get_task("copa").label_index(0, W) == 0
    with pytest.raises(ValueError, match=r"x\.jsonl:7: unknown label 'maybe' for task cb \(expected one of entailment, contradiction, neutral\)"):
        get_task("cb").label_index("maybe", W)
    # Types must match: True is not the COPA label 1, "True" is not the BoolQ label True.
    with pytest.raises(ValueError, match="unknown label True for task copa"):
        get_task("copa").label_index(True, W)
    with pytest.raises(ValueError, match="unknown label 'True' for task boolq"):
        get_task("boolq").label_index("True", W)


def test_copa_is_one_two_choice_input():
    record = {"premise": "The man turned on the faucet.", "choice1": "The toilet filled with water.",
              "choice2": "Water flowed from the spout.", "question": "effect", "label": 1, "idx": 0}
    (ex,) = get_task("copa").to_examples(record, W, "val")
    assert ex == Example("The man turned on the faucet.",
                         "What was the effect? The toilet filled with water or Water flowed from the spout?",
                         1, 0, "copa/val/0")
    with pytest.raises(ValueError, match=r"x\.jsonl:7: field 'question' must be 'cause' or 'effect'"):
        get_task("copa").to_examples({**record, "question": "why"}, W)


def test_multirc_gives_one_binary_example_per_answer_grouped_by_question():
    record = {"idx": 3, "passage": {"text": "P.", "questions": [
        {"question": "Q1?", "idx": 10, "answers": [{"text": "a", "idx": 0, "label": 1}, {"text": "b", "idx": 1, "label": 0}]},
        {"question": "Q2?", "idx": 11, "answers": [{"text": "c", "idx": 2, "label": 0}]},
    ]}}
    examples = get_task("multirc").to_examples(record, W, "train")
    assert [(e.text_a, e.text_b, e.label, e.group) for e in examples] == [
        ("P.", "Q1? a", 1, 10), ("P.", "Q1? b", 0, 10), ("P.", "Q2? c", 0, 11)]
    assert examples[2].uid == "multirc/train/3/11/2"
    del record["passage"]["questions"][1]["answers"][0]["text"]
    with pytest.raises(ValueError, match=r"x\.jsonl:7: missing field 'passage\.questions\[1\]\.answers\[0\]\.text'"):
        get_task("multirc").to_examples(record, W)


def test_wic_shows_both_sentences_and_the_target_word():
    record = {"word": "class", "sentence1": "An emerging professional class.",
              "sentence2": "It showed real class.", "idx": 0, "label": False}
    (ex,) = get_task("wic").to_examples(record, W)
    assert (ex.text_a, ex.text_b, ex.label) == ("An emerging professional class.", "class: It showed real class.", 0)


def test_wsc_marks_both_spans_by_token_index():
    record = {"text": "Mark told Pete many lies about himself. He should have been more skeptical.",
              "target": {"span1_index": 0, "span2_index": 7, "span1_text": "Mark", "span2_text": "He"},
              "idx": 0, "label": False}
    (ex,) = get_task("wsc").to_examples(record, W)
    assert ex.text_a == "*Mark* told Pete many lies about himself. #He# should have been more skeptical."
    assert ex.text_b == "Does #He# refer to *Mark*?"
    multi = {**record, "target": {**record["target"], "span1_index": 2, "span1_text": "Pete many\nlies"}}
    (ex,) = get_task("wsc").to_examples(multi, W)
    assert ex.text_a.startswith("Mark told *Pete many lies* about")
    assert ex.text_b == "Does #He# refer to *Pete many lies*?"
    with pytest.raises(ValueError, match=r"x\.jsonl:7: field 'target\.span2_index' = 99 is outside the text"):
        get_task("wsc").to_examples({**record, "target": {**record["target"], "span2_index": 99}}, W)
    with pytest.raises(ValueError, match=r"x\.jsonl:7: missing field 'target\.span1_text'"):
        get_task("wsc").to_examples({**record, "target": {"span1_index": 0, "span2_index": 7}}, W)


def test_missing_top_level_field_names_file_line_and_field():
    with pytest.raises(ValueError, match=r"x\.jsonl:7: missing field 'hypothesis'"):
        get_task("rte").to_examples({"premise": "p", "idx": 0, "label": "entailment"}, W)


def test_unlabeled_record_gives_label_none():
    (ex,) = get_task("cb").to_examples({"premise": "p", "hypothesis": "h", "idx": 4}, W, "test")
    assert ex.label is None and ex.uid == "cb/test/4"


# ------------------------------------------------------------------------ real files


@pytest.mark.parametrize("name", list(TASKS))
def test_real_files_reach_every_label(data_dir, name):
    task = get_task(name)
    for split in ("val", "fewglue_dev32") + (("train",) if name != "boolq" else ()):
        examples = load_split(task, split, str(data_dir))
        assert {e.label for e in examples} == set(range(task.num_labels)), split
    if name != "multirc":  # everywhere else a group is one record: unique
        val = load_split(task, "val", str(data_dir))
        assert len({e.group for e in val}) == len(val)


def test_real_wsc_marks_every_example_including_quirks(data_dir):
    task = get_task("wsc")
    for split in ("train", "val", "test"):
        for ex in load_split(task, split, str(data_dir)):
            assert ex.text_a.count("*") >= 2 and ex.text_a.count("#") >= 2, ex.uid
            assert ex.text_b.startswith("Does #") and "\n" not in ex.text_b


def test_real_wic_and_copa_inputs_contain_what_matters(data_dir):
    for ex, rec in zip(load_split(get_task("wic"), "val", str(data_dir)),
                       _raw(data_dir / "WiC" / "val.jsonl"), strict=True):
        assert ex.text_a == rec["sentence1"] and ex.text_b == f"{rec['word']}: {rec['sentence2']}"
    for ex, rec in zip(load_split(get_task("copa"), "val", str(data_dir)),
                       _raw(data_dir / "COPA" / "val.jsonl"), strict=True):
        assert rec["choice1"].rstrip(".") in ex.text_b and rec["choice2"].rstrip(".") in ex.text_b
        assert rec["question"] in ex.text_b and ex.text_a == rec["premise"]


def _raw(path):
    from dp_bench.data.readers import read_jsonl

    return read_jsonl(path)
