"""Where SuperGLUE records come from: a local folder of official jsonl files, or the
Hugging Face hub.

Local layout (the official release plus FewGLUE, Schick & Schütze 2021,
https://github.com/timoschick/fewglue)::

    <data_dir>/<Task>/{train,val,test}.jsonl
    <data_dir>/fewglue/<Task>/{train,dev32}.jsonl

Hub rows are reshaped into the jsonl layout first, so both sources give identical
``Example`` lists (same texts, labels, groups and uids).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from dp_bench.data.tasks import Example, TaskSpec

Split = Literal["train", "val", "test", "fewglue_train", "fewglue_dev32"]
SPLITS: tuple[str, ...] = ("train", "val", "test", "fewglue_train", "fewglue_dev32")
LABELED_SPLITS = frozenset({"train", "val", "fewglue_train", "fewglue_dev32"})

# The canonical "super_glue" dataset needed a loading script, which datasets>=4 no longer
# runs; its maintained parquet copy lives under this name.
# https://github.com/huggingface/datasets/issues/7693
HF_DATASET = "aps/super_glue"
_HF_SPLITS = {"train": "train", "val": "validation", "test": "test"}

ENV_VAR = "DP_BENCH_DATA"


def resolve_data_dir(value: str | None) -> str | None:
    """The data folder: ``value`` if set, else ``$DP_BENCH_DATA``, else None (the hub).

    Raises:
        ValueError: when the chosen folder does not exist (naming where it came from).
    """
    origin = "data_dir"
    if not value:
        value, origin = os.environ.get(ENV_VAR) or None, ENV_VAR
    if value is None:
        return None
    if not Path(value).is_dir():
        raise ValueError(f"{origin}={value!r} is not a directory")
    return value


def split_path(task: TaskSpec, split: Split, data_dir: str) -> Path:
    """The jsonl file of one split in the local layout."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {', '.join(SPLITS)}")
    if split.startswith("fewglue_"):
        return Path(data_dir) / "fewglue" / task.dir_name / f"{split.removeprefix('fewglue_')}.jsonl"
    return Path(data_dir) / task.dir_name / f"{split}.jsonl"


def split_source(task: TaskSpec, split: Split, data_dir: str | None) -> str:
    """A readable description of where a split is read from (for run records)."""
    if data_dir is None:
        return f"hf://{HF_DATASET}/{task.hf_config}/{_HF_SPLITS.get(split, split)}"
    return str(split_path(task, split, data_dir))


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (what ``sha256sum`` prints), so a record names the exact data it read."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)`` for each non-blank line (1-based line numbers).

    Raises:
        ValueError: naming the file when it is missing, and file:line for malformed JSON
            or a line that is not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            yield lineno, record


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All records of a jsonl file (blank lines skipped); errors as in ``iter_jsonl``."""
    return [record for _, record in iter_jsonl(path)]


def load_split(task: TaskSpec, split: Split, data_dir: str | None) -> list[Example]:
    """Read one split of one task as ``Example``s.

    Args:
        task: the task.
        split: ``train``/``val``/``test`` (official), or ``fewglue_train``/``fewglue_dev32``.
        data_dir: local folder in the official layout; None reads the Hugging Face hub
            (official splits only; FewGLUE exists only as files).

    Raises:
        ValueError: for a missing split file (for BoolQ train: how to provide it or train
            few-shot instead), malformed lines, missing fields, unknown labels, or a labeled
            split with an unlabeled record.
    """
    if data_dir is None:
        rows = _hub_records(task, split)
    else:
        path = split_path(task, split, data_dir)
        if not path.is_file():
            raise ValueError(_missing_split_message(task, split, path))
        rows = ((f"{path}:{lineno}", record) for lineno, record in iter_jsonl(path))
    examples: list[Example] = []
    for where, record in rows:
        cast = task.to_examples(record, where, split)
        if split in LABELED_SPLITS and any(e.label is None for e in cast):
            raise ValueError(f"{where}: missing field 'label' (split {split} must be labeled)")
        examples.extend(cast)
    return examples


def _missing_split_message(task: TaskSpec, split: str, path: Path) -> str:
    msg = f"task {task.name}: split {split!r} not found: {path} does not exist"
    if task.name == "boolq" and split == "train":
        # The one official file missing from the shared copy (see its README): say how to
        # get going rather than only what is wrong.
        msg += (
            ". The official BoolQ train.jsonl (9427 examples) is not in this data folder. "
            f"Either put it at {path}, or point data.data_dir / ${ENV_VAR} at a folder that "
            "has BoolQ/train.jsonl; or train few-shot on the FewGLUE BoolQ set, which is "
            "present: --config experiments/regimes/few_shot.yaml --data.few_shot_source fewglue"
        )
    return msg


# ----------------------------------------------------------------------------- the hub


def _hub_records(task: TaskSpec, split: str) -> list[tuple[str, dict[str, Any]]]:
    """Hub rows of one split in the jsonl layout, as ``(where, record)`` pairs."""
    if split not in _HF_SPLITS:
        raise ValueError(
            f"task {task.name}: split {split!r} exists only as local FewGLUE files; set "
            f"data.data_dir or ${ENV_VAR} to a folder with fewglue/{task.dir_name}/"
        )
    import datasets  # deferred: only hub users pay for the import

    try:
        rows = datasets.load_dataset(HF_DATASET, task.hf_config, split=_HF_SPLITS[split])
    except ConnectionError as err:  # no network, or HF_HUB_OFFLINE=1 with nothing cached
        raise ValueError(
            f"task {task.name}: no data folder is set, and split {split!r} could not be read from the "
            f"Hugging Face hub ({HF_DATASET}, {task.hf_config}): {err}. Without a network, point "
            f"data.data_dir or ${ENV_VAR} at a folder in the official SuperGLUE jsonl layout "
            f"(<Task>/train.jsonl, val.jsonl, test.jsonl)"
        ) from err
    source = split_source(task, split, None)  # type: ignore[arg-type]
    reshape = _HUB_RESHAPERS.get(task.name, _hub_flat)
    return reshape(task, [dict(row) for row in rows], source)


def _hub_label(task: TaskSpec, row: Mapping[str, Any]) -> dict[str, Any]:
    """Hub labels are class indices with -1 for unlabeled rows; map back to raw values."""
    label = row.get("label", -1)
    return {} if label < 0 else {"label": task.raw_labels[label]}


def _hub_flat(task: TaskSpec, rows: list[dict[str, Any]], source: str) -> list[tuple[str, dict[str, Any]]]:
    """Tasks whose hub rows already have the jsonl field names (all but WSC, MultiRC)."""
    return [
        (f"{source}:row {i}", {**{k: v for k, v in row.items() if k != "label"}, **_hub_label(task, row)})
        for i, row in enumerate(rows)
    ]


def _hub_wsc(task: TaskSpec, rows: list[dict[str, Any]], source: str) -> list[tuple[str, dict[str, Any]]]:
    """The hub flattens WSC's ``target`` object; nest it again."""
    keys = ("span1_index", "span2_index", "span1_text", "span2_text")
    out = []
    for i, row in enumerate(rows):
        record = {"text": row["text"], "target": {k: row[k] for k in keys}, "idx": row["idx"]}
        out.append((f"{source}:row {i}", {**record, **_hub_label(task, row)}))
    return out


def _hub_multirc(task: TaskSpec, rows: list[dict[str, Any]], source: str) -> list[tuple[str, dict[str, Any]]]:
    """The hub has one row per answer option; rebuild passages -> questions -> answers."""
    passages: dict[int, dict[str, Any]] = {}
    questions: dict[int, dict[str, Any]] = {}
    for row in rows:
        ids = row["idx"]
        p = passages.setdefault(
            ids["paragraph"], {"idx": ids["paragraph"], "passage": {"text": row["paragraph"], "questions": []}}
        )
        if ids["question"] not in questions:
            questions[ids["question"]] = {"question": row["question"], "answers": [], "idx": ids["question"]}
            p["passage"]["questions"].append(questions[ids["question"]])
        answer = {"text": row["answer"], "idx": ids["answer"], **_hub_label(task, row)}
        questions[ids["question"]]["answers"].append(answer)
    return [(f"{source}:paragraph {k}", v) for k, v in passages.items()]


_HUB_RESHAPERS: dict[str, Callable[[TaskSpec, list[dict[str, Any]], str], list[tuple[str, dict[str, Any]]]]] = {
    "wsc": _hub_wsc,
    "multirc": _hub_multirc,
}
