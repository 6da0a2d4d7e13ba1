"""Every published comparison of a dynamic prompt with its static one, on one page.

The paper's question is whether choosing a part of the prompt (position, length,
representation) per task or per instance beats the static prompt. Its answer is spread over
every grid's gains table; this page gathers, from the rows of ``gains.csv``, the
comparisons the tables publish (each grid at the setting it reports, over enough seeds to
give an interval) into one block per dynamic part, and counts how many intervals exclude
zero against how many chance alone would give, so a reader sees the whole answer and its
multiplicity at once. ``make table`` writes it as ``results/tables/glance.md``.
"""

from __future__ import annotations

import pandas as pd

# A searched grid's rows at its configured values are kept in gains.csv, but not what it reports.
from dp_bench.search import AS_CONFIGURED

# A dynamic part of the prompt -> (its heading, whether a prompt config chooses it dynamically).
PARTS = {
    "position": ("Position, chosen per task or per instance",
                 lambda p: p.get("position") in ("task", "instance")),
    "length": ("Length, chosen per instance", lambda p: p.get("length_policy") == "instance"),
    "representation": ("Representation, a per-instance mixture of prompt pools",
                       lambda p: p.get("representation") == "instance_pool"),
}
REPORTED_VERDICTS = ("gain", "loss")
GAIN_KEYS = ("regime", "grid", "backbone", "method", "baseline", "task")
CHANCE = 0.05  # the share of 95% intervals that exclude zero where nothing differs


def dynamic_parts(prompt: object) -> tuple[str, ...]:
    """The parts of :data:`PARTS` a method's prompt config chooses dynamically (none: static)."""
    if not isinstance(prompt, dict):
        return ()
    return tuple(part for part, (_, chooses) in PARTS.items() if chooses(prompt))


def published(gains: pd.DataFrame, min_seeds: int) -> pd.DataFrame:
    """The rows of ``gains`` the tables publish: at the setting each table reports (a searched
    grid's as-configured rows are extra), over ``min_seeds`` or more seeds, with an interval."""
    if gains.empty:
        return pd.DataFrame(columns=[*GAIN_KEYS, "verdict"])
    return gains[(gains["settings"] != AS_CONFIGURED) & (gains["n"] >= min_seeds) & gains["ci_low"].notna()]


def count_line(rows: pd.DataFrame) -> str:
    """``N comparisons; k exclude zero (g gains, l losses); chance alone: about N/20``."""
    verdicts = rows["verdict"].value_counts()
    gains, losses = int(verdicts.get("gain", 0)), int(verdicts.get("loss", 0))
    return (f"{plural(len(rows), 'comparison')}; {gains + losses} exclude zero ({plural(gains, 'gain')}, "
            f"{plural(losses, 'loss')}); chance alone: about {CHANCE * len(rows):.1f}")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}es" if noun.endswith("s") else f"{count} {noun}s"


def cell(row: pd.Series) -> str:
    """``+1.39 [+0.14, +2.82] **gain**``: gain in points, 95% interval, the verdict where it has one."""
    text = f"{row['gain_pts']:+.2f} [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
    return f"{text} **{row['verdict']}**" if row["verdict"] in REPORTED_VERDICTS else text


def block(rows: pd.DataFrame, tasks: list[str]) -> str:
    """One Markdown table: a row per (regime, grid, backbone, method, baseline), a column per
    task of ``tasks`` (in that order) that ``rows`` have.

    ``rows`` come in the order they are shown; "seeds" lists each row's seed counts.
    """
    tasks = [t for t in tasks if t in set(rows["task"])]
    keys = list(GAIN_KEYS[:-1])
    shown = []
    for key, group in rows.groupby(keys, sort=False):
        regime, grid, backbone, method, baseline = key
        by_task = {r["task"]: cell(r) for _, r in group.iterrows()}
        shown.append({"method": f"`{method}`", "vs": f"`{baseline}`", "grid": grid, "regime": regime,
                      "backbone": backbone, "seeds": ", ".join(map(str, sorted(set(group["n"])))),
                      **{task: by_task.get(task, "") for task in tasks}})
    frame = pd.DataFrame(shown)
    return frame.to_markdown(index=False, disable_numparse=True, colalign=["left"] * len(frame.columns))


def glance_lines(gains: pd.DataFrame, parts: dict[str, tuple[str, ...]], static: tuple[str, ...],
                 min_seeds: int, tasks: list[str], single_task: str | None = None) -> list[str]:
    """The page: a count over every published comparison with a static prompt, a block per
    dynamic part, and a block of mixtures against single-task training.

    Args:
        gains: the rows of ``gains.csv`` (``regime`` naming the mixture where there is one),
            in the order the blocks show them.
        parts: method -> the dynamic parts of its prompt (:func:`dynamic_parts`); a method
            with two appears in both blocks, and is counted once in the total.
        static: the static prompts a dynamic one is measured against.
        min_seeds: fewer seeds than this give no interval, so no comparison.
        tasks: the task columns, in order.
        single_task: how ``gains`` names a multitask run's own single-task runs as its
            baseline (the start of the ``baseline`` column); None: no such block.
    """
    shown = published(gains, min_seeds)
    rows = shown[shown["baseline"].isin(static)]
    lines = [
        "# Published comparisons at a glance",
        "",
        "Generated by `dp-bench table` from `gains.csv`; do not edit (rerun `make table`). Every "
        f"gain of a dynamic prompt over the static prompt it extends ({', '.join(f'`{s}`' for s in static)}), "
        "as each grid's table publishes it: at the setting the table reports (tuned, where the grid "
        f"searched), over {min_seeds} or more seeds. A cell is the gain in official score points, "
        "paired by seed and example, and its 95% bootstrap interval over seeds and examples; "
        "**gain** or **loss** where the interval excludes zero. The intervals are not corrected "
        "for being many: were no method different from its baseline, about "
        f"{CHANCE:.0%} of them would exclude zero by chance alone (\"chance alone\" below), so read "
        "each verdict against the count of its block.",
        "",
        f"All: {count_line(rows)}.",
        "",
    ]
    for part, (heading, _) in PARTS.items():
        methods = [m for m, mine in parts.items() if part in mine]
        mine = rows[rows["method"].isin(methods)]
        if mine.empty:
            continue
        lines += [f"## {heading}", "", f"{count_line(mine)}.", "",
                  block(mine, tasks), ""]
    if rows.empty:
        lines += ["No published comparison yet.", ""]
    mixed = shown[shown["baseline"].str.startswith(single_task)] if single_task else shown.iloc[:0]
    if not mixed.empty:
        lines += ["## A task mixture against single-task training", "",
                  "Every method, static or dynamic, trained on a mixture of tasks against its own "
                  "single-task runs under the same protocol and seeds (the multitask sections' second "
                  f"gains table): {count_line(mixed)}.", "",
                  block(mixed, tasks), ""]
    return lines
