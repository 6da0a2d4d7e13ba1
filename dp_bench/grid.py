"""Comparison grids: a cartesian product of ``dp-bench fit`` runs, run one after another.

``dp-bench grid --config experiments/grids/smoke.yaml`` expands tasks x methods x seeds x
regimes x backbones (x search settings) into runs, each exactly the ``dp-bench fit`` command that
``--dry-run`` prints, and runs every one in its own Python process, so a crash or an
out-of-memory kill ends that run only. Each run's record path is deterministic
(``<runs_dir>/<grid>/<task>__<method>__<regime>__<backbone>__s<seed>[__<setting>].json.gz``), which makes
the grid resumable (finished runs are skipped, interrupted ones redone or resumed from
their last checkpoint) and shardable (``--shard i/n`` takes runs i, i+n, ...), the way
peft's ``method_comparison`` keeps one result file per experiment.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from dp_bench.results import (
    SCHEMA_VERSION,
    checkpoint_dir,
    read_record,
    record_status,
    record_stem,
    write_json_atomic,
)

RunState = Literal["todo", "done", "failed", "interrupted"]
# A runner starts one command with stdout and stderr going to the two files; returns its exit status.
Runner = Callable[[list[str], Path, Path], int]

# Flags the grid sets itself for every run; an override of one would make record names lie.
RESERVED_KEYS = frozenset({
    "config", "seed_everything", "data.seed", "model.backbone", "data.backbone", "data.tasks",
    "model.tasks", "record.path", "record.grid", "record.dir", "record.setting", "ckpt_path",
})
# Written into the placeholder record that marks a run as started (see ``run_grid``).
GRID_WRITER = "dp-bench grid"
STDERR_TAIL_LINES = 40
_SAFE_NAME = re.compile(r"[A-Za-z0-9._+-]+")
_DOTTED_KEY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")  # section.name, e.g. model.prompt.length
_CONFIG_KEY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")  # a top-level name or a dotted key


@dataclass
class GridSpec:
    """A comparison grid: every combination of the lists below is one ``dp-bench fit`` run.

    Args:
        name: grid name; the runs folder under ``runs_dir`` and the W&B group.
        tasks: task names (``experiments/tasks/<name>.yaml``), or task groups such as
            ``[cb, rte, wic]``, each one multitask run in the ``group_regime`` regime.
        methods: method names (``experiments/methods/<name>.yaml``).
        seeds: values of ``--seed_everything``.
        regimes: regimes of single-task runs (``experiments/regimes/<name>.yaml``).
        group_regime: the regime of task-group runs.
        backbones: values of ``--model.backbone``.
        overrides: flags added to every run after the config files: a mapping of dotted
            keys to values (``data.limit_train_examples: 64``) or a list of CLI arguments.
        search: a hyperparameter search with the same budget for every method: each mapping
            of dotted keys to values is one setting that every cell (task, method, seed) runs,
            after ``overrides``. ``{}`` is the grid as configured and keeps the plain record
            name; another setting appends its label (``{model.lr_scale: 3.0}``: ``__lr_scale3.0``)
            and is recorded as the run's ``setting``. ``dp-bench table`` then picks, per method
            and task, the setting with the best mean score on the model-selection split.
        runs_dir: folder that holds one folder of run records per grid.
        configs_dir: folder with the ``tasks/``, ``regimes/`` and ``methods/`` configs.
    """

    name: str
    tasks: list[str | list[str]]
    methods: list[str]
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    regimes: list[str] = field(default_factory=lambda: ["full"])
    group_regime: str = "multitask"
    backbones: list[str] = field(default_factory=lambda: ["all-MiniLM-L6-v2"])
    overrides: dict[str, Any] | list[str] = field(default_factory=dict)
    search: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    runs_dir: str = "results/runs"
    configs_dir: str = "experiments"

    def __post_init__(self) -> None:
        if not _SAFE_NAME.fullmatch(self.name):
            raise ValueError(f"grid name={self.name!r}: use letters, digits and . _ + - only (it names a folder)")
        for key in ("tasks", "methods", "seeds", "regimes", "backbones"):
            values = [tuple(v) if isinstance(v, list) else v for v in getattr(self, key)]
            if not values and key != "regimes":
                raise ValueError(f"grid {self.name}: {key} is empty")
            if len(set(values)) != len(values):
                raise ValueError(f"grid {self.name}: {key}={getattr(self, key)} lists a value twice")
        if any(isinstance(t, str) for t in self.tasks) and not self.regimes:
            raise ValueError(f"grid {self.name}: regimes is empty but tasks lists single tasks")
        for entry in self.tasks:
            if isinstance(entry, list) and (len(entry) < 2 or len(set(entry)) != len(entry)):
                raise ValueError(f"grid {self.name}: task group {entry} needs two or more different tasks")
        for key in self.override_keys():
            if isinstance(self.overrides, dict) and not _CONFIG_KEY.fullmatch(str(key)):
                # ``{trainer.max_epochs:30}`` (no space) is YAML for the key "trainer.max_epochs:30".
                raise ValueError(f"grid {self.name}: overrides: {key!r} is not a config key like trainer.max_epochs; "
                                 "in YAML write a space after the colon: {trainer.max_epochs: 30}")
            if key in RESERVED_KEYS:
                raise ValueError(f"grid {self.name}: overrides may not set {key!r}; the grid sets it for each run")
        if not self.search:
            raise ValueError(f"grid {self.name}: search is empty; [{{}}] runs the grid as configured")
        for setting in self.search:
            for key in setting:
                if not _DOTTED_KEY.fullmatch(str(key)):
                    # ``{model.lr_scale:3.0}`` (no space) is YAML for the key "model.lr_scale:3.0".
                    raise ValueError(f"grid {self.name}: search setting {setting}: {key!r} is not a dotted config key "
                                     "like model.lr_scale; in YAML write a space after the colon: {model.lr_scale: 3.0}")
                if key in RESERVED_KEYS or key in self.override_keys():
                    why = "the grid sets it for each run" if key in RESERVED_KEYS else "overrides sets it too"
                    raise ValueError(f"grid {self.name}: search may not set {key!r}; {why}")
            if not _SAFE_NAME.fullmatch(setting_label(setting) or "x"):
                raise ValueError(f"grid {self.name}: search setting {setting} gives the label {setting_label(setting)!r}; "
                                 "use values of letters, digits and . _ + - only (it names record files)")
        labels = [setting_label(s) for s in self.search]
        if len(set(labels)) != len(labels):
            raise ValueError(f"grid {self.name}: search lists the setting {Counter(labels).most_common(1)[0][0] or '{}'!r} twice")

    def override_keys(self) -> list[str]:
        """The dotted keys that ``overrides`` sets."""
        if isinstance(self.overrides, dict):
            return list(self.overrides)
        keys = []
        for arg in self.overrides:
            if arg.startswith("--"):
                keys.append(arg[2:].split("=", 1)[0])
        return keys

    def override_args(self) -> list[str]:
        """``overrides`` as CLI arguments (see :func:`cli_args`)."""
        if isinstance(self.overrides, list):
            return list(self.overrides)
        return cli_args(self.overrides)


def cli_args(values: dict[str, Any]) -> list[str]:
    """Dotted keys and values as CLI arguments (strings go raw, other values as JSON, which YAML reads)."""
    return [f"--{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in values.items()]


def setting_label(setting: dict[str, Any]) -> str:
    """A search setting's name in record files: ``{model.lr_scale: 3.0}`` -> ``lr_scale3.0``; ``{}`` -> ``""``."""
    return "__".join(f"{key.rsplit('.', 1)[-1]}{json.dumps(value) if not isinstance(value, str) else value}"
                     for key, value in setting.items())


@dataclass(frozen=True)
class Run:
    """One run of a grid: its identity, its config files and where its record goes."""

    grid: str
    tasks: tuple[str, ...]
    method: str
    regime: str
    backbone: str
    seed: int
    configs: tuple[Path, ...]
    extra_args: tuple[str, ...]
    record_path: Path
    setting: str = ""  # the search setting's label; "" for the grid as configured

    @property
    def task(self) -> str:
        return "+".join(self.tasks)

    @property
    def stem(self) -> str:
        return record_stem(self.record_path)

    @property
    def checkpoint(self) -> Path:
        """``last.ckpt`` as the CLI saves it for this record."""
        return checkpoint_dir(self.record_path) / "last.ckpt"

    def configured(self) -> dict[str, Any]:
        """What this run's command sets, as dotted keys (``data.max_length``): the values of its
        config files, in order, then its flags. Keys it leaves to the code's defaults are absent."""
        values: dict[str, Any] = {}
        for path in self.configs:
            values.update(dotted_leaves(yaml.safe_load(path.read_text()) or {}))
        args = self.command()[4:]  # after ``python -m dp_bench.cli fit``
        i = 0
        while i < len(args):  # --key=value or --key value (a YAML value, as the CLI reads it)
            key, eq, value = args[i][2:].partition("=")
            if not eq:
                i, value = i + 1, args[i + 1]
            if key != "config":
                values[key] = yaml.safe_load(value)
            i += 1
        return values

    def command(self, ckpt_path: Path | None = None) -> list[str]:
        """The ``dp-bench fit`` command of this run, as a subprocess argument list."""
        cmd = [sys.executable, "-m", "dp_bench.cli", "fit"]
        for config in self.configs:
            cmd += ["--config", str(config)]
        if len(self.tasks) > 1:
            cmd += [f"--data.tasks=[{', '.join(self.tasks)}]"]
        cmd += [
            "--seed_everything", str(self.seed), "--model.backbone", self.backbone,
            "--record.path", str(self.record_path), "--record.grid", self.grid, *self.extra_args,
        ]
        if ckpt_path is not None:
            cmd += ["--ckpt_path", str(ckpt_path)]
        return cmd


def dotted_leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"data": {"max_length": 128}}`` -> ``{"data.max_length": 128}`` (lists and empty mappings are leaves)."""
    leaves: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            leaves.update(dotted_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def config_departures(run: Run, config: dict[str, Any]) -> list[str]:
    """Where a record's ``config`` departs from what the run's command sets now: one
    ``key: the grid's files say A, the record says B`` per value that differs.

    A key the record lacks is not counted: the option was added after the record was made,
    and a grid that needs the old behaviour pins it (as ``paper_fewshot_gpu`` pins
    ``data.few_shot_draw: rows``); whether it did is what rerunning the record tests.
    ``record.path`` is where this checkout would write, and not compared.
    """
    recorded = dotted_leaves(config)
    return [f"{key}: the grid's files say {value!r}, the record says {recorded[key]!r}"
            for key, value in run.configured().items()
            if key != "record.path" and key in recorded and recorded[key] != value]


def run_of_record(path: str | Path, record: dict[str, Any], grids_dir: str | Path = "experiments/grids") -> Run:
    """The run of its grid (``<grids_dir>/<record's grid>.yaml``) that writes this record
    (``record``: the file at ``path``, as the caller has read it).

    Raises ValueError when the grid file is missing or plans no run with this record's path
    (a record no committed command reproduces).
    """
    grid_file = Path(grids_dir) / f"{record.get('grid')}.yaml"
    if not grid_file.is_file():
        raise ValueError(f"{path}: its grid {record.get('grid')!r} has no file {grid_file}")
    run = _runs_by_record(grid_file.resolve(), Path.cwd()).get(record_key(path))
    if run is None:
        raise ValueError(f"{path}: {grid_file} plans no run that writes this record")
    return run


def record_key(path: str | Path) -> Path:
    """A record's absolute path less its suffix: the same for ``<stem>.json.gz`` and a ``<stem>.json``
    copy of it (a record saved uncompressed still names its run)."""
    return Path(path).resolve().parent / record_stem(path)


@functools.cache  # a grid file is read once per process, not once per record
def _runs_by_record(grid_file: Path, cwd: Path) -> dict[Path, Run]:
    """The grid's runs by :func:`record_key` (a grid names its records relative to ``cwd``)."""
    return {record_key(run.record_path): run for run in planned_runs(grid_file)}


def backbone_short(backbone: str) -> str:
    """The last path component of a backbone id, as record names use it."""
    return backbone.rstrip("/").split("/")[-1]


def expand(spec: GridSpec) -> list[Run]:
    """Every run of the grid, in order regime, backbone, seed, task, method, search setting.

    Seeds come before tasks and methods so that a partly done grid already has one seed of
    every cell. Raises ValueError naming a missing config file or a record name collision.
    """

    def config_file(kind: str, name: str) -> Path:
        path = Path(spec.configs_dir) / kind / f"{name}.yaml"
        if not path.is_file():
            raise ValueError(f"grid {spec.name}: {kind[:-1]} {name!r} has no config file {path}")
        return path

    # A single task runs in every regime; a task group is one run in the group regime.
    entries = [((t,), r) for r in spec.regimes for t in spec.tasks if isinstance(t, str)]
    entries += [(tuple(t), spec.group_regime) for t in spec.tasks if isinstance(t, list)]
    for tasks, _ in entries:
        for name in tasks:
            config_file("tasks", name)
    extra = tuple(spec.override_args())
    settings = [(setting_label(s), tuple(cli_args(s))) for s in spec.search]
    runs = []
    for regime, backbone, seed in itertools.product(dict.fromkeys(r for _, r in entries), spec.backbones, spec.seeds):
        cells = itertools.product([t for t, r in entries if r == regime], spec.methods, settings)
        for tasks, method, (label, setting_args) in cells:
            # A group has no task config of its own: the regime config and --data.tasks say it all.
            files = [config_file("tasks", tasks[0])] if len(tasks) == 1 else []
            files += [config_file("regimes", regime), config_file("methods", method)]
            stem = f"{'+'.join(tasks)}__{method}__{regime}__{backbone_short(backbone)}__s{seed}"
            args = extra
            if label:
                stem += f"__{label}"
                args += (*setting_args, f"--record.setting={label}")
            runs.append(Run(
                grid=spec.name, tasks=tasks, method=method, regime=regime, backbone=backbone, seed=seed,
                configs=tuple(files), extra_args=args, record_path=Path(spec.runs_dir) / spec.name / f"{stem}.json.gz",
                setting=label,
            ))
    clashes = sorted(stem for stem, n in Counter(r.stem for r in runs).items() if n > 1)
    if clashes:
        raise ValueError(f"grid {spec.name}: backbones {spec.backbones} give the same record name {clashes[0]}")
    return runs


def shard(runs: Sequence[Run], index: int, count: int) -> list[Run]:
    """Runs ``index, index + count, ...`` (0-based): ``count`` shards partition the grid."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard={index}/{count}: need 0 <= i < n")
    return list(runs[index::count])


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)``."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"shard={text!r}: expected i/n, for example 0/4")
    index, count = int(match[1]), int(match[2])
    shard([], index, count)  # validates the range
    return index, count


def run_state(run: Run) -> RunState:
    """State of a run from its record: no record is todo; an unreadable one counts as interrupted."""
    if not run.record_path.exists():
        return "todo"
    try:
        status = record_status(read_record(run.record_path))
    except ValueError:
        return "interrupted"
    return {"finished": "done", "failed": "failed"}.get(status, "interrupted")


def plan(run: Run, state: RunState, retry_failed: bool) -> tuple[str, Path | None]:
    """What the grid does with a run: ``(action, checkpoint to resume from)``.

    Only an interrupted run resumes: the grid marks every run it starts with a placeholder
    record, so a checkpoint beside a run with no record was left by something else (a manual
    fit, or another grid with the same record stem) and must not seed this run.
    """
    if state == "done":
        return "skip", None
    if state == "failed" and not retry_failed:
        return "keep failed", None
    if state == "interrupted" and run.checkpoint.is_file():
        return "resume", run.checkpoint
    return "run", None


def expected_identity(run: Run) -> dict[str, Any]:
    """The identity the fit will record (``DPBenchCLI._identity``), from the config files.

    Used for the records the grid writes itself (started, or failed before the fit could
    write one), so that the tables place them in the right cell.
    """
    configured = run.configured()
    regime = configured.get("data.regime", "full")
    if regime == "few_shot":
        regime = f"few_shot_{configured.get('data.few_shot_source', 'sample')}"  # the DataModule's default
    return {
        "task": run.task, "tasks": list(run.tasks), "method": configured.get("model.method", run.method),
        "backbone": run.backbone, "regime": regime, "seed": run.seed, "grid": run.grid,
        "setting": run.setting or None,
    }


def grid_record(run: Run, status: str, error: str, command: list[str], **extra: Any) -> dict[str, Any]:
    """A record the grid writes when the fit has not written one (yet)."""
    now = datetime.now(UTC).isoformat()
    return {
        "schema": SCHEMA_VERSION, "status": status, "error": error, **expected_identity(run),
        "metrics": {}, "selected": None, "history": [], "written_by": GRID_WRITER,
        "command": shlex.join(command), "finished_at": now, **extra,
    }


def tail(path: Path, lines: int = STDERR_TAIL_LINES) -> str:
    """Last lines of a log; progress bars rewrite their line with \\r, so split on it too."""
    if not path.is_file():
        return ""
    text = path.read_text(errors="replace")
    kept = [line.rstrip() for line in re.split(r"[\r\n]+", text) if line.strip()]
    return "\n".join(kept[-lines:])


def run_subprocess(command: list[str], stdout: Path, stderr: Path) -> int:
    """The default runner: the command in its own process, its output appended to the two
    files (``run_one`` empties them for a run from scratch and marks where a resume begins)."""
    stdout.parent.mkdir(parents=True, exist_ok=True)
    with stdout.open("a") as out, stderr.open("a") as err:
        return subprocess.run(command, stdout=out, stderr=err, check=False).returncode


def earlier_try(run: Run) -> str:
    """What an earlier try of the run left in its record, in words ('' for a run never started):
    a run from scratch replaces that try's log, so its own log says the try existed."""
    if not run.record_path.exists():
        return ""
    try:
        record = read_record(run.record_path)
    except ValueError:
        return "an earlier try left an unreadable record"
    return f"an earlier try left a record saying {record_status(record)}, written {record.get('finished_at', 'at an unknown time')}"


def open_logs(stdout: Path, stderr: Path, ckpt_path: Path | None, earlier: str = "") -> None:
    """A run from scratch starts its logs afresh (under a line naming the ``earlier`` try it
    replaces, if any); a resume keeps the epochs before it (they are the only log of them) and
    appends after a line that says where it picked up."""
    stdout.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for log in (stdout, stderr):
        if ckpt_path is None:
            log.write_text(f"--- dp-bench grid: started from scratch at {now}; {earlier}; its log is replaced by this one ---\n"
                           if earlier else "")
        else:
            with log.open("a") as text:
                text.write(f"\n--- dp-bench grid: resumed from {ckpt_path} at {now} ---\n")


def run_one(run: Run, ckpt_path: Path | None, runner: Runner) -> RunState:
    """Run one fit and make sure it leaves a record; returns the run's new state."""
    command = run.command(ckpt_path)
    if ckpt_path is None:
        # A run from scratch owns its checkpoint folder: a failed attempt's (or a foreign)
        # ``last.ckpt`` left there would otherwise seed this run's resume if it is killed
        # before it saves its own.
        shutil.rmtree(checkpoint_dir(run.record_path), ignore_errors=True)
    logs = run.record_path.parent / "logs"
    stdout, stderr = logs / f"{run.stem}.out", logs / f"{run.stem}.err"
    open_logs(stdout, stderr, ckpt_path, earlier_try(run) if ckpt_path is None else "")
    # Marks the run as started: if this process dies mid-run the record says interrupted and
    # the next grid resumes from the run's own checkpoint (see ``plan``); if the fit ends
    # without replacing it (even a resume that crashes at once), the run is failed below.
    write_json_atomic(run.record_path, grid_record(run, "interrupted", "started by dp-bench grid; no result yet", command))
    code = runner(command, stdout, stderr)
    try:
        record = read_record(run.record_path)
    except ValueError:
        record = None
    if record is None or record.get("written_by") == GRID_WRITER:
        error = f"the fit wrote no record (exit status {code}); last lines of {stderr}:\n{tail(stderr)}"
        write_json_atomic(run.record_path, grid_record(run, "failed", error, command, exit_status=code))
        return "failed"
    return run_state(run)


def check_backbones(runs: Sequence[Run], retry_failed: bool) -> None:
    """ValueError when a run that would start names a backbone that cannot load here (a missing
    local copy, SmolLM2 without its package): the grid stops before launching runs that would
    each start a process and fail the same way."""
    from dp_bench.backbones import resolve_backbone

    starting = [run for run in runs if plan(run, run_state(run), retry_failed)[0] not in ("skip", "keep failed")]
    for backbone in sorted({run.backbone for run in starting}):
        resolve_backbone(backbone)


def uncompressed_records(runs: Sequence[Run]) -> list[Path]:
    """The runs' records saved as plain ``<stem>.json`` (grids wrote those before 2026-12-06) where
    their ``<stem>.json.gz`` is missing: the grid reads only the latter, and would run them again."""
    plain = [run.record_path.with_name(f"{run.stem}.json") for run in runs if not run.record_path.exists()]
    return [path for path in plain if path.is_file()]


def run_grid(
    runs: Sequence[Run], retry_failed: bool = False, dry_run: bool = False,
    runner: Runner = run_subprocess, out: Callable[[str], None] = print,
) -> dict[str, int]:
    """Run (or, dry, list) the runs in order; returns how many ended in each state.

    Args:
        runs: the runs to consider (a whole grid or one shard).
        retry_failed: also redo runs whose record says failed.
        dry_run: print each run's state, action and command; run nothing.
        runner: starts one command (tests pass a fake one).
        out: where progress lines go.
    """
    width = len(str(len(runs)))
    ends: dict[str, int] = {"done": 0, "failed": 0, "interrupted": 0, "todo": 0}
    for i, run in enumerate(runs, 1):
        state = run_state(run)
        action, ckpt = plan(run, state, retry_failed)
        head = f"[{i:>{width}}/{len(runs)}] {state:<11} {action:<11} {run.stem}"
        if dry_run:
            out(f"{head}\n    {shlex.join(run.command(ckpt))}")
            ends[state] += 1
            continue
        if action in ("skip", "keep failed"):
            out(head)
            ends[state] += 1
            continue
        out(f"{head} ...")
        started = time.time()
        new_state = run_one(run, ckpt, runner)
        ends[new_state] += 1
        out(f"{' ' * (width * 2 + 4)}{new_state} in {time.time() - started:.0f}s: {run.record_path}")
    return ends


def build_parser():
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(
        prog="dp-bench grid", exit_on_error=False,
        description="Run a comparison grid of `dp-bench fit` runs, resumably: "
        "dp-bench grid --config experiments/grids/smoke.yaml [--dry-run] [--shard 0/4] [--retry-failed]",
    )
    parser.add_argument("--config", action=ActionConfigFile, help="grid YAML (experiments/grids/*.yaml)")
    parser.add_class_arguments(GridSpec)
    parser.add_argument("--dry-run", action="store_true", help="list every run with its state and command; run nothing")
    parser.add_argument("--retry-failed", action="store_true", help="redo runs whose record says failed")
    parser.add_argument("--shard", type=str, default="0/1", help="i/n: run only runs i, i+n, i+2n, ... (0-based)")
    return parser


def load_spec(argv: list[str]) -> tuple[GridSpec, Any]:
    """Parse the grid file and flags; ValueError names the file for unknown or mistyped keys."""
    from jsonargparse import ArgumentError

    parser = build_parser()
    try:
        cfg = parser.parse_args(argv)
    except ArgumentError as err:
        configs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
        raise ValueError(f"{', '.join(configs) or 'dp-bench grid'}: {err}") from err
    spec = GridSpec(**{f.name: cfg[f.name] for f in fields(GridSpec)})
    return spec, cfg


def planned_runs(grid_file: str | Path) -> list[Run]:
    """Every run a grid file plans, whether or not it has run (``dp-bench table`` says which have not)."""
    spec, _ = load_spec(["--config", str(grid_file)])
    return expand(spec)


def main(argv: list[str] | None = None, runner: Runner = run_subprocess) -> int:
    """``dp-bench grid``: exit status 0 when every run of the shard is done (or listed), else 1."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        build_parser().print_help()
        return 0
    try:
        spec, cfg = load_spec(argv)
        index, count = parse_shard(cfg.shard)
        runs = expand(spec)
    except ValueError as err:
        print(f"dp-bench grid: error: {err}", file=sys.stderr)
        return 2
    mine = shard(runs, index, count)
    plain = uncompressed_records(mine)
    if plain:
        print(f"dp-bench grid: error: {len(plain)} records of this grid are uncompressed ({plain[0]}, ...): "
              f"`python scripts/reformat_records.py --compress {plain[0].parent}` compresses them, values unchanged; "
              "the grid reads <stem>.json.gz and would otherwise run them again", file=sys.stderr)
        return 2
    print(f"grid {spec.name}: {len(runs)} runs, shard {index}/{count} has {len(mine)}; records in {Path(spec.runs_dir) / spec.name}")
    if not cfg.dry_run:
        try:
            check_backbones(mine, cfg.retry_failed)
        except ValueError as err:
            print(f"dp-bench grid: error: {err}", file=sys.stderr)
            return 2
    ends = run_grid(mine, retry_failed=cfg.retry_failed, dry_run=cfg.dry_run, runner=runner)
    print("; ".join(f"{n} {state}" for state, n in ends.items() if n) or "no runs")
    if not cfg.dry_run and ends["failed"] and not cfg.retry_failed:
        print("failed runs keep their records; --retry-failed redoes them", file=sys.stderr)
    return 0 if cfg.dry_run or ends["done"] == len(mine) else 1


if __name__ == "__main__":
    sys.exit(main())
