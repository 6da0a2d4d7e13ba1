"""``dp-bench table``: the paper's tables and figures, regenerated from run records alone.

Layouts follow Yang et al. 2023 (arXiv 2303.02909): one table per regime (full data,
few-shot, multitask) and backbone, methods as rows, tasks and their average as columns.
Each cell is mean ± std over seeds of the task's official score on val.jsonl at the epoch
that model selection chose (the record's ``test`` when selection used a split of train,
else ``selected.metrics``), with the seed count; runs that did not finish show as such,
never as a number, and cells with fewer than three seeds are not published. A
backbone-signal block (majority class, ``linear_probe``, ``fine_tuning``) heads each table.
Reference numbers from the paper lineage (``experiments/reference/*.csv``) sit under our
matching rows, their backbone named.

A grid with a hyperparameter ``search`` is reported at each method's chosen setting
(:mod:`dp_bench.search`: best mean score on the model-selection split), with a table of every
setting's selection score; the choices go to ``experiments/tuned/<grid>.yaml``.

Outputs in ``--out`` (default ``results/tables``): ``summary.md`` (Markdown for the README),
``glance.md`` (every published comparison with a static prompt on one page,
:mod:`dp_bench.glance`), ``cells.csv`` / ``runs.csv`` / ``gains.csv`` for other tools, and PNG figures: the
per-example choices of the dynamic policies (positions of ``adap_ins_pos`` and the like) and
each dynamic method's paired gain over ``prompt_tuning`` with a 95% interval from a
bootstrap over seeds and examples (:mod:`dp_bench.paired`).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dp_bench.glance import dynamic_parts, glance_lines  # noqa: E402
from dp_bench.grid import Run, expected_identity, planned_runs  # noqa: E402
from dp_bench.paired import Scored, best_constant_metrics, majority_metrics, paired_gain, verdict  # noqa: E402
from dp_bench.results import DECISIONS, load_results, record_stem  # noqa: E402
from dp_bench.search import (  # noqa: E402
    AS_CONFIGURED,
    choices_table,
    choose_settings,
    chosen_runs,
    has_search,
    tuned_label,
    waiting_settings,
    write_choices,
)
from dp_bench.search import label as setting_text  # noqa: E402

# SuperGLUE order as in the paper's tables; tasks and methods not listed follow by name.
TASK_ORDER = ("boolq", "cb", "copa", "rte", "wic", "wsc", "multirc")
METHOD_ORDER = (
    "linear_probe", "fine_tuning", "prompt_tuning", "p_tuning_v2", "adap_pos", "adap_ins_pos",
    "adap_ins_len", "adap_ins_vec", "adap_ins_vec_pos", "p_tuning_v2_ins_vec",
)
METRICS = {"score": "official score", "acc": "accuracy"}
GROUP_KEYS = ("grid", "regime", "backbone", "mixture")
RUN_KEYS = ("grid", "regime", "backbone", "method", "run_task", "seed", "setting")
REFERENCE_COLUMNS = ("regime", "method", "task", "metric", "value", "backbone", "source")
NO_GRID = "(no grid)"
MIN_SEEDS = 3  # a cell with fewer finished seeds is shown as such, not as a number
MAJORITY = "majority class"
BEST_CONSTANT = "best constant answer"
GAIN_COLUMNS = ["method", "task", "n", "gain_pts", "ci_low", "ci_high", "verdict", "t_low", "t_high", "sd_seed_pts",
                "seeds_for_power", "seeds"]
DEEP_BASELINE = "p_tuning_v2"  # deep dynamic prompts are also compared with the static deep prompt
SINGLE_TASK = "single-task"  # multitask runs are also compared with their methods' single-task runs
SAME_PROTOCOL = "the same training protocol (epochs, input length, batch size, selection split, method config)"
GAINS_NOTE = (
    "official score points; paired by seed and example; 95% bootstrap interval over seeds and examples; "
    "a gain only where it excludes 0; t over seeds: the paired Student t-interval of the per-seed "
    "differences, training randomness alone with the examples held fixed (narrower than the bootstrap "
    "where examples are few, as on CB; wider where 3 seeds disagree, since the bootstrap's seed level "
    "then has 10 distinct resamples), so a verdict whose t-interval includes 0 rests on the bootstrap "
    "alone; seeds for 80% power: what a paired t-test at 5% would need for a difference of this size"
)
REGIME_FAMILIES = (("full", "Full data"), ("few_shot", "Few-shot"), ("multitask", "Multitask"))
FAMILY_GRIDS = {"full": "paper_full", "few_shot": "paper_fewshot", "multitask": "paper_multitask"}
README_SUMMARY = "readme.md"  # summary.md without figures: what `make table` puts in the README
GLANCE = "glance.md"  # every published comparison with a static prompt, one block per dynamic part
AVG = "avg"
GENERATED_LIST = ".generated"  # names of the files the last render wrote, removed by the next

CAPTION = (
    "Cells: mean ± std over seeds (n = finished seeds) of the {metric} ×100 on the official "
    "validation set (val.jsonl), taken at the checkpoint that model selection picked (by "
    "`{monitor}`), not each metric's best epoch; each section states its selection protocol. "
    "Cells with fewer than {min_seeds} finished seeds show `too few seeds (n=k)`, not a number, "
    "and gains over fewer than {min_seeds} seeds show no interval and no seed count for power. "
    "`failed (k)` / `interrupted (k)` count runs without a result, `—` means no run. `avg`: "
    "per seed the mean over the table's tasks, then mean ± std over the seeds that have every "
    "task. Official score: CB mean(acc, macro-F1), MultiRC mean(F1a, EM), otherwise accuracy. "
    "Backbone signal: the first rows (`majority class`: always predicting val.jsonl's most "
    "frequent class; `best constant answer`, shown where it beats that: the best each metric gets "
    "from always giving one answer, as MultiRC's F1a rewards always answering 'true'; "
    "`linear_probe`: a head on the frozen backbone; `fine_tuning`: every weight trained, "
    "without dropout) show what the backbone can do on each task; a prompt method that does "
    "not beat them there has nothing to show."
)
PROTOCOLS = {
    "test": "model selection on a split of train.jsonl (few-shot: another k examples per label, "
            "disjoint from the training shots; FewGLUE: dev32; full data: a seeded 10% holdout); "
            "val.jsonl evaluated once, at the selected checkpoint",
    "selection": "model selection and report on the same val.jsonl, as in the paper (optimistic: "
                 "the best epoch on the reported set)",
}


# ---------------------------------------------------------------- tidy records


def _order(values: Iterable[str], preferred: tuple[str, ...]) -> list[str]:
    values = set(values)
    return [v for v in preferred if v in values] + sorted(values - set(preferred))


def mixture_of(run_task: str) -> str:
    """A section's mixture: ``cb+rte+wic`` for a multitask run, ``""`` for a single task."""
    return run_task if "+" in run_task else ""


def prepare(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Group columns added, one record kept per run; returns the warnings about dropped ones.

    Two records of the same run (grid, regime, backbone, method, tasks, seed) happen with
    repeated manual fits; the finished one wins, then the most recent.
    """
    frame = frame.copy()
    frame["grid"] = frame["grid"].fillna(NO_GRID)
    frame["setting"] = frame["setting"].fillna("")
    frame["mixture"] = [mixture_of(t) for t in frame["run_task"]]
    files = frame.drop_duplicates("file").assign(_finished=lambda f: f["status"] == "finished")
    files = files.sort_values(["_finished", "finished_at", "file"], ascending=False, na_position="last")
    keep = files.drop_duplicates(list(RUN_KEYS))
    dropped = files[~files["file"].isin(keep["file"])]
    warnings = [
        f"{row.file}: duplicate record of a run that another record already gives; ignored"
        for row in dropped.sort_values("file").itertuples()
    ]
    return frame[frame["file"].isin(keep["file"])].reset_index(drop=True), warnings


def load_reference(reference_dir: str | Path) -> pd.DataFrame:
    """Every ``*.csv`` in ``reference_dir`` (``#`` lines are comments; values as printed, ×100).

    Raises ValueError naming the file when a column is missing or a value is not a number.
    """
    frames = []
    for path in sorted(Path(reference_dir).glob("*.csv")):
        ref = pd.read_csv(path, comment="#", skipinitialspace=True, dtype=str).fillna("")
        missing = [c for c in REFERENCE_COLUMNS if c not in ref.columns]
        if missing:
            raise ValueError(f"{path}: reference table lacks columns {', '.join(missing)}")
        values = pd.to_numeric(ref["value"], errors="coerce")
        if values.isna().any():
            line = int(values.isna().to_numpy().argmax())
            raise ValueError(f"{path}: value={ref['value'].iloc[line]!r} (data row {line + 1}) is not a number")
        frames.append(ref.assign(value=values, file=str(path)))
    if not frames:
        return pd.DataFrame(columns=[*REFERENCE_COLUMNS, "file"])
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------- numbers


def cell_stats(group: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (method, task) and per method's ``avg``: mean, std, n, and runs without a result.

    Values are ×100. ``std`` is the sample standard deviation (NaN for one seed).
    """
    tasks = _order(group["task"], TASK_ORDER)
    ok = (group["status"] == "finished") & group[metric].notna()
    rows = []
    for method, runs in group.groupby("method", sort=False):
        good = runs[ok.loc[runs.index]]
        for task in tasks:
            mine, values = runs[runs["task"] == task], good.loc[good["task"] == task, metric] * 100
            rows.append({
                "method": method, "task": task, **_summary(values),
                "failed": int((mine["status"] == "failed").sum()),
                "interrupted": int((mine["status"] == "interrupted").sum()),
                "no_metric": int(((mine["status"] == "finished") & mine[metric].isna()).sum()),
            })
        # The average needs every task of the table from the same seed.
        scored = [t for t in tasks if (group.loc[ok, "task"] == t).any()]
        averages = pd.Series(dtype=float)
        if scored and not good.empty:
            per_seed = good.pivot_table(index="seed", columns="task", values=metric, aggfunc="mean")
            averages = per_seed.reindex(columns=scored).dropna().mean(axis=1) * 100
        rows.append({"method": method, "task": AVG, **_summary(averages), "failed": 0, "interrupted": 0, "no_metric": 0})
    return pd.DataFrame(rows)


def _summary(values: pd.Series) -> dict[str, Any]:
    n = int(values.count())
    return {
        "mean": float(values.mean()) if n else math.nan,
        "std": float(values.std(ddof=1)) if n > 1 else math.nan,
        "n": n,
    }


def format_cell(cell: dict[str, Any] | pd.Series, min_seeds: int = 1) -> str:
    """``71.4 ± 2.3 (n=3)``; runs without a result are named, and no run at all is ``—``.

    With fewer than ``min_seeds`` finished seeds the cell says so instead of a number.
    """
    counts = {k: int(cell[k]) for k in ("n", "failed", "interrupted", "no_metric")}
    missing = [f"{k.replace('_', ' ')} ({counts[k]})" for k in ("failed", "interrupted", "no_metric") if counts[k]]
    if 0 < counts["n"] < min_seeds:
        missing.insert(0, f"too few seeds (n={counts['n']})")
        counts["n"] = 0
    if not counts["n"]:
        return ", ".join(missing) or "—"
    spread = f" ± {cell['std']:.1f}" if counts["n"] > 1 else ""
    text = f"{cell['mean']:.1f}{spread} (n={counts['n']})"
    return f"{text}; {', '.join(missing)}" if missing else text


def is_dynamic(prompt: dict[str, Any] | None) -> bool:
    """Whether a method's prompt config learns a position, length or representation choice."""
    return bool(dynamic_parts(prompt))


def parts_of_methods(frame: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """method -> the dynamic parts of its prompt, from its records (the first one that has a config)."""
    parts: dict[str, tuple[str, ...]] = {}
    for method, prompt in zip(frame["method"], frame["prompt"], strict=True):
        if method not in parts and isinstance(prompt, dict):
            parts[method] = dynamic_parts(prompt)
    return parts


def paired_gains(group: pd.DataFrame, baseline: str, metric: str = "score", n_boot: int = 2000) -> pd.DataFrame:
    """Each dynamic method's gain over ``baseline`` per task, paired by seed and example.

    ``gain = mean_s(method_s - baseline_s)`` in points (×100) over seeds where both finished,
    from the recorded scores; the 95% interval is :func:`dp_bench.paired.paired_gain`'s
    bootstrap over seeds and examples, from the records' per-example predictions (NaN where
    a record lacks them). ``verdict`` calls it a gain only where the interval excludes zero.
    """
    ok = _scored(group, metric)
    base = ok[ok["method"] == baseline].set_index(["task", "seed"])
    dynamic = sorted({r.method for r in ok.itertuples() if r.method != baseline and is_dynamic(r.prompt)})
    rows = []
    for method in _order(dynamic, METHOD_ORDER):
        rows += _paired_rows(method, ok[ok["method"] == method].set_index(["task", "seed"]), base, metric, n_boot)
    return pd.DataFrame(rows, columns=GAIN_COLUMNS)


def _scored(group: pd.DataFrame, metric: str) -> pd.DataFrame:
    return group[(group["status"] == "finished") & group[metric].notna()]


def _paired_rows(method: str, mine: pd.DataFrame, base: pd.DataFrame, metric: str, n_boot: int) -> list[dict[str, Any]]:
    """Rows of :data:`GAIN_COLUMNS`: ``mine`` over ``base`` per task, both indexed by (task, seed)."""
    both = mine.index.intersection(base.index)
    rows = []
    for task in _order(both.get_level_values("task"), TASK_ORDER):
        seeds = sorted(s for t, s in both if t == task)
        diffs = [(mine.loc[(task, s), metric] - base.loc[(task, s), metric]) * 100 for s in seeds]
        pairs = [(Scored.from_predictions(task, mine.loc[(task, s), "predictions"]),
                  Scored.from_predictions(task, base.loc[(task, s), "predictions"])) for s in seeds]
        stats_ = dict.fromkeys(("ci_low", "ci_high", "t_low", "t_high", "sd_seed_pts", "seeds_for_power"), math.nan)
        if all(m is not None and b is not None for m, b in pairs) and metric == "score":
            stats_ = paired_gain(task, pairs, n_boot=n_boot)
        rows.append({"method": method, "task": task, "n": len(seeds), "gain_pts": float(np.mean(diffs)),
                     "ci_low": stats_["ci_low"], "ci_high": stats_["ci_high"],
                     "verdict": verdict(stats_["ci_low"], stats_["ci_high"]) if len(seeds) >= MIN_SEEDS else "too few seeds",
                     "t_low": stats_["t_low"], "t_high": stats_["t_high"],
                     "sd_seed_pts": stats_["sd_seed_pts"], "seeds_for_power": stats_["seeds_for_power"],
                     "seeds": ",".join(map(str, seeds))})
    return rows


def multitask_vs_single_task(group: pd.DataFrame, frame: pd.DataFrame, metric: str = "score",
                             n_boot: int = 2000) -> pd.DataFrame:
    """Each method's multitask runs (``group``) over its own single-task runs, per task of the mixture.

    A multitask run is paired with the full-data single-task run of the same method, task,
    backbone, seed and search setting that was trained under the same protocol
    (:func:`dp_bench.results.training_protocol`: epochs, input length, batch size, selection
    split, the method's model config), from any grid of ``frame``, on the same val.jsonl
    examples; the gain and its interval are those of :func:`paired_gains`. Column ``baseline``
    says ``single-task (<grids>)``.
    """
    keys = ["backbone", "method", "task", "seed", "setting", "protocol"]
    multi = _scored(group, metric)
    single = _scored(frame[(frame["regime"] == "full") & (frame["mixture"] == "")], metric)
    single = single.sort_values(["grid", "file"]).drop_duplicates(keys)  # one run per pairing, by grid name
    matched = multi.merge(single, on=keys, suffixes=("", "_single"))
    rows, grids = [], sorted(set(matched["grid_single"]))
    for method in _order(matched["method"], METHOD_ORDER):
        pairs = matched[matched["method"] == method].set_index(["task", "seed"])
        base = pairs[[c for c in pairs.columns if c.endswith("_single")]].rename(columns=lambda c: c[: -len("_single")])
        rows += _paired_rows(method, pairs, base, metric, n_boot)
    baseline = f"{SINGLE_TASK} ({', '.join(grids)})"
    return pd.DataFrame(rows, columns=GAIN_COLUMNS).assign(baseline=baseline)


def gains_with_baselines(group: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """:func:`paired_gains` over ``baseline``, plus each deep dynamic method over ``DEEP_BASELINE``.

    A dynamic prompt at every layer (``p_tuning_v2_ins_vec``) differs from ``prompt_tuning`` in
    depth as well as in its dynamic part; against the static deep prompt only the dynamic part
    differs. Column ``baseline`` names the method each row is measured against.
    """
    frames = [paired_gains(group, baseline).assign(baseline=baseline)]
    finished = group[group["status"] == "finished"]
    deep = {r.method for r in finished.itertuples() if is_dynamic(r.prompt) and r.prompt.get("depth") == "deep"}
    if baseline != DEEP_BASELINE and deep and (finished["method"] == DEEP_BASELINE).any():
        subset = group[group["method"].isin(deep | {DEEP_BASELINE})]
        frames.append(paired_gains(subset, DEEP_BASELINE).assign(baseline=DEEP_BASELINE))
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*GAIN_COLUMNS, "baseline"])


def constant_rows(group: pd.DataFrame) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """``{task: {metric: value ×100}}`` of always predicting the reported set's majority class,
    and of each metric's best constant answer, read from one finished run's predictions per task."""
    majority, best = {}, {}
    for task, rows in group[group["status"] == "finished"].groupby("task"):
        for predictions in rows["predictions"]:
            scored = Scored.from_predictions(task, predictions) if isinstance(predictions, dict) else None
            if scored is not None:
                majority[task] = {k: v * 100 for k, v in majority_metrics(task, scored).items()}
                best[task] = {k: v * 100 for k, v in best_constant_metrics(task, scored).items()}
                break
    return majority, best


def interval_shown(gains: pd.DataFrame) -> pd.Series:
    """Rows whose interval the table prints and the plot draws: computed, over ``MIN_SEEDS``+ seeds.

    Below ``MIN_SEEDS`` the verdict withholds judgement, and a bracket (then over examples
    nearly alone) would read as one; gains.csv keeps the computed bounds.
    """
    return gains["ci_low"].notna() & (gains["n"] >= MIN_SEEDS)


def gains_markdown(gains: pd.DataFrame) -> str:
    """The gains table as printed: intervals as ``[low, high]`` and power as a seed count, each "—" where
    :func:`interval_shown` withholds the interval."""
    def seeds_needed(x: float) -> str:
        return "—" if math.isnan(x) else "∞" if math.isinf(x) else f"{int(x)}"

    # The power figure rests on the spread of the per-seed differences: below MIN_SEEDS that
    # spread is as unreliable as the interval the table already withholds.
    shown_interval = interval_shown(gains)

    def bracket(low: pd.Series, high: pd.Series) -> list[str]:
        return [f"[{lo:+.2f}, {hi:+.2f}]" if show else "—" for lo, hi, show in zip(low, high, shown_interval, strict=True)]

    # (title, cells, alignment) in one place, so a renamed column keeps its alignment.
    columns = [
        ("method", gains["method"], "left"),
        ("vs", gains["baseline"], "left"),
        ("task", gains["task"], "left"),
        ("seeds", gains["n"].astype(str), "right"),
        ("gain (points)", gains["gain_pts"].map(lambda x: f"{x:+.2f}"), "right"),
        ("95% CI (seeds × examples)", bracket(gains["ci_low"], gains["ci_high"]), "left"),
        ("verdict", gains["verdict"], "left"),
        ("95% t over seeds", bracket(gains["t_low"], gains["t_high"]), "left"),
        ("seeds for 80% power", [seeds_needed(x) if show else "—"
                                 for x, show in zip(gains["seeds_for_power"], shown_interval, strict=True)], "right"),
    ]
    shown = pd.DataFrame({title: list(cells) for title, cells, _ in columns})
    # As formatted above: tabulate's number parsing would print "+0.60" as "0.6" and left-align
    # a power column that is all "—"; counts and points stay right-aligned.
    return shown.to_markdown(index=False, disable_numparse=True, colalign=[align for _, _, align in columns])


# ---------------------------------------------------------------- tables


def regime_family(regime: str) -> str:
    """``few_shot_sample`` -> ``few_shot``: reference tables name the family only."""
    return "few_shot" if regime.startswith("few_shot") else regime


def wide_table(cells: pd.DataFrame, reference: pd.DataFrame, regime: str, metric: str,
               majority: dict[str, dict[str, float]] | None = None, min_seeds: int = 1,
               constant: dict[str, dict[str, float]] | None = None) -> pd.DataFrame:
    """Display table: a row per method (reference rows under matching ones), a column per task and avg.

    ``majority`` and ``constant`` (:func:`constant_rows`) add the majority-class row on top and
    the best constant answers' row under it where one of them shows above the majority.
    """
    tasks = _order(set(cells["task"]) - {AVG}, TASK_ORDER) + [AVG]
    # A source that reports none of this table's tasks gets no row: an empty one would read as "reported, no number".
    refs = reference[(reference["metric"] == metric) & reference["regime"].isin([regime, regime_family(regime)])
                     & reference["task"].isin(tasks)]
    rows: dict[str, dict[str, str]] = {}

    def shown(values: dict[str, dict[str, float]]) -> dict[str, str]:
        return {t: f"{values[t][metric]:.1f}" if t in values and metric in values[t] else "" for t in tasks}

    if majority:
        rows[MAJORITY] = shown(majority)
        if constant and shown(constant) != rows[MAJORITY]:
            rows[BEST_CONSTANT] = shown(constant)
    for method in _order(cells["method"], METHOD_ORDER):
        mine = cells[cells["method"] == method].set_index("task")
        rows[method] = {t: format_cell(mine.loc[t], min_seeds) if t in mine.index else "—" for t in tasks}
        for (backbone, source), ref in refs[refs["method"] == method].groupby(["backbone", "source"], sort=True):
            values = ref.groupby("task")["value"].first()
            label = f"↳ reported: {backbone}, {source}"
            rows[label] = {t: f"{values[t]:.1f}" if t in values.index else "" for t in tasks}
    return pd.DataFrame.from_dict(rows, orient="index", columns=tasks).rename_axis("method")


def status_line(group: pd.DataFrame, planned: list[Run] = ()) -> str:
    """``60 finished, 1 failed; machines: NVIDIA H200 (56), CPU (5)``: a section's runs, and where they ran.

    GPU runs reproduce within noise, CPU runs exactly on the same CPU arithmetic (``machine.cpu``),
    so a reader must see which is which.
    With the runs its grid file plans (``planned``), it also counts those without a record
    and names the methods that have none at all: a table lists only methods with records,
    so a method not yet run would otherwise go unmentioned.
    """
    runs = group.drop_duplicates("file")
    counts = runs["status"].value_counts()
    statuses = ", ".join(f"{counts[s]} {s}" for s in ("finished", "failed", "interrupted") if s in counts)
    recorded = {record_stem(f) for f in runs["file"]}
    missing = [r for r in planned if r.stem not in recorded]
    if missing:
        absent = _order({r.method for r in missing} - set(runs["method"]), METHOD_ORDER)
        statuses += f", {len(missing)} of the {len(planned)} planned not run yet"
        statuses += f" (no run of {', '.join(absent)})" if absent else ""
    machines = runs["machine"].value_counts()  # results.machine_kind already names a missing machine "unknown"
    kinds = sorted(machines.index, key=lambda m: (-machines[m], m))
    return f"{statuses}; machines: " + ", ".join(f"{m} ({machines[m]})" for m in kinds)


def budget_text(group: pd.DataFrame, tuned: bool) -> str:
    """``10 epochs, batch 16, max length 128, learning rates ×0.3``: what a section's runs trained with.

    Read from the records' own configs (their ``protocol``), so a grid's ``overrides`` show
    beside its numbers; values that differ between runs are joined with "or". A learning-rate
    scale other than 1 is named too, except in a searched section (``tuned``), where it is
    each method's choice and the search table names it.
    """
    protocols = [json.loads(p) for p in group.drop_duplicates("file")["protocol"].dropna()]

    def values(pick) -> str:
        found = {pick(p) for p in protocols} - {None}
        return " or ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in sorted(found, key=float))  # all four are numbers

    parts = {"epochs": values(lambda p: p.get("trainer.max_epochs")),
             "batch": values(lambda p: p.get("data.batch_size")),
             "max length": values(lambda p: p.get("data.max_length"))}
    text = ", ".join(f"{v} {k}" if k == "epochs" else f"{k} {v}" for k, v in parts.items() if v)
    scales = values(lambda p: (p.get("model") or {}).get("lr_scale"))
    if scales and scales != "1" and not tuned:
        text += f", learning rates ×{scales} (`model.lr_scale`)"
    return text


def plan_sections(grid_files: dict[str, Path]) -> dict[tuple, list[Run]]:
    """The runs the grid files plan, by section (grid, regime, backbone, mixture), read once."""
    sections: dict[tuple, list[Run]] = {}
    for grid, path in grid_files.items():
        if not path.is_file():  # a record's grid may have no file
            continue
        for run in planned_runs(path):
            # The regime as the record names it (few_shot_sample, not the grid file's few_shot).
            key = (grid, expected_identity(run)["regime"], run.backbone, mixture_of(run.task))
            sections.setdefault(key, []).append(run)
    return sections


# ---------------------------------------------------------------- figures


def plot_decisions(group: pd.DataFrame, field: str, method: str, title: str, path: Path) -> Path | None:
    """Histograms of one policy's per-example choice, a panel per task, seeds pooled."""
    runs = group[(group["method"] == method) & (group["status"] == "finished")]
    values = {
        task: np.concatenate([np.asarray(d[field], dtype=float) for d in rows["decisions"] if field in d])
        for task, rows in runs.groupby("task") if any(field in d for d in rows["decisions"])
    }
    if not values:
        return None
    tasks = _order(values, TASK_ORDER)
    # The axis spans every possible choice (0..L, or the pool), not only the ones taken.
    prompt = next((p for p in runs["prompt"] if isinstance(p, dict)), {})
    bound = prompt.get("pool_size", 1) - 1 if field == "pool" else prompt.get("length", 0)
    fig, axes = plt.subplots(1, len(tasks), figsize=(max(4.0, 3.2 * len(tasks)), 3.0), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        v = values[task]
        high = max(int(v.max()) if len(v) else 0, int(bound))
        ax.hist(v, bins=np.arange(-0.5, high + 1.5, 1.0), color="tab:blue", edgecolor="white")
        seeds = runs.loc[runs["task"] == task, "seed"].nunique()
        ax.set_title(f"{task} ({len(v)} predictions, {seeds} seeds)", fontsize=9)
        ax.set_xlabel(DECISION_LABELS.get(field, field), fontsize=8)
    axes[0][0].set_ylabel("examples")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


DECISION_LABELS = {
    "position": "prompt vectors after the input (0 = prefix)",
    "length": "prompt length kept",
    "pool": "prompt of the pool with most weight",
}


def plot_gains(gains: pd.DataFrame, baseline: str, title: str, path: Path) -> Path | None:
    """Grouped bars: gain over the baseline per task and method, 95% CI whiskers (n ≥ MIN_SEEDS)."""
    if gains.empty:
        return None
    tasks = _order(gains["task"], TASK_ORDER)
    methods = _order(gains["method"], METHOD_ORDER)
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(tasks) + 1.5), 3.2))
    for i, method in enumerate(methods):
        mine = gains[gains["method"] == method].set_index("task").reindex(tasks)
        x = np.arange(len(tasks)) + (i - (len(methods) - 1) / 2) * width
        err = np.vstack([mine["gain_pts"] - mine["ci_low"], mine["ci_high"] - mine["gain_pts"]])
        err[:, ~interval_shown(mine).to_numpy()] = np.nan  # no whisker where the table prints no interval
        # A percentile interval need not contain the point estimate: clip, never a negative bar.
        ax.bar(x, mine["gain_pts"], width, yerr=np.clip(np.nan_to_num(err), 0, None), capsize=2, label=method)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(tasks)), tasks)
    ax.set_ylabel(f"gain over {baseline} (points)")
    ax.set_title(title, fontsize=8, wrap=True)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- the whole render


def slug(*parts: str) -> str:
    return "__".join(re.sub(r"[^A-Za-z0-9.+-]+", "-", p).strip("-") for p in parts if p)


def render(
    runs_dir: str | Path = "results/runs",
    out_dir: str | Path = "results/tables",
    reference_dir: str | Path = "experiments/reference",
    baseline: str = "prompt_tuning",
    grids: list[str] | None = None,
    monitor: str = "val/score",
    bench_dir: str | Path | None = "results/bench",
    tuned_dir: str | Path | None = None,
    grids_dir: str | Path | None = None,
) -> Path:
    """Write ``summary.md``, CSVs and figures for the records under ``runs_dir``.

    Args:
        runs_dir: folder searched recursively for run records.
        out_dir: output folder; the files the previous render wrote there are replaced.
        reference_dir: reference numbers (``*.csv``) shown beside ours.
        baseline: method the gains figure compares dynamic methods with.
        grids: only records of these grids (None: all).
        monitor: the selection metric named in the caption.
        bench_dir: folder of ``dp-bench bench`` Markdown reports, appended as they are.
        tuned_dir: where the search choices of each searched grid go (``<grid>.yaml``); None: nowhere.
        grids_dir: grid files (``<grid>.yaml``): each section's Runs line counts the runs its
            grid plans that have no record yet; None: records only.

    Returns:
        The path of ``summary.md``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in (out / GENERATED_LIST).read_text().split() if (out / GENERATED_LIST).is_file() else []:
        (out / name).unlink(missing_ok=True)
    frame, problems = load_results(runs_dir)
    frame, duplicates = prepare(frame)
    everything = frame  # multitask runs are compared with single-task runs of any grid
    if grids:
        frame = frame[frame["grid"].isin(grids)]
    reference = load_reference(reference_dir)
    grid_files = {g: Path(grids_dir) / f"{g}.yaml" for g in frame["grid"].unique()} if grids_dir else {}
    plans = plan_sections(grid_files)
    written: list[Path] = []
    lines = [
        "# dp-bench results",
        "",
        f"Generated by `dp-bench table` from {frame['file'].nunique()} run records under `{runs_dir}`; "
        "do not edit (rerun `make table`). Backbones are named in every section title; reference "
        "rows (↳) name their own. Every published comparison of a dynamic prompt with its static one, "
        f"on one page: [{GLANCE}]({GLANCE}).",
        "",
        CAPTION.format(metric="official score (or accuracy)", monitor=monitor, min_seeds=MIN_SEEDS),
        "",
    ]
    warnings = [*problems, *duplicates]
    if warnings:
        lines += ["## Warnings", "", *[f"- {w}" for w in warnings], ""]
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)
    all_cells, all_gains = [], []
    searched: dict[str, dict[str, tuple[pd.DataFrame, pd.Series]]] = {}
    groups = list(frame.groupby(list(GROUP_KEYS), sort=True)) if not frame.empty else []
    families = dict(REGIME_FAMILIES)
    for family in [*families, *sorted({regime_family(k[1]) for k, _ in groups} - set(families))]:
        mine = [(k, g) for k, g in groups if regime_family(k[1]) == family]
        lines += [f"## {families.get(family, family)}", ""]
        if not mine:
            lines += [f"No records yet: `dp-bench grid --config experiments/grids/{FAMILY_GRIDS.get(family, 'smoke')}.yaml`.", ""]
        lines += group_sections(mine, reference, baseline, out, all_cells, all_gains, written, searched, everything, plans)
    if frame.empty:
        lines += ["No run records to show yet: run `dp-bench grid --config experiments/grids/smoke.yaml`.", ""]
    lines += bench_section(bench_dir)
    for grid, tables_of_grid in searched.items() if tuned_dir is not None else ():
        seeds = sorted({int(s) for _, seeds_ in tables_of_grid.values() for s in seeds_})
        write_choices({name: choices for name, (choices, _) in tables_of_grid.items()}, grid, tuned_dir, seeds=seeds)
    columns = [*GROUP_KEYS, "settings", "metric", "method", "task", "mean", "std", "n", "failed", "interrupted", "no_metric"]
    tables = {
        "cells.csv": pd.concat(all_cells, ignore_index=True)[columns].rename(columns={"mean": "mean_pct", "std": "std_pct"}) if all_cells else pd.DataFrame(columns=columns),
        "gains.csv": pd.concat(all_gains, ignore_index=True) if all_gains else pd.DataFrame(),
        "runs.csv": frame.drop(columns=["prompt", "decisions", "predictions", "protocol"]).sort_values(["file", "task"]),
    }
    for filename, table in tables.items():
        table.to_csv(out / filename, index=False, float_format="%.6g")
        written.append(out / filename)
    glance = out / GLANCE
    glance.write_text("\n".join(glance_lines(
        regime_with_mixture(tables["gains.csv"]), parts_of_methods(frame), (baseline, DEEP_BASELINE), MIN_SEEDS,
        _order(frame["task"], TASK_ORDER), SINGLE_TASK)))
    written.append(glance)
    summary = out / "summary.md"
    summary.write_text("\n".join(lines))
    # The README gets the same text without the figures (they stay in summary.md).
    short = out / README_SUMMARY
    short.write_text("\n".join(without_figures(lines, summary.name)))
    written += [summary, short]
    (out / GENERATED_LIST).write_text("\n".join(sorted(p.name for p in written)) + "\n")
    return summary


def regime_with_mixture(gains: pd.DataFrame) -> pd.DataFrame:
    """``gains`` with the mixture, if any, named in the regime and the backbone by its name, as
    section titles show them (:func:`regime_text`)."""
    if gains.empty:
        return gains
    named = [regime_text(regime, mixture) for regime, mixture in zip(gains["regime"], gains["mixture"], strict=True)]
    return gains.assign(regime=named, backbone=[Path(b).name for b in gains["backbone"]])


def regime_text(regime: str, mixture: str) -> str:
    """``multitask (cb+copa)``: the regime, with the mixture, if any, in brackets."""
    return f"{regime} ({mixture})" if mixture else regime


def without_figures(lines: list[str], full: str) -> list[str]:
    """``lines`` minus the figure lines (and the blank line after each), a pointer in front."""
    kept, skip = [], False
    for line in lines:
        if skip and not line:
            skip = False
            continue
        skip = line.startswith("![")
        if not skip:
            kept.append(line)
    return kept[:2] + [f"Figures (chosen positions, lengths and pool members; gains): [{full}]({full}).", ""] + kept[2:]


def title_of(key: tuple) -> str:
    """``few_shot_sample · all-MiniLM-L6-v2`` (the mixture in brackets): a table of a grid."""
    _, regime, backbone, mixture = key
    return " · ".join(p for p in (regime_text(regime, mixture), Path(backbone).name) if p)


def group_sections(
    groups: list[tuple[tuple, pd.DataFrame]], reference: pd.DataFrame, baseline: str, out: Path,
    all_cells: list[pd.DataFrame], all_gains: list[pd.DataFrame], written: list[Path],
    searched: dict[str, dict[str, tuple[pd.DataFrame, pd.Series]]], everything: pd.DataFrame,
    plans: dict[tuple, list[Run]],
) -> list[str]:
    """One section per (grid, regime, backbone, mixture): tables, figures and gains.

    Appends to ``all_cells`` / ``all_gains`` (for the CSVs, whose ``settings`` column says
    "tuned", "tuned, search under way", "as configured" or "" for a grid without search), ``written`` (the files made)
    and ``searched`` (grid -> table title -> its search choices and seeds). A multitask
    section also compares each method with its single-task runs among ``everything``, and
    ``plans`` (section key -> the runs its grid file plans) lets the Runs line say what has not run yet.
    """
    lines = []
    for key, full_group in groups:
        search_lines, group, settings = [], full_group, ""
        planned = [(r.method, r.task, r.setting) for r in plans.get(key, [])]
        if has_search(full_group, [setting for *_, setting in planned]):
            choices = choose_settings(full_group, planned)
            group, settings = chosen_runs(full_group, choices), tuned_label(choices)
            search_lines = search_section(full_group, choices, baseline, key, all_cells, all_gains)
            searched.setdefault(key[0], {})[title_of(key)] = (choices, full_group["seed"])
        grid, regime, backbone, mixture = key
        shown = Path(backbone).name  # a local path (.device/...) is named by its folder or file
        title = " · ".join(p for p in (grid, title_of(key)) if p)
        name = slug(grid, regime, mixture, backbone)
        reports = sorted(set(group.loc[group["status"] == "finished", "report"].dropna()))
        protocol = "; ".join(PROTOCOLS[r] for r in reports) or "no finished run"
        budget = budget_text(group, tuned=bool(settings))
        lines += [f"### {title}", "",
                  f"Runs: {status_line(full_group, plans.get(key, []))}. Budget: {budget or 'not recorded'}. "
                  f"Protocol: {protocol}.", "", *search_lines]
        majority, constant = constant_rows(group)
        for metric, label in METRICS.items():
            cells = cell_stats(group, metric)
            all_cells.append(cells.assign(**dict(zip(GROUP_KEYS, key, strict=True)), settings=settings, metric=metric))
            table = wide_table(cells, reference, regime, metric, majority, MIN_SEEDS, constant)
            lines += [f"**{label.capitalize()}** ({shown})", "", table.to_markdown(), ""]
        gains = gains_with_baselines(group, baseline)
        if not gains.empty:  # an empty frame's object columns would turn concat's floats to objects
            all_gains.append(gains.assign(**dict(zip(GROUP_KEYS, key, strict=True)), settings=settings))
        figures = [plot_gains(gains[gains["baseline"] == baseline], baseline, f"{title}\ngain over {baseline}, 95% CI (bootstrap over seeds and examples, paired)", out / f"{name}__gain.png")]
        for field in DECISIONS:
            for method in _order(group["method"], METHOD_ORDER):
                figures.append(plot_decisions(group, field, method, f"{title}\n{method}: chosen {field}", out / f"{name}__{field}__{method}.png"))
        for figure in filter(None, figures):
            written.append(figure)
            lines += [f"![{figure.stem}]({figure.name})", ""]
        if not gains.empty:
            also = f", and deep dynamic prompts over {DEEP_BASELINE}" if (gains["baseline"] != baseline).any() else ""
            lines += [f"Gains over {baseline}{also} ({GAINS_NOTE}):", "", gains_markdown(gains), ""]
        if mixture:
            lines += single_task_lines(group, everything, key, settings, all_gains)
    return lines


def single_task_lines(group: pd.DataFrame, everything: pd.DataFrame, key: tuple, settings: str,
                      all_gains: list[pd.DataFrame]) -> list[str]:
    """A multitask section's comparison with single-task training (:func:`multitask_vs_single_task`)."""
    versus = multitask_vs_single_task(group, everything)
    if versus.empty:
        return [f"Multitask vs {SINGLE_TASK}: no full-data single-task runs of these methods and tasks under "
                f"{SAME_PROTOCOL}.", ""]
    all_gains.append(versus.assign(**dict(zip(GROUP_KEYS, key, strict=True)), settings=settings))
    return [f"Multitask over {SINGLE_TASK} training (each method against its own full-data single-task runs "
            f"under {SAME_PROTOCOL}; {GAINS_NOTE}):", "", gains_markdown(versus), ""]


def search_section(group: pd.DataFrame, choices: pd.DataFrame, baseline: str, key: tuple,
                   all_cells: list[pd.DataFrame], all_gains: list[pd.DataFrame]) -> list[str]:
    """The search of a grid: every setting's selection score; the as-configured numbers go to the CSVs."""
    configured = group[group["setting"] == ""]
    identity = dict(zip(GROUP_KEYS, key, strict=True))
    for metric in METRICS:
        all_cells.append(cell_stats(configured, metric).assign(**identity, settings=AS_CONFIGURED, metric=metric))
    gains = gains_with_baselines(configured, baseline)
    if not gains.empty:
        all_gains.append(gains.assign(**identity, settings=AS_CONFIGURED))
    shown = choices_table(choices, _order(choices["run_task"], TASK_ORDER), _order(choices["method"], METHOD_ORDER))
    settings = ", ".join(f"`{setting_text(s)}`" for s in sorted(set(choices["setting"])))
    return [
        f"Hyperparameter search, the same for every method: settings {settings}, each on the same seeds. "
        "The tables below report, per method and task, the setting with the best mean score on the "
        "model-selection split (in bold here: mean selection-split score ×100 of each setting's "
        "selected checkpoints; a tie (marked \"tie\") goes to the setting listed first); val.jsonl "
        "plays no part in the choice. The numbers of the settings as configured are in `cells.csv` "
        "and `gains.csv` (`settings` column)." + under_way_note(choices), "",
        shown.to_markdown(index=False), "",
    ]


def under_way_note(choices: pd.DataFrame) -> str:
    """Names, per task, the settings its choice leaves out: not (yet) run by every method on every seed."""
    per_task = [f"{task} {', '.join(f'`{setting_text(s)}`' for s in waiting)}"
                for task, waiting in waiting_settings(choices).items()]
    if not per_task:
        return ""
    return (" Not yet part of the choice, because not every method has a run of every seed in them "
            f'(partly run: marked "under way" below; not run: —): {"; ".join(per_task)}.')


def bench_section(bench_dir: str | Path | None) -> list[str]:
    """The benchmark reports (``dp-bench bench`` writes them), headings moved two levels down."""
    reports = sorted(Path(bench_dir).glob("*.md")) if bench_dir and Path(bench_dir).is_dir() else []
    if not reports:
        return []
    lines = ["## Cost benchmarks", "", f"From `{bench_dir}` (`dp-bench bench`); each report names its machine.", ""]
    for report in reports:
        for line in report.read_text().splitlines():
            lines.append("##" + line if line.startswith("#") else line)
        lines.append("")
    return lines


README_BEGIN = "<!-- results: generated by `make table`, do not edit -->"
README_END = "<!-- /results -->"


def embed_in_readme(readme: str | Path, summary: Path) -> bool:
    """Put ``summary.md`` between the README's result markers, byte for byte; False if it has none."""
    readme = Path(readme)
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        return False
    # Figures and the full summary are linked relative to the summary; from the README they
    # sit under its folder.
    folder = Path(os.path.relpath(summary.parent.resolve(), readme.parent.resolve())).as_posix()
    body = re.sub(r"\]\(([^)/]+\.(?:png|md))\)", lambda m: f"]({folder}/{m.group(1)})", summary.read_text())
    head, rest = text.split(README_BEGIN, 1)
    tail = rest.split(README_END, 1)[1]
    readme.write_text(f"{head}{README_BEGIN}\n{body.rstrip()}\n{README_END}{tail}")
    return True


def main(argv: list[str] | None = None) -> int:
    """``dp-bench table``: regenerate ``results/tables`` from the run records."""
    import argparse

    parser = argparse.ArgumentParser(prog="dp-bench table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="results/runs", help="folder of run records, searched recursively (default: %(default)s)")
    parser.add_argument("--out", default="results/tables", help="output folder (default: %(default)s)")
    parser.add_argument("--reference", default="experiments/reference", help="folder of reference-number CSVs (default: %(default)s)")
    parser.add_argument("--baseline", default="prompt_tuning", help="method the gains are measured against (default: %(default)s)")
    parser.add_argument("--grid", action="append", help="only records of this grid (repeatable; default: all)")
    parser.add_argument("--bench", default="results/bench", help="folder of benchmark reports to include (default: %(default)s)")
    parser.add_argument("--readme", default=None, help="also embed the summary between this file's result markers (make table: README.md)")
    parser.add_argument("--grids", default="experiments/grids", help="grid files (<grid>.yaml) whose planned runs each section's Runs line compares with the records; '' for none (default: %(default)s)")
    parser.add_argument("--tuned", default=None, help="write each searched grid's choices to <this folder>/<grid>.yaml (make table: experiments/tuned)")
    cfg = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        summary = render(cfg.runs, cfg.out, cfg.reference, cfg.baseline, cfg.grid, bench_dir=cfg.bench, tuned_dir=cfg.tuned, grids_dir=cfg.grids or None)
    except ValueError as err:
        print(f"dp-bench table: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {summary}")
    if cfg.readme and embed_in_readme(cfg.readme, summary.parent / README_SUMMARY):
        print(f"embedded it in {cfg.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
