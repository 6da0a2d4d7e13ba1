"""Hyperparameter search: each method's setting chosen on the model-selection split alone.

A grid's ``search`` (:class:`dp_bench.grid.GridSpec`) runs every cell (task, method, seed) in
every setting, the same budget for every method. Here, per method and task (per task mixture
for multitask runs), the setting whose finished seeds have the best mean *selection* score
wins: the monitored score at each run's selected checkpoint, on the split that chose that
checkpoint (a holdout of train for ``data.selection: train_holdout``), never val.jsonl when
that is the reported set. The tables then report the chosen setting's runs only, so the
choice never sees the reported set (with ``data.selection: val`` it does, as the protocol
line of such a table says). Ties go to the setting listed first ("", the grid as configured,
before the others by name; means equal up to the order of summation are a tie); a setting
with fewer finished seeds than the most complete one cannot win (a search must compare like
with like). A search that is still under way (its
runs are committed as they come) is not yet a choice: a setting takes part in a task's choice
only once every method of that task has a record in it for every seed, so no method is tuned
over more settings than another.

:func:`write_choices` writes the choices, the search they came from and the selection scores
to ``experiments/tuned/<grid>.yaml``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dp_bench.grid import setting_label

AS_CONFIGURED = "as configured"
TUNED = "tuned"
TUNED_UNDER_WAY = "tuned, search under way"  # some setting not yet part of some task's choice
CHOICE_COLUMNS = ["method", "run_task", "setting", "chosen", "tie", "selection_mean_pct", "n", "complete", "in_search"]
# Means of the same scores summed in another order differ in the last bits ((0.3 + 0.2) + 0.1
# != (0.1 + 0.2) + 0.3), so means this close are a tie, not a win; real differences in a
# selection score (one example of a few hundred, over a few seeds) are many orders larger.
TIE_TOLERANCE = 1e-9


def label(setting: str) -> str:
    """A setting as printed: ``""`` is the grid as configured."""
    return setting or AS_CONFIGURED


def has_search(group: pd.DataFrame, planned_settings: Iterable[str] = ()) -> bool:
    """Whether a section is a search: its records, or the settings its grid file plans, name more than one setting."""
    return len(set(group["setting"].fillna("")) | set(planned_settings)) > 1


def searched_settings(group: pd.DataFrame) -> dict[str, set[str]]:
    """``{run_task: settings that take part in its choice}``.

    A setting takes part once it has a record (any status) for every (method, seed) that any
    setting of the task has: the same budget for every method. Where none does yet, the grid
    as configured ("") stands alone, and is reported untuned.
    """
    runs = group.assign(setting=group["setting"].fillna("")).drop_duplicates("file")
    searched = {}
    for run_task, mine in runs.groupby("run_task", sort=True):
        cells = {s: set(zip(r["method"], r["seed"], strict=True)) for s, r in mine.groupby("setting")}
        every_cell = set().union(*cells.values())
        searched[run_task] = {s for s, have in cells.items() if have == every_cell} or {""}
    return searched


def choose_settings(group: pd.DataFrame, planned: Iterable[tuple[str, str, str]] = ()) -> pd.DataFrame:
    """One row per (method, run_task, setting): mean selection score ×100, seeds, and which wins.

    ``tie`` marks the settings that share the best mean with another (the first listed of them
    wins). ``in_search`` is False for a setting that not every method of the task has run on
    every seed yet (:func:`searched_settings`); ``complete`` is False where a setting has fewer
    finished seeds than the cell's most complete setting. Neither kind is ever chosen.
    ``planned`` names the (method, run_task, setting) cells of the grid file's search: a setting
    no run has reached yet gets its rows too (n = 0), so the search still reads as under way.
    """
    planned_settings: dict[tuple[str, str], set[str]] = {}
    for method, run_task, setting in planned:
        planned_settings.setdefault((method, run_task), set()).add(setting)
    finished = group[(group["status"] == "finished") & group["selection_score"].notna()]
    per_run = finished.drop_duplicates("file")  # a multitask run has a row per task, one selection score
    in_search = searched_settings(group)
    rows = []
    for (method, run_task), runs in group.groupby(["method", "run_task"], sort=True):
        mine = per_run[(per_run["method"] == method) & (per_run["run_task"] == run_task)]
        settings = sorted(set(runs["setting"].fillna("")) | planned_settings.get((method, run_task), set()))  # "" first
        stats = {s: mine.loc[mine["setting"] == s, "selection_score"].astype(float) for s in settings}
        taking_part = [s for s in settings if s in in_search[run_task]]
        most = max((len(stats[s]) for s in taking_part), default=0)
        eligible = [s for s in taking_part if len(stats[s]) == most and most > 0]
        means = {s: float(stats[s].mean()) for s in settings if len(stats[s])}
        tied = best_settings(eligible, {s: means[s] for s in eligible})
        for s in settings:
            rows.append({
                "method": method, "run_task": run_task, "setting": s, "chosen": bool(tied) and s == tied[0],
                "tie": len(tied) > 1 and s in tied,
                "selection_mean_pct": means[s] * 100 if s in means else float("nan"),
                "n": len(stats[s]), "complete": len(stats[s]) == most, "in_search": s in taking_part,
            })
    return pd.DataFrame(rows, columns=CHOICE_COLUMNS)


def best_settings(settings: list[str], means: dict[str, float]) -> list[str]:
    """The settings whose mean ties the best one (:data:`TIE_TOLERANCE`), in the order given."""
    if not settings:
        return []
    best = max(means.values())
    return [s for s in settings if math.isclose(means[s], best, rel_tol=TIE_TOLERANCE, abs_tol=TIE_TOLERANCE)]


def waiting_settings(choices: pd.DataFrame) -> dict[str, list[str]]:
    """``{run_task: settings of the search not yet part of its choice}``, tasks with none left out."""
    every_setting = set(choices["setting"])
    waiting = {}
    for run_task, rows in choices.groupby("run_task", sort=True):
        left_out = sorted(every_setting - set(rows.loc[rows["in_search"], "setting"]))
        if left_out:
            waiting[run_task] = left_out
    return waiting


def tuned_label(choices: pd.DataFrame) -> str:
    """How a searched section's chosen numbers are labelled in the CSVs' ``settings`` column."""
    return TUNED_UNDER_WAY if waiting_settings(choices) else TUNED


def chosen_runs(group: pd.DataFrame, choices: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``group`` whose (method, run_task, setting) was chosen.

    A cell whose search has no finished run keeps its runs of the first setting, so its
    failures still show in the table.
    """
    keys = ["method", "run_task", "setting"]
    picked = choices[choices["chosen"]][keys]
    unscored = choices.groupby(["method", "run_task"])["chosen"].transform("any").eq(False)
    fallback = choices[unscored].drop_duplicates(["method", "run_task"])[keys]
    keep = pd.concat([picked, fallback]).assign(_keep=True)
    merged = group.assign(setting=group["setting"].fillna("")).merge(keep, on=keys, how="left")
    return group[merged["_keep"].fillna(False).to_numpy()]


def choices_table(choices: pd.DataFrame, task_order: list[str], method_order: list[str]) -> pd.DataFrame:
    """Display: a row per (method, setting), a column per task; the chosen setting in bold, ties marked."""
    def cell(row: pd.Series) -> str:
        if row["n"] == 0:
            return "—"
        text = f"{row['selection_mean_pct']:.1f} (n={row['n']})"
        if not row["in_search"]:
            return f"{text}, under way"
        text = f"**{text}**" if row["chosen"] else text
        return f"{text}, tie" if row["tie"] else text

    tasks = [t for t in task_order if t in set(choices["run_task"])]
    rows = {}
    for method in method_order:
        mine = choices[choices["method"] == method]
        for setting in sorted(set(mine["setting"])):
            by_task = mine[mine["setting"] == setting].set_index("run_task")
            rows[(method, label(setting))] = {t: cell(by_task.loc[t]) if t in by_task.index else "—" for t in tasks}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=tasks)
    table.index = pd.MultiIndex.from_tuples(table.index, names=["method", "setting"])
    return table.reset_index()


def search_flags(grid: str, grids_dir: str | Path = "experiments/grids") -> dict[str, dict[str, Any]]:
    """``{setting label: its overrides}`` from the grid's YAML (empty when it has no file)."""
    path = Path(grids_dir) / f"{grid}.yaml"
    if not path.is_file():
        return {}
    search = (yaml.safe_load(path.read_text()) or {}).get("search") or [{}]
    return {setting_label(s): dict(s) for s in search}


def choice_entries(choices: pd.DataFrame, flags: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{task: {method: {chosen, flags, selection_score_pct[, under_way][, not_run]}}}`` for one table's choices."""
    tuned: dict[str, dict[str, Any]] = {}
    every_setting = sorted(set(choices["setting"]))  # of the table, as waiting_settings counts them
    for (run_task, method), cell in choices.groupby(["run_task", "method"], sort=True):
        winner = cell[cell["chosen"]]
        entry: dict[str, Any] = {"chosen": label(winner["setting"].iloc[0]) if len(winner) else None}
        if len(winner):
            entry["flags"] = {f"--{k}": v for k, v in flags.get(winner["setting"].iloc[0], {}).items()}
        entry["selection_score_pct"] = {
            label(r.setting): round(r.selection_mean_pct, 2) for r in cell.itertuples() if r.n
        }
        # Settings of the search not yet compared (searched_settings): begun, or without a run yet.
        waiting = cell[~cell["in_search"]]
        if (waiting["n"] > 0).any():
            entry["under_way"] = [label(s) for s in waiting.loc[waiting["n"] > 0, "setting"]]
        begun = set(cell.loc[cell["n"] > 0, "setting"])
        if not_run := [label(s) for s in every_setting if s not in begun]:
            entry["not_run"] = not_run
        tuned.setdefault(run_task, {})[method] = entry
    return tuned


def write_choices(tables: dict[str, pd.DataFrame], grid: str, out_dir: str | Path,
                  grids_dir: str | Path = "experiments/grids", seeds: list[int] | None = None) -> Path:
    """``<out_dir>/<grid>.yaml``: per task and method the chosen flags and every setting's score.

    ``tables`` maps each of the grid's tables (``"<regime> · <backbone>"``) to its choices; a
    grid with one table (the usual case) gets its tasks at the top level.
    """
    flags = search_flags(grid, grids_dir)
    tuned = {name: choice_entries(choices, flags) for name, choices in tables.items()}
    if len(tuned) == 1:
        (tuned,) = tuned.values()
    header = [
        f"# Generated by `make table` (dp_bench/search.py) from the run records of grid {grid}; do not edit.",
        f"# The search: experiments/grids/{grid}.yaml `search` "
        f"({', '.join(label(s) for s in flags) or 'settings as recorded'}), every method and task"
        + (f" on seeds {', '.join(map(str, seeds))}." if seeds else "."),
        "# Chosen: the setting with the best mean score on the model-selection split (each seed's",
        "# selected checkpoint), ties to the setting listed first; val.jsonl plays no part. To rerun a",
        "# choice, add its flags to the method's `dp-bench fit` command (none: the method as configured).",
        "# selection_score_pct: mean selection-split score x100 of each setting.",
    ]
    if any(waiting_settings(choices) for choices in tables.values()):
        header += [
            "# under_way / not_run: settings of the search not yet part of the choice, because not every",
            "# method has run every seed of them: this method has runs of them so far / none yet.",
        ]
    path = Path(out_dir) / f"{grid}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(header) + "\n" + yaml.safe_dump(tuned, sort_keys=False, allow_unicode=True))
    return path
