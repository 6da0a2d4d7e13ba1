"""SuperGLUE data: task specs, readers (jsonl folder or hub) and the Lightning DataModule."""

from dp_bench.data.datamodule import (
    EncodedSplit,
    SuperGLUEDataModule,
    collate_rows,
    encode_examples,
)
from dp_bench.data.readers import load_split, read_jsonl, resolve_data_dir
from dp_bench.data.tasks import TASKS, Example, TaskSpec, get_task

__all__ = [
    "TASKS",
    "EncodedSplit",
    "Example",
    "SuperGLUEDataModule",
    "TaskSpec",
    "collate_rows",
    "encode_examples",
    "get_task",
    "load_split",
    "read_jsonl",
    "resolve_data_dir",
]
