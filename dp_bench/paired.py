"""Paired comparison of two methods: the same seeds, the same evaluation examples.

The gain of a method over a baseline on one task is the mean over seeds of the difference
of their official scores. Its 95% interval comes from a two-level bootstrap: each replicate
resamples the seeds and the evaluation examples (MultiRC: whole questions, since exact
match is per question), one example resample shared by every seed drawn and by both methods
(paired), since every seed is scored on the same evaluation set.
Official scores are recomputed for every replicate from the per-example predictions that
run records keep, vectorised over replicates. (Written here rather than taken from
torchmetrics or scipy.stats.bootstrap: the metric objects score one sample per call,
thousands of times too slow, and scipy's bootstrap resamples one level, not seeds and
examples together.)

Beside it, the paired t-interval of the per-seed differences (Student t, n - 1 degrees of
freedom): training randomness alone, the evaluation set held fixed, so narrower than the
bootstrap where the examples are few. At 3 seeds the bootstrap's seed level has 10 distinct
resamples and spans little more than the three differences (about mean ± 0.9 sd), where the
t-interval is mean ± 2.5 sd: a verdict whose t-interval includes 0 rests on the bootstrap's
optimism at few seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dp_bench.data.tasks import get_task

ALPHA, POWER = 0.05, 0.8


@dataclass(frozen=True)
class Scored:
    """One run's predictions on one task's evaluation set, rows sorted by example id.

    Attributes:
        example: example id of each row ``[N]`` (MultiRC: one row per answer option).
        label: true class ``[N]``.
        pred: predicted class ``[N]``.
        unit: resampling unit of each row, ``0..U-1`` ``[N]``: its question for MultiRC,
            the row itself otherwise.
    """

    example: np.ndarray
    label: np.ndarray
    pred: np.ndarray
    unit: np.ndarray

    @property
    def num_units(self) -> int:
        return int(self.unit.max()) + 1 if len(self.unit) else 0

    @classmethod
    def from_predictions(cls, task: str, predictions: dict[str, Any]) -> Scored | None:
        """From a record's ``{label, pred, example_idx?, group_idx?}``; None without labels."""
        label, pred = predictions.get("label"), predictions.get("pred")
        if not label or pred is None or len(label) != len(pred):
            return None
        label, pred = np.asarray(label, dtype=np.int64), np.asarray(pred, dtype=np.int64)
        example = np.asarray(predictions.get("example_idx") or np.arange(len(label)), dtype=np.int64)
        group = np.asarray(predictions.get("group_idx") or example, dtype=np.int64)
        keep = label >= 0  # unlabeled rows count nowhere (as in TaskMetrics)
        order = np.argsort(example[keep], kind="stable")
        example, label, pred, group = (a[keep][order] for a in (example, label, pred, group))
        grouped = "em" in get_task(task).metrics
        unit = np.unique(group if grouped else example, return_inverse=True)[1].reshape(-1)
        return cls(example, label, pred, unit)

    def same_examples(self, other: Scored) -> bool:
        return np.array_equal(self.example, other.example) and np.array_equal(self.label, other.label)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F1 and whether the class occurs at all (tp + fp + fn > 0), elementwise."""
    denominator = 2 * tp + fp + fn
    present = denominator > 0
    return np.where(present, 2 * tp / np.where(present, denominator, 1), 0.0), present


def official_metrics(task: str, scored: Scored, pred: np.ndarray | None = None,
                     weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The task's official metrics, ``acc`` and ``score`` under ``R`` resamples.

    Args:
        task: task name (its TaskSpec names the official metrics).
        scored: the rows.
        pred: predictions to score instead of ``scored.pred`` ``[N]`` (a constant baseline).
        weights: how often each unit is drawn ``[R, U]``; None scores the rows once (R = 1).

    Returns:
        ``{metric: [R]}``, the same values as :class:`dp_bench.metrics.TaskMetrics` gives
        for ``weights=None`` (macro-F1 leaves out classes absent from labels and predictions).
    """
    spec = get_task(task)
    pred = scored.pred if pred is None else pred
    if weights is None:
        weights = np.ones((1, scored.num_units))
    row_w = weights[:, scored.unit].astype(float)  # [R, N]
    total = row_w.sum(axis=1)  # [R]
    correct = pred == scored.label  # [N]
    out = {"acc": row_w @ correct / total}
    for name in spec.metrics:
        if name == "acc":
            continue
        if name == "f1_macro":
            f1s, present = zip(*(_f1(row_w @ ((pred == c) & (scored.label == c)), row_w @ ((pred == c) & (scored.label != c)),
                                     row_w @ ((pred != c) & (scored.label == c))) for c in range(spec.num_labels)), strict=True)
            f1s, present = np.stack(f1s, axis=1), np.stack(present, axis=1)  # [R, C]
            out[name] = f1s.sum(axis=1) / np.maximum(present.sum(axis=1), 1)
        elif name == "f1a":
            pos, true = pred == 1, scored.label == 1
            out[name] = _f1(row_w @ (pos & true), row_w @ (pos & ~true), row_w @ (~pos & true))[0]
        elif name == "em":
            all_right = np.ones(scored.num_units, dtype=bool)
            np.logical_and.at(all_right, scored.unit, correct)  # [U]
            out[name] = weights @ all_right / weights.sum(axis=1)
        else:
            raise ValueError(f"task {task}: no vectorised form of metric {name!r}")
    out["score"] = sum(out[m] for m in spec.metrics) / len(spec.metrics)
    return out


def majority_metrics(task: str, scored: Scored) -> dict[str, float]:
    """Metrics of always predicting the evaluation set's most frequent class (ties: lowest)."""
    majority = int(np.bincount(scored.label).argmax())
    values = official_metrics(task, scored, pred=np.full_like(scored.label, majority))
    return {k: float(v[0]) for k, v in values.items()}


def best_constant_metrics(task: str, scored: Scored) -> dict[str, float]:
    """Each metric's best value over the constant answers (always class c, for each class of the labels).

    For accuracy this is the majority class; an F1-based score can prefer another answer
    (MultiRC's F1a is over the positive class: always "true" scores far above always "false").
    """
    values = [official_metrics(task, scored, pred=np.full_like(scored.label, c)) for c in np.unique(scored.label)]
    return {k: max(float(v[k][0]) for v in values) for k in values[0]}


def paired_gain(task: str, pairs: list[tuple[Scored, Scored]], n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """Gain of a method over a baseline in score points (×100), one pair per seed.

    Returns:
        ``n`` (seeds), ``gain_pts`` (mean over seeds of the paired difference), ``ci_low`` /
        ``ci_high`` (95% percentile interval of the two-level bootstrap), ``sd_seed_pts``
        (standard deviation of the per-seed differences), ``t_low`` / ``t_high`` (95% paired
        t-interval of the per-seed differences, :func:`t_interval`; NaN for one seed) and
        ``seeds_for_power``: how many seeds a paired t-test at 5% needs to detect a difference
        of the observed size with 80% power (:func:`seeds_for_power`; inf for a zero gain,
        NaN for one seed).
    """
    if any(not m.same_examples(b) for m, b in pairs):
        raise ValueError(f"task {task}: paired runs were scored on different examples")
    if any(not m.same_examples(pairs[0][0]) for m, _ in pairs):
        raise ValueError(f"task {task}: the seeds were scored on different examples; the bootstrap resamples one set")
    rng = np.random.default_rng(seed)
    # One example resample per replicate, shared by every seed (the "multi-bootstrap" of
    # Sellam et al. 2022, arXiv 2106.16163): all seeds are scored on the same evaluation set,
    # so an example that favours the method does so at every seed, and resampling the examples
    # independently per seed would average that variation away and narrow the interval.
    units = pairs[0][0].num_units
    weights = rng.multinomial(units, np.full(units, 1.0 / units), size=n_boot)  # [R, U]
    points, replicates = [], []
    for method, baseline in pairs:
        points.append(float(official_metrics(task, method)["score"][0] - official_metrics(task, baseline)["score"][0]))
        replicates.append(official_metrics(task, method, weights=weights)["score"]
                          - official_metrics(task, baseline, weights=weights)["score"])  # [R]
    n = len(pairs)
    replicates = np.stack(replicates)  # [S, R]
    drawn = rng.integers(0, n, size=(n_boot, n))  # seeds drawn with replacement [R, S]
    boot = replicates[drawn, np.arange(n_boot)[:, None]].mean(axis=1) * 100  # [R]
    gain = float(np.mean(points)) * 100
    sd = float(np.std(points, ddof=1)) * 100 if n > 1 else math.nan
    needed = seeds_for_power(gain, sd) if n > 1 else math.nan
    t_low, t_high = t_interval(gain, sd, n)
    low, high = np.percentile(boot, [2.5, 97.5])
    return {"n": n, "gain_pts": gain, "ci_low": float(low), "ci_high": float(high),
            "t_low": t_low, "t_high": t_high, "sd_seed_pts": sd, "seeds_for_power": needed}


def t_interval(mean: float, sd: float, n: int) -> tuple[float, float]:
    """The two-sided ``1 - ALPHA`` Student t-interval of a mean of ``n`` values with standard
    deviation ``sd``: ``mean ± t(1 - ALPHA/2, n - 1) sd / sqrt(n)``; NaN below 2 values."""
    from scipy import stats  # deferred: only the tables need it

    if n < 2:
        return math.nan, math.nan
    half = float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def seeds_for_power(gain: float, sd: float) -> float:
    """The fewest seeds (>= 2) at which a two-sided paired t-test at ``ALPHA`` detects a mean
    difference ``gain`` with per-seed standard deviation ``sd`` with probability ``POWER``.

    Exact, from the noncentral t distribution (power at n seeds: P(|T| > t_crit), T with n - 1
    degrees of freedom and noncentrality gain / sd * sqrt(n)); the normal approximation
    ``((z_.975 + z_.8) sd / gain)^2`` is a lower bound and the starting point of the search.
    For gain / sd = 0.5 this gives 34 seeds and for 1.0 gives 10, as standard power tables do.
    """
    from scipy import stats  # deferred: only the tables need it

    if gain == 0:
        return math.inf
    if sd <= 1e-9 * abs(gain):  # the same difference at every seed, up to rounding
        return 2.0
    effect = abs(gain) / sd
    z_sum = stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(POWER)  # 1.96 + 0.84
    start = max(2, math.ceil((z_sum / effect) ** 2))
    for n in range(start, start + 1000):  # the exact count is a few seeds above the approximation
        df, noncentrality = n - 1, effect * math.sqrt(n)
        critical = stats.t.ppf(1 - ALPHA / 2, df)
        if stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality) >= POWER:
            return float(n)
    raise ValueError(f"seeds_for_power(gain={gain}, sd={sd}): no seed count from {start} to {start + 999} reaches {POWER}")


def verdict(ci_low: float, ci_high: float) -> str:
    """A gain only where the interval excludes zero."""
    if ci_low > 0:
        return "gain"
    if ci_high < 0:
        return "loss"
    return "no detectable difference"
