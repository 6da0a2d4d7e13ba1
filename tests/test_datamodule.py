"""SuperGLUEDataModule: validation, selection protocols, encoding, batching and mixing."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
import torch

from dp_bench.data import datamodule as dm_module
from dp_bench.data.datamodule import SuperGLUEDataModule, collate_rows, encode_examples
from dp_bench.data.mixing import MixedTaskBatchSampler, TaskBatches, mixing_rates
from dp_bench.data.tasks import Example, get_task


@pytest.fixture
def make(data_dir):
    def build(**kwargs) -> SuperGLUEDataModule:
        return SuperGLUEDataModule(data_dir=str(data_dir), **kwargs)

    return build


@pytest.fixture(scope="module")
def tokenizer():
    return dm_module._backbone_api()[0]("all-MiniLM-L6-v2")


def _content(examples):
    return {(e.text_a, e.text_b) for e in examples}


# ------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"tasks": []}, r"tasks=\[\] is empty; name at least one of boolq, cb"),
    ({"tasks": ["cb", "glue"]}, r"unknown task 'glue'; choose from boolq, cb, copa, rte, wic, multirc, wsc"),
    ({"tasks": ["cb", "cb"], "regime": "multitask"}, r"names a task twice"),
    ({"tasks": ["cb", "rte"]}, r"regime='full' trains one task, got tasks=\['cb', 'rte'\]; use regime: multitask"),
    ({"regime": "zero_shot"}, r"regime='zero_shot' is not one of full, few_shot, multitask"),
    ({"selection": "test"}, r"selection='test' is not one of val, train_holdout"),
    ({"max_length": 4}, r"max_length=4 must be >= 8"),
    ({"holdout_fraction": 1.0}, r"holdout_fraction=1.0 must be in \(0, 1\)"),
    ({"limit_eval_examples": 0}, r"limit_eval_examples=0 must be >= 1"),
])
def test_init_rejects_bad_values_naming_field_and_value(make, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_task_specs_and_head_kind_are_ready_after_init(make):
    dm = make(tasks=["cb", "rte", "wic"], regime="multitask")
    assert [t.name for t in dm.task_specs] == ["cb", "rte", "wic"]
    assert dm.head_kind == "encoder"
    assert dm._roles == {}  # nothing read or tokenised yet


def test_boolq_full_regime_explains_the_missing_train_file(make):
    dm = make(tasks=["boolq"])
    with pytest.raises(ValueError, match=r"BoolQ/train\.jsonl does not exist.*few_shot\.yaml"):
        dm.setup("fit")
    dm.setup("validate")  # evaluation alone does not need train
    assert len(dm.encoded("val")[0]) == 3270


# --------------------------------------------------------------------------- few-shot


def test_few_shot_sample_draws_exactly_k_per_label_seeded_and_disjoint_from_val(make):
    def shots(seed):
        return make(tasks=["rte"], regime="few_shot", shots_per_label=8, seed=seed).examples("rte", "train")[0]

    a, b, c = shots(0), shots(0), shots(1)
    assert Counter(e.label for e in a) == {0: 8, 1: 8}
    assert a == b and {e.uid for e in a} != {e.uid for e in c}
    assert all(e.uid.startswith("rte/train/") for e in a)
    val = make(tasks=["rte"], regime="few_shot", shots_per_label=8).examples("rte", "val")[0]
    assert len(val) == 277 and not _content(a) & _content(val)


def test_few_shot_k_larger_than_a_class_names_class_count_and_k(make):
    dm = make(tasks=["cb"], regime="few_shot", shots_per_label=17)
    with pytest.raises(ValueError, match=r"task cb has 16 examples of class 'neutral' in .*CB/train\.jsonl, fewer than shots_per_label=17"):
        dm.examples("cb", "train")


def test_few_shot_sample_with_holdout_draws_a_second_disjoint_set(make):
    dm = make(tasks=["wsc"], regime="few_shot", shots_per_label=16, selection="train_holdout")
    train, held, test = (dm.examples("wsc", r)[0] for r in ("train", "val", "test"))
    assert Counter(e.label for e in held) == {0: 16, 1: 16}
    assert not {e.uid for e in train} & {e.uid for e in held}
    assert len(test) == 104  # val.jsonl, reported once


@pytest.mark.parametrize(("name", "n_train", "n_dev"), [("cb", 32, 32), ("multirc", 154, 167), ("boolq", 32, 32)])
def test_fewglue_source_sizes(make, name, n_train, n_dev):
    dm = make(tasks=[name], regime="few_shot", few_shot_source="fewglue", selection="train_holdout")
    train, src = dm.examples(name, "train")
    assert len(train) == n_train and src.endswith(f"fewglue/{get_task(name).dir_name}/train.jsonl")
    assert len(dm.examples(name, "val")[0]) == n_dev  # dev32 selects the model
    assert dm.examples(name, "test")[1].endswith(f"{get_task(name).dir_name}/val.jsonl")
    plain = make(tasks=[name], regime="few_shot", few_shot_source="fewglue")
    assert plain.examples(name, "val")[1] == plain.examples(name, "test")[1]


# ----------------------------------------------------------------------------- holdout


def test_train_holdout_is_disjoint_seeded_and_val_becomes_test(make):
    def split(seed):
        dm = make(tasks=["rte"], selection="train_holdout", seed=seed)
        return [dm.examples("rte", r)[0] for r in ("train", "val", "test")]

    train, held, test = split(0)
    assert len(held) == 249 and len(train) == 2490 - 249
    assert not {e.uid for e in train} & {e.uid for e in held}
    assert [e.uid for e in test] == [e.uid for e in split(0)[2]] and test[0].uid.startswith("rte/val/")
    assert [e.uid for e in held] == [e.uid for e in split(0)[1]]
    assert {e.uid for e in held} != {e.uid for e in split(1)[1]}


def test_multirc_holdout_keeps_questions_whole(make):
    dm = make(tasks=["multirc"], selection="train_holdout")
    train, held = dm.examples("multirc", "train")[0], dm.examples("multirc", "val")[0]
    assert len(train) + len(held) == 27243
    assert not {e.group for e in train} & {e.group for e in held}
    assert len({e.group for e in held}) == round(0.1 * 5131)


# ---------------------------------------------------------------------------- encoding


def test_encoded_inputs_contain_what_matters(make, tokenizer):
    dm = make(tasks=["wic"], limit_eval_examples=20)
    for (ex, ids) in zip(dm.examples("wic", "val")[0], dm.encoded("val")[0].input_ids, strict=True):
        text = tokenizer.decode(ids)
        assert text.startswith("[CLS]") and text.endswith("[SEP]")
        for part in (ex.text_a, ex.text_b.split(": ", 1)[0], ex.text_b.split(": ", 1)[1]):
            assert tokenizer.decode(tokenizer(part, add_special_tokens=False)["input_ids"]) in text
    wsc = make(tasks=["wsc"], limit_eval_examples=10)
    for ids in wsc.encoded("val")[0].input_ids:
        text = tokenizer.decode(ids)
        assert text.count("*") >= 4 and text.count("#") >= 4 and "refer to" in text


def _long_example():
    return Example("passage " * 300, "is the question kept whole?", 1, 0, "x/0")


@pytest.mark.parametrize("kind", ["encoder", "seq2seq", "causal"])
def test_truncation_cuts_text_a_and_keeps_text_b(tokenizer, kind):
    task = get_task("boolq")
    (ids,), cut_a, cut_b = encode_examples(tokenizer, kind, task, [_long_example()], 64)
    assert (len(ids), cut_a, cut_b) == (64, 1, 0)
    text = tokenizer.decode(ids)
    assert "is the question kept whole?" in text and "passage passage" in text
    expected_end = {"encoder": "whole? [SEP]", "seq2seq": "whole? [SEP]", "causal": "answer : [SEP]"}[kind]
    assert text.replace(" ?", "?").endswith(expected_end)
    if kind == "seq2seq":
        assert text.startswith("[CLS] boolq passage")
    (short,), cut_a, _ = encode_examples(tokenizer, kind, task, [Example("a b", "c", 0, 0, "x/1")], 64)
    assert cut_a == 0 and len(short) < 64


def test_text_b_longer_than_max_length_keeps_first_and_last_tokens(tokenizer):
    ex = Example("short", "question " * 100 + "end", 0, 0, "x/0")
    (ids,), cut_a, cut_b = encode_examples(tokenizer, "encoder", get_task("boolq"), [ex], 32)
    assert (len(ids), cut_a, cut_b) == (32, 1, 1)
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.decode(ids[-2:]) == "end [SEP]"


def test_tokenises_once_per_run(make, monkeypatch):
    calls = []
    real = dm_module.encode_examples
    monkeypatch.setattr(dm_module, "encode_examples", lambda *a, **k: calls.append(1) or real(*a, **k))
    dm = make(tasks=["cb"])
    dm.setup("fit")
    dm.setup("validate")
    dm.setup("test")  # test is val.jsonl here: shares the encoded rows
    list(dm.train_dataloader()), list(dm.train_dataloader())
    assert len(calls) == 2
    assert dm.encoded("test")[0] is dm.encoded("val")[0]


# ---------------------------------------------------------------------------- batching


def test_collate_right_pads_and_marks_the_last_real_token():
    rows = [{"input_ids": torch.tensor(ids), "labels": torch.tensor(lab), "example_idx": i,
             "group_idx": torch.tensor(10 + i), "task_idx": 0}
            for i, (ids, lab) in enumerate([([101, 7, 8, 102], 1), ([101, 102], -1), ([101, 5, 102], 0)])]
    batch = collate_rows(rows, pad_id=0)
    assert batch["input_ids"].tolist() == [[101, 7, 8, 102], [101, 102, 0, 0], [101, 5, 102, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]]
    last = batch["attention_mask"].sum(1) - 1
    assert batch["input_ids"][torch.arange(3), last].tolist() == [102, 102, 102]
    assert batch["labels"].tolist() == [1, -1, 0] and batch["group_idx"].tolist() == [10, 11, 12]
    assert all(v.dtype == torch.long for v in batch.values())


def test_batches_carry_indices_and_the_train_order_is_seeded(make):
    dm = make(tasks=["cb"], batch_size=8, eval_batch_size=8)
    batch = next(iter(dm.val_dataloader()))
    assert set(batch) == {"input_ids", "attention_mask", "labels", "example_idx", "group_idx", "task_idx"}
    assert batch["example_idx"].tolist() == list(range(8)) and batch["task_idx"].tolist() == [0] * 8
    last = batch["attention_mask"].sum(1) - 1
    assert (batch["input_ids"][torch.arange(8), last] == dm.tokenizer.sep_token_id).all()
    first = [next(iter(make(tasks=["cb"], batch_size=8, seed=s).train_dataloader()))["example_idx"].tolist() for s in (0, 0, 1)]
    assert first[0] == first[1] != first[2] and first[0] != list(range(8))
    loader = dm.train_dataloader()
    epoch0, epoch1 = (next(iter(loader))["example_idx"].tolist() for _ in range(2))
    assert epoch0 != epoch1  # a new shuffle each epoch


def test_each_role_serves_its_own_rows_when_val_and_test_share_a_file(make):
    dm = make(tasks=["cb"], limit_eval_examples=10)  # selection on val.jsonl: test reads it too
    for role in ("val", "test"):
        assert dm.encoded(role)[0].uids == [e.uid for e in dm.examples("cb", role)[0]]
    unlimited = make(tasks=["cb"])
    assert unlimited.encoded("val")[0] is unlimited.encoded("test")[0]  # the same rows: encoded once


def test_predict_serves_the_unlabeled_test_split(make):
    dm = make(tasks=["cb"], limit_eval_examples=10)
    batch = next(iter(dm.predict_dataloader()))
    assert batch["labels"].tolist() == [-1] * 10


def test_data_info_records_what_was_used(make):
    dm = make(tasks=["cb"], regime="few_shot", shots_per_label=4, seed=3)
    dm.setup("fit")
    info = dm.data_info
    assert (info["regime"], info["few_shot_source"], info["shots_per_label"], info["seed"]) == ("few_shot", "sample", 4, 3)
    train = info["tasks"]["cb"]["train"]
    assert train["size"] == 12 and "CB/train.jsonl, 4 per label (seed 3)" in train["source"]
    assert info["tasks"]["cb"]["val"]["size"] == 56
    assert 0.0 <= train["truncation_rate"] <= 1.0


# ------------------------------------------------------------------------------ mixing


@pytest.mark.parametrize(("rule", "expected"), [
    ("proportional", [100 / 1100, 300 / 1100, 700 / 1100]),  # 2000 capped at 700
    ("temperature", [v / sum(math.sqrt(n) for n in (100, 300, 700)) for v in map(math.sqrt, (100, 300, 700))]),
])
def test_mixer_draws_tasks_at_the_configured_rates(rule, expected):
    sizes = [100, 300, 2000]
    rates = mixing_rates(sizes, rule, cap=700, temperature=2.0)
    assert rates == pytest.approx(expected)
    sampler = MixedTaskBatchSampler(sizes, batch_size=4, rates=rates, seed=0)
    offsets = [0, 100, 400]
    counts = Counter()
    for epoch in range(4):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 25 + 75 + 500
        for batch in batches:
            task = max(t for t in range(3) if batch[0] >= offsets[t])
            assert all(offsets[task] <= i < offsets[task] + sizes[task] for i in batch)  # one task
            assert len(set(batch)) == len(batch) == 4
            counts[task] += 1
    total = sum(counts.values())
    for task in range(3):
        assert counts[task] / total == pytest.approx(expected[task], abs=0.02)


def test_mixer_is_seeded_and_covers_small_tasks():
    sampler = MixedTaskBatchSampler([3, 50], batch_size=8, rates=[0.5, 0.5], seed=1)
    assert list(sampler) != list(sampler)  # epochs differ
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(0)
    assert list(sampler) == first
    small = [b for b in first if b[0] < 3]
    assert small and all(sorted(b) == [0, 1, 2] for b in small)  # capped at the task size


def test_eval_batches_are_single_task_and_in_task_order():
    assert list(TaskBatches([3, 0, 2], batch_size=2)) == [[0, 1], [2], [3, 4]]


def test_multitask_datamodule_batches(make):
    dm = make(tasks=["cb", "rte", "wic"], regime="multitask", batch_size=8, eval_batch_size=8,
              limit_train_examples=40, limit_eval_examples=20, sampling="temperature")
    loader = dm.train_dataloader()
    assert len(loader) == 3 * 5
    for batch in loader:
        assert len(set(batch["task_idx"].tolist())) == 1
    val = [b["task_idx"].tolist() for b in dm.val_dataloader()]
    assert [b[0] for b in val] == [0, 0, 0, 1, 1, 1, 2, 2, 2] and all(len(set(b)) == 1 for b in val)
    assert dm.data_info["sampling"]["rates"] == pytest.approx({"cb": 1 / 3, "rte": 1 / 3, "wic": 1 / 3})
    assert {t: dm.data_info["tasks"][t]["train"]["size"] for t in ("cb", "rte", "wic")} == {"cb": 40, "rte": 40, "wic": 40}


# ------------------------------------------------------------------------ shipped YAML

DATA_CONFIGS = ["tasks/boolq", "tasks/cb", "tasks/copa", "tasks/rte", "tasks/wic", "tasks/multirc", "tasks/wsc",
                "regimes/full", "regimes/few_shot", "regimes/multitask", "multitask_cb_rte_wic"]


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_shipped_data_configs_build_a_datamodule(make, name):
    import yaml

    experiments = Path(__file__).resolve().parents[1] / "experiments"
    config = yaml.safe_load((experiments / f"{name}.yaml").read_text())
    assert set(config) <= {"data", "trainer"}
    data = {"tasks": ["cb"], **config["data"]}  # regimes compose after a task config
    dm = make(**data)
    assert [t.name for t in dm.task_specs] == data["tasks"]


def test_the_record_names_each_file_read_by_its_sha256(make, data_dir):
    dm = make(tasks=["cb"], selection="train_holdout")
    dm.examples("cb", "train"), dm.examples("cb", "test")
    files = dm.data_info["files"]
    assert set(files) == {str(data_dir / "CB" / "train.jsonl"), str(data_dir / "CB" / "val.jsonl")}
    sums = data_dir / "SHA256SUMS"  # the data's own checksums, as sha256sum writes them
    if sums.is_file():
        listed = dict(reversed(line.split(maxsplit=1)) for line in sums.read_text().splitlines() if line.strip())
        assert files[str(data_dir / "CB" / "val.jsonl")] == listed["CB/val.jsonl"]


def test_small_class_takes_all_its_examples_when_asked(make):
    dm = make(tasks=["cb"], regime="few_shot", shots_per_label=32, small_class="all", seed=3)
    dm.setup("fit")
    labels = Counter(int(y) for y in dm.encoded("train")[0].labels)
    assert labels == {0: 32, 1: 32, 2: 16}  # CB train has 16 'neutral'
    assert dm.data_info["short_classes"] == {"cb": {"shots": {"neutral": 16}}}
    # With selection on another k per label, the training shots took every 'neutral': the
    # record says so for each draw (it said 0 for the shots once), and the user is warned.
    dm = make(tasks=["cb"], regime="few_shot", shots_per_label=32, small_class="all", selection="train_holdout")
    with pytest.warns(UserWarning, match="holdout draw of task cb has no examples of class 'neutral'"):
        held = dm.examples("cb", "val")[0]
    assert Counter(e.label for e in held) == {0: 32, 1: 32}
    assert dm.data_info["short_classes"] == {"cb": {"shots": {"neutral": 16}, "holdout": {"neutral": 0}}}


def test_multirc_few_shot_draws_whole_questions_with_at_least_k_per_label(make):
    dm = make(tasks=["multirc"], regime="few_shot", shots_per_label=8, selection="train_holdout")
    shots, source = dm.examples("multirc", "train")
    held = dm.examples("multirc", "val")[0]
    complete = Counter(e.group for e in dm._read(get_task("multirc"), "train")[0])
    for draw in (shots, held):
        counts = Counter(e.label for e in draw)
        assert min(counts[0], counts[1]) >= 8 and len(draw) < 40  # a few questions' worth, not the file
        assert Counter(e.group for e in draw) == {g: complete[g] for g in {e.group for e in draw}}  # every option
    assert not {e.group for e in shots} & {e.group for e in held}
    assert "at least 8 per label in whole groups" in source
    again = make(tasks=["multirc"], regime="few_shot", shots_per_label=8).examples("multirc", "train")[0]
    assert [e.uid for e in again] == [e.uid for e in shots]  # seeded


def test_few_shot_rows_draw_is_the_earlier_exact_k_per_label_draw(make):
    # How paper_fewshot_gpu's MultiRC records were drawn (the grid pins it); other tasks have
    # one row per group, so both draws are this one.
    rows = make(tasks=["multirc"], regime="few_shot", shots_per_label=8, few_shot_draw="rows")
    shots = rows.examples("multirc", "train")[0]
    assert Counter(e.label for e in shots) == {0: 8, 1: 8}
    assert len({e.group for e in shots}) > 8  # options of many questions, some split from their question
    cb = [make(tasks=["cb"], regime="few_shot", shots_per_label=8, few_shot_draw=draw).examples("cb", "train")[0]
          for draw in ("groups", "rows")]
    assert [e.uid for e in cb[0]] == [e.uid for e in cb[1]]
