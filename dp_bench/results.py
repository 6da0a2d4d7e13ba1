"""Run records: one JSON file per run (gzip-compressed from grids), written atomically, read back into a DataFrame.

A record is the only source of every number in ``results/tables`` (peft's
``method_comparison`` habit): it carries the metrics with the epoch/step they come from,
the fully resolved config, git SHA, package versions, seed and wall time.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import re
import subprocess
import tempfile
from importlib import metadata
from itertools import zip_longest
from pathlib import Path
from typing import Any

import pandas as pd

SCHEMA_VERSION = 1
REQUIRED_KEYS = ("task", "method", "backbone", "regime", "seed", "metrics", "config", "git_sha", "versions", "wall_time_s")
# What can change a run's numbers: the stack, and what it computes or reads with (tokenizers,
# numpy, gguf for the dequantised SmolLM2 weights).
PACKAGES = ("torch", "lightning", "transformers", "datasets", "torchmetrics", "wandb", "jsonargparse", "dp-bench",
            "tokenizers", "numpy", "gguf")


# A record is ``<stem>.json``, or ``<stem>.json.gz`` gzip-compressed (what grids write: see
# :func:`write_json_atomic`); readers take either.
RECORD_SUFFIXES = (".json.gz", ".json")


def record_stem(path: str | Path) -> str:
    """``.../<stem>.json.gz`` or ``.../<stem>.json`` -> ``<stem>``: the run, whichever the format."""
    name = Path(path).name
    return next((name[: -len(s)] for s in RECORD_SUFFIXES if name.endswith(s)), Path(path).stem)


def record_files(folder: str | Path, recursive: bool = True) -> list[Path]:
    """The records under ``folder`` (sorted; hidden files, such as write_json_atomic's temp files, left out)."""
    folder = Path(folder)
    found = (folder.rglob if recursive else folder.glob)("*.json*")
    return sorted(p for p in found if p.name.endswith(RECORD_SUFFIXES) and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def checkpoint_dir(record_path: str | Path) -> Path:
    """Where the fit that writes ``record_path`` keeps its checkpoints (``last.ckpt`` resumes).

    ``results/runs/<grid>/<stem>.json.gz`` -> ``checkpoints/<grid>/<stem>``: one folder per
    record, so runs of different grids never share a ``last.ckpt``.
    """
    record_path = Path(record_path)
    return Path("checkpoints") / record_path.parent.name / record_stem(record_path)


# A list of numbers or strings with nothing nested: what json.dumps(indent=1) spreads over one
# line per element.
_FLAT_LIST = re.compile(r"\[\n[^\[\]{}]*?\n *\]")


def dumps_json(payload: Any) -> str:
    """JSON for people and for transfer: objects indented one key a line, flat lists on one line.

    ``json`` indents every container or none; records hold thousands of per-example
    predictions, and one line per number doubled their size (every record travels in the
    64 MiB a GPU-machine call carries), hence this small rewrite of ``json.dumps``'s output.
    A JSON string holds no raw newline, so splitting a flat list on ",\n" never cuts one.
    """
    text = json.dumps(payload, indent=1, sort_keys=False, default=str)
    return _FLAT_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m[0][1:-1].split(",\n")) + "]", text)


def write_json_atomic(path: str | Path, payload: Any) -> Path:
    """Write JSON (:func:`dumps_json`) so a reader never sees half a file: temp file in the same folder, then rename.

    A path ending in ``.gz`` gets the JSON gzip-compressed, with no timestamp inside (the same
    payload gives the same bytes). Grid records are written so: their per-example predictions
    compress about five-fold, and every tracked record travels in the 64 MiB of a GPU-machine
    call, beside the backbone's weights.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dumps_json(payload).encode()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; records are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def git_state(cwd: str | Path | None = None) -> dict[str, Any]:
    """Commit SHA and whether the work tree had uncommitted changes outside ``results/`` (None outside git).

    ``DP_BENCH_GIT_SHA``, when set, wins: it is for copies of a committed tree (a lent GPU
    machine gets one, with a stale ``.git`` beside it that would name an older commit and
    call the tree dirty). ``git_dirty`` is then None: nothing here can check the copy.
    """
    def run(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    if os.environ.get("DP_BENCH_GIT_SHA"):
        return {"git_sha": os.environ["DP_BENCH_GIT_SHA"], "git_dirty": None}
    sha = run("rev-parse", "HEAD")
    # results/ holds outputs, never inputs of a run: rerunning a committed record rewrites
    # that record (and its logs), which must not make its own run look dirty.
    status = run("status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)results")
    return {"git_sha": sha, "git_dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    return versions


def versions_that_differ(recorded: dict[str, str | None], here: dict[str, str | None]) -> list[str]:
    """``"name recorded -> here"`` for each package both version dicts name with another version;
    a package one side lacks (None: not installed, or not recorded then) is not a difference."""
    return [f"{name} {recorded[name]} -> {here[name]}" for name in sorted(recorded.keys() & here.keys())
            if None not in (recorded[name], here[name]) and recorded[name] != here[name]]


def read_json_text(path: str | Path) -> str:
    """The JSON text of a file :func:`write_json_atomic` wrote (decompressed where the name ends in ``.gz``)."""
    path = Path(path)
    return gzip.decompress(path.read_bytes()).decode() if path.name.endswith(".gz") else path.read_text()


def read_record(path: str | Path) -> dict[str, Any]:
    """One record; ValueError naming the file when it does not parse or lacks keys."""
    path = Path(path)
    try:
        record = json.loads(read_json_text(path))
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as err:  # BadGzipFile is an OSError
        raise ValueError(f"{path}: not a readable run record ({err})") from err
    if not isinstance(record, dict):
        raise ValueError(f"{path}: not a readable run record (top level is not an object)")
    missing = [k for k in REQUIRED_KEYS if k not in record] if record.get("status", "finished") == "finished" else []
    if missing:
        raise ValueError(f"{path}: run record lacks {', '.join(missing)}")
    return record


# ---------------------------------------------------------------- reading many records

IDENTITY_KEYS = ("task", "method", "backbone", "regime", "seed")
STATUSES = ("finished", "failed", "interrupted")
DECISIONS = ("position", "length", "pool")  # per-example choices of the dynamic policies
# One row per (record, evaluated task); metric columns (score, acc, ...) follow these.
RESULT_COLUMNS = (
    "file", "status", "error", "grid", "run_task", "task", "method", "backbone", "regime", "seed", "setting",
    "selected_epoch", "selected_step", "monitor", "selection_score", "wall_time_s", "trainable_parameters", "finished_at",
    "machine", "prompt", "decisions", "report", "predictions", "protocol",
)
PREDICTION_KEYS = ("example_idx", "group_idx", "label", "pred")
# What else must agree for runs of different regimes (a multitask run and the single-task runs
# of its tasks) to be compared: the training budget, the inputs, the selection protocol, and the
# method's whole model config (prompt, learning rates); not the task list nor the mixing.
PROTOCOL_KEYS = (("trainer", "max_epochs"), ("data", "max_length"), ("data", "batch_size"),
                 ("data", "selection"), ("data", "holdout_fraction"))


TEST_PENDING = "fit done; val.jsonl not yet evaluated at the selected checkpoint (the test after fit)"


def first_difference(record: dict[str, Any], rerun: dict[str, Any]) -> str | None:
    """Where a rerun departs from its record beyond the reported numbers: the first epoch whose
    validation metrics differ, or whose trained weights differ (``trainable_sha256``, where both
    have it), else the selected epoch's or the test's per-example predictions (equal reported
    scores can hide both); None when everything is equal."""
    history = zip_longest(record.get("history") or [], rerun.get("history") or [])
    for old, new in history:
        if old is None or new is None or old["metrics"] != new["metrics"]:
            return f"epoch {(old or new)['epoch']}'s validation metrics"
        if None not in (old.get("trainable_sha256"), new.get("trainable_sha256")) and \
                old["trainable_sha256"] != new["trainable_sha256"]:
            return f"epoch {old['epoch']}'s trained weights, its metrics equal"
    if (record.get("selected") or {}).get("predictions") != (rerun.get("selected") or {}).get("predictions"):
        return "the selected epoch's predictions"
    if record.get("test_predictions") != rerun.get("test_predictions"):
        return "the test predictions"
    return None


def weights_compared(record: dict[str, Any], rerun: dict[str, Any]) -> bool:
    """Whether ``first_difference`` compared the trained weights at every epoch: records
    older than ``trainable_sha256`` can only be compared by their metrics and predictions."""
    pairs = list(zip_longest(record.get("history") or [], rerun.get("history") or [], fillvalue={}))
    return bool(pairs) and all(old.get("trainable_sha256") and new.get("trainable_sha256") for old, new in pairs)


def record_status(record: dict[str, Any]) -> str:
    """A record's status, where a fit that selects on a train holdout counts as finished only
    once its test on val.jsonl is in: without it the record holds holdout numbers alone (a
    process killed during that test, before records said so themselves)."""
    status = record.get("status", "finished")
    selection = ((record.get("config") or {}).get("data") or {}).get("selection")
    if status == "finished" and selection == "train_holdout" and not record.get("test"):
        return "interrupted"
    return status


def training_protocol(config: dict[str, Any] | None) -> str:
    """A record's training protocol as canonical JSON (equal strings: comparable runs).

    ``model.lr_scale`` counts as 1.0 where a record predates it; the backbone is left out (it
    is an identity key of every record already).
    """
    config = config or {}
    model_config = config.get("model") or {}
    model = {k: v for k, v in model_config.items() if k not in ("backbone", "lr_scale")}
    model["lr_scale"] = model_config.get("lr_scale") or 1.0
    fields = {f"{section}.{key}": (config.get(section) or {}).get(key) for section, key in PROTOCOL_KEYS}
    return json.dumps({**fields, "model": model}, sort_keys=True, default=str)


def machine_kind(record: dict[str, Any]) -> str:
    """The kind of machine a record ran on: its GPU's name, or ``CPU`` (``unknown``: no ``machine``)."""
    machine = record.get("machine")
    if not isinstance(machine, dict):
        return "unknown"
    return machine.get("gpu") or "CPU"


def record_rows(record: dict[str, Any], path: str | Path) -> list[dict[str, Any]]:
    """The rows of one record: one per task it evaluates, metrics at the selected epoch.

    The reported numbers are those of the checkpoint model selection chose: ``test`` (val.jsonl
    evaluated once, after selection on a split of train: ``report="test"``) when the record
    has it, else ``selected.metrics`` (selection and report on the same val.jsonl, as in the
    paper: ``report="selection"``); never the per-metric bests in ``metrics``, which may come
    from different epochs. ``predictions`` holds the reported set's per-example labels and
    predictions. ``setting`` names the grid's search setting ("" for the grid as configured);
    ``selection_score`` is the monitored score at the selected checkpoint, on the
    model-selection split (what a hyperparameter search may look at). Raises ValueError
    naming the file when an identity key or the status is wrong.
    """
    missing = [k for k in IDENTITY_KEYS if record.get(k) is None]
    if missing:
        raise ValueError(f"{path}: run record lacks {', '.join(missing)}")
    status = record_status(record)
    if status not in STATUSES:
        raise ValueError(f"{path}: status={status!r} is not one of {', '.join(STATUSES)}")
    error = record.get("error") or (TEST_PENDING if status != record.get("status", "finished") else None)
    tasks = list(record.get("tasks") or str(record["task"]).split("+"))
    selected = record.get("selected") or {}
    flat = selected.get("metrics") or {}
    predictions = selected.get("predictions") or {}
    prompt = ((record.get("config") or {}).get("model") or {}).get("prompt")
    protocol = training_protocol(record.get("config"))
    rows = []
    test = record.get("test") or {}
    for task in tasks:
        if task in test:
            metrics = {k: float(v) for k, v in test[task].items() if v is not None}
            mine = (record.get("test_predictions") or {}).get(task) or {}
        else:
            prefix = f"val/{task}/"
            metrics = {k[len(prefix):]: float(v) for k, v in flat.items() if k.startswith(prefix) and v is not None}
            mine = predictions.get(task) or {}
        rows.append({
            "file": str(path), "status": status, "error": error, "grid": record.get("grid"),
            "run_task": str(record["task"]), "task": task, "method": record["method"],
            "backbone": record["backbone"], "regime": record["regime"], "seed": record["seed"],
            "setting": record.get("setting") or "",
            "selected_epoch": selected.get("epoch"), "selected_step": selected.get("step"),
            "monitor": selected.get("monitor"), "selection_score": flat.get(selected.get("monitor")),
            "wall_time_s": record.get("wall_time_s"),
            "trainable_parameters": record.get("trainable_parameters"),
            "finished_at": record.get("finished_at"), "machine": machine_kind(record), "prompt": prompt,
            "decisions": {k: mine[k] for k in DECISIONS if mine.get(k) is not None},
            "report": "test" if task in test else "selection",
            "predictions": {k: mine[k] for k in PREDICTION_KEYS if mine.get(k) is not None},
            "protocol": protocol,
            **metrics,
        })
    return rows


def load_results(runs_dir: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Every run record under ``runs_dir`` (recursively) as a DataFrame.

    Returns:
        The rows of :func:`record_rows` (columns ``RESULT_COLUMNS`` plus one per metric
        name, ``score`` and ``acc`` always), and one "file: why" line per record that could
        not be read; those are left out, the others still load.
    """
    runs_dir = Path(runs_dir)
    rows, problems = [], []
    for path in record_files(runs_dir):
        try:
            rows.extend(record_rows(read_record(path), path))
        except ValueError as err:
            problems.append(str(err))
    frame = pd.DataFrame(rows)
    for column in (*RESULT_COLUMNS, "score", "acc"):
        if column not in frame:
            frame[column] = pd.Series(dtype=float if column in ("score", "acc") else object)
    return frame, problems
