"""Paired bootstrap: vectorised official metrics equal TaskMetrics; intervals behave."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dp_bench.data.tasks import get_task
from dp_bench.metrics import TaskMetrics
from dp_bench.paired import (
    Scored,
    best_constant_metrics,
    majority_metrics,
    official_metrics,
    paired_gain,
    seeds_for_power,
    t_interval,
    verdict,
)


def predictions(task: str, n: int, seed: int, accuracy: float = 0.6, groups: int | None = None,
                examples_seed: int | None = None) -> dict:
    """A run's predictions; the evaluation set (labels, questions, order) comes from
    ``examples_seed`` (default ``seed``), so runs of several seeds can share one."""
    rng, pred_rng = np.random.default_rng(seed if examples_seed is None else examples_seed), np.random.default_rng([seed, 1])
    classes = get_task(task).num_labels
    label = rng.integers(0, classes, n)
    pred = np.where(pred_rng.random(n) < accuracy, label, pred_rng.integers(0, classes, n))
    group = np.sort(rng.integers(0, groups, n)) if groups else np.arange(n)
    order = rng.permutation(n)  # records list rows in evaluation order, not by id
    return {"example_idx": order.tolist(), "group_idx": group[order].tolist(),
            "label": label[order].tolist(), "pred": pred[order].tolist()}


def torchmetrics_values(task: str, p: dict) -> dict[str, float]:
    metrics = TaskMetrics(get_task(task))
    metrics.update(torch.tensor(p["pred"]), torch.tensor(p["label"]), torch.tensor(p["group_idx"]))
    return metrics.compute()


@pytest.mark.parametrize("task,groups", [("cb", None), ("rte", None), ("multirc", 40), ("copa", None)])
@pytest.mark.parametrize("seed", [0, 1])
def test_official_metrics_equal_taskmetrics(task, groups, seed):
    p = predictions(task, 150, seed, groups=groups)
    ours = official_metrics(task, Scored.from_predictions(task, p))
    for name, value in torchmetrics_values(task, p).items():
        assert ours[name][0] == pytest.approx(value, abs=1e-6), name


def test_macro_f1_leaves_out_a_class_nobody_has():
    p = {"label": [0, 0, 1, 1], "pred": [0, 1, 1, 1]}  # CB's third class never occurs
    ours = official_metrics("cb", Scored.from_predictions("cb", p))["f1_macro"][0]
    assert ours == pytest.approx(torchmetrics_values("cb", p | {"group_idx": [0, 1, 2, 3]})["f1_macro"])


def test_multirc_resamples_whole_questions():
    scored = Scored.from_predictions("multirc", predictions("multirc", 90, 0, groups=30))
    assert scored.num_units == len(set(scored.unit.tolist())) <= 30


def test_majority_of_the_evaluation_labels():
    p = {"label": [1, 1, 1, 0], "pred": [0, 0, 0, 0]}
    assert majority_metrics("rte", Scored.from_predictions("rte", p))["acc"] == pytest.approx(0.75)


def test_the_best_constant_answer_can_beat_the_majority_class_on_an_f1_score():
    # MultiRC: 3 of 7 options true (majority "false"), question 0 all true, 1 and 2 all false;
    # F1a is over "true", EM per question, score their mean.
    p = {"example_idx": list(range(7)), "group_idx": [0, 0, 0, 1, 1, 2, 2], "label": [1, 1, 1, 0, 0, 0, 0], "pred": [0] * 7}
    scored = Scored.from_predictions("multirc", p)
    majority, best = majority_metrics("multirc", scored), best_constant_metrics("multirc", scored)
    assert majority["acc"] == best["acc"] == pytest.approx(4 / 7)  # accuracy: the majority is the best constant
    assert majority["em"] == best["em"] == pytest.approx(2 / 3)  # always "false" gets two questions right
    f1a_true = 2 * (3 / 7) / (1 + 3 / 7)  # always "true": precision 3/7, recall 1
    assert majority["f1a"] == 0.0 and best["f1a"] == pytest.approx(f1a_true)
    assert majority["score"] == pytest.approx(1 / 3) and best["score"] == pytest.approx((f1a_true + 1 / 3) / 2)
    rte = Scored.from_predictions("rte", {"label": [1, 1, 1, 0], "pred": [0, 0, 0, 0]})
    assert best_constant_metrics("rte", rte) == majority_metrics("rte", rte)


def test_identical_methods_gain_nothing_with_a_zero_interval():
    runs = [Scored.from_predictions("rte", predictions("rte", 200, s, examples_seed=0)) for s in range(3)]
    gain = paired_gain("rte", [(r, r) for r in runs], n_boot=200)
    assert (gain["gain_pts"], gain["ci_low"], gain["ci_high"]) == (0.0, 0.0, 0.0)
    assert gain["seeds_for_power"] == math.inf and verdict(gain["ci_low"], gain["ci_high"]) == "no detectable difference"


def test_a_method_right_everywhere_the_baseline_is_gains_with_an_interval_above_zero():
    pairs = []
    for s in range(3):
        base = predictions("rte", 300, s, accuracy=0.3, examples_seed=0)
        better = base | {"pred": base["label"]}  # right on every example
        pairs.append((Scored.from_predictions("rte", better), Scored.from_predictions("rte", base)))
    gain = paired_gain("rte", pairs, n_boot=300)
    points = [100 * (1 - official_metrics("rte", b)["acc"][0]) for _, b in pairs]
    assert gain["gain_pts"] == pytest.approx(np.mean(points))
    assert 0 < gain["ci_low"] < gain["gain_pts"] < gain["ci_high"] and verdict(gain["ci_low"], gain["ci_high"]) == "gain"
    sd = np.std(points, ddof=1)
    assert gain["seeds_for_power"] == seeds_for_power(gain["gain_pts"], sd)
    half = 4.302652729911275 * sd / np.sqrt(3)  # Student t, 2 degrees of freedom, 97.5%
    assert (gain["t_low"], gain["t_high"]) == pytest.approx((np.mean(points) - half, np.mean(points) + half))


def test_at_three_seeds_the_t_interval_is_wider_than_the_bootstraps_seed_level():
    # Three seeds whose differences are 1, 2 and 3 points, on examples that the method and the
    # baseline answer alike except for those points: the bootstrap's seed level spans little
    # more than the three differences; the t-interval is 2 ± 4.30 / sqrt(3).
    label = np.array([0, 1] * 500)
    pairs = []
    for wrong in (10, 20, 30):  # 1, 2, 3 points of 1000 examples
        base = {"label": label.tolist(), "pred": label.tolist()}
        pred = label.copy()
        pred[:wrong] = 1 - pred[:wrong]
        pairs.append((Scored.from_predictions("rte", base), Scored.from_predictions("rte", base | {"pred": pred.tolist()})))
    gain = paired_gain("rte", pairs, n_boot=2000)
    assert gain["gain_pts"] == pytest.approx(2.0) and gain["sd_seed_pts"] == pytest.approx(1.0)
    assert verdict(gain["ci_low"], gain["ci_high"]) == "gain" and gain["ci_high"] < 3.5  # the bootstrap calls it a gain ...
    half = 4.302652729911275 / np.sqrt(3)
    assert (gain["t_low"], gain["t_high"]) == pytest.approx((2 - half, 2 + half))
    assert gain["t_low"] < 0  # ... which the t-interval over seeds does not support


def test_one_seed_has_no_t_interval():
    low, high = t_interval(2.0, math.nan, 1)
    assert math.isnan(low) and math.isnan(high)


def test_seeds_share_the_example_resample_so_repeating_a_seed_adds_no_information():
    # All seeds are scored on the same evaluation set: an example that favours the method does
    # so at every seed. Three seeds that repeat one another must give one seed's interval, not
    # one narrowed by averaging three independent example resamples.
    method, base = (Scored.from_predictions("cb", predictions("cb", 56, s, examples_seed=0)) for s in (1, 2))
    one = paired_gain("cb", [(method, base)], n_boot=500)
    three = paired_gain("cb", [(method, base)] * 3, n_boot=500)
    assert one["ci_high"] - one["ci_low"] > 5  # 56 examples: a wide interval
    assert (three["ci_low"], three["ci_high"]) == (one["ci_low"], one["ci_high"])


def test_seeds_scored_on_different_examples_are_refused():
    a, b = (Scored.from_predictions("rte", predictions("rte", 50, s)) for s in (0, 1))
    with pytest.raises(ValueError, match="seeds were scored on different examples"):
        paired_gain("rte", [(a, a), (b, b)])


@pytest.mark.parametrize(("effect", "seeds"), [(0.5, 34), (0.8, 15), (1.0, 10), (2.0, 5)])
def test_seeds_for_power_are_those_of_an_exact_paired_t_test(effect, seeds):
    # Standard power tables (e.g. G*Power, paired t, two-sided 5%, power 0.8); the normal
    # approximation would say 32, 13, 8 and 2.
    assert seeds_for_power(effect * 3.0, 3.0) == seeds_for_power(-effect * 3.0, 3.0) == seeds


def test_seeds_for_power_of_a_difference_that_every_seed_repeats():
    # Scores recomputed from predictions can leave a rounding-level spread instead of 0 (the
    # noncentral t is then out of its depth: this once never returned).
    assert seeds_for_power(2.5, 1e-15) == seeds_for_power(2.5, 0.0) == 2
    assert seeds_for_power(0.0, 1.0) == math.inf


def test_pairs_on_different_examples_are_refused():
    a = Scored.from_predictions("rte", predictions("rte", 50, 0))
    b = Scored.from_predictions("rte", predictions("rte", 51, 0))
    with pytest.raises(ValueError, match="different examples"):
        paired_gain("rte", [(a, b)])
