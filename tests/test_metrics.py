"""SuperGLUE metrics against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from dp_bench.data.tasks import TASKS, get_task
from dp_bench.metrics import GroupExactMatch, TaskMetrics


def t(*values):
    return torch.tensor(values, dtype=torch.long)


def test_accuracy_task_reports_acc_and_score():
    m = TaskMetrics(get_task("rte"))
    m.update(t(0, 1, 1, 0), t(0, 1, 0, 0), t(0, 1, 2, 3))
    assert m.compute() == pytest.approx({"acc": 0.75, "score": 0.75})


def test_cb_macro_f1_by_hand():
    # class 0: tp 1 fp 1 fn 1 -> F1 1/2; class 1: tp 2 fp 1 fn 0 -> P 2/3 R 1 F1 4/5;
    # class 2: tp 1 fp 0 fn 1 -> P 1 R 1/2 F1 2/3. Macro = (1/2 + 4/5 + 2/3) / 3.
    m = TaskMetrics(get_task("cb"))
    m.update(t(0, 1, 1, 1, 2, 0), t(0, 0, 1, 1, 2, 2), t(0, 1, 2, 3, 4, 5))
    f1 = (1 / 2 + 4 / 5 + 2 / 3) / 3
    assert m.compute() == pytest.approx({"acc": 4 / 6, "f1_macro": f1, "score": (4 / 6 + f1) / 2})


def test_cb_macro_f1_ignores_a_class_absent_from_preds_and_target():
    # As sklearn's f1_score(average="macro") in the official scorer: classes 0 and 1 have
    # F1 2/3 each; class 2 never occurs and does not pull the mean to 4/9.
    m = TaskMetrics(get_task("cb"))
    m.update(t(0, 1, 1), t(0, 0, 1), t(0, 1, 2))
    assert m.compute()["f1_macro"] == pytest.approx(2 / 3)


def _multirc_rows():
    # q7: 3 options all right; q8: 2 options, one wrong; q9: 1 option right -> EM 2/3.
    preds = t(1, 0, 1, 0, 0, 1)
    target = t(1, 0, 1, 0, 1, 1)
    group = t(7, 7, 7, 8, 8, 9)
    return preds, target, group


def test_multirc_f1a_and_em_by_hand():
    m = TaskMetrics(get_task("multirc"))
    m.update(*_multirc_rows())
    # F1a over all options: tp 3, fp 0, fn 1 -> 2*3 / (2*3 + 0 + 1) = 6/7.
    expected = {"acc": 5 / 6, "f1a": 6 / 7, "em": 2 / 3, "score": (6 / 7 + 2 / 3) / 2}
    assert m.compute() == pytest.approx(expected)


def test_em_regroups_questions_split_across_batches():
    preds, target, group = _multirc_rows()
    order = t(5, 3, 0, 4, 1, 2)  # q8's options land in different batches
    em = GroupExactMatch()
    for part in (order[:3], order[3:]):
        em.update(preds[part], target[part], group[part])
    assert float(em.compute()) == pytest.approx(2 / 3)
    em.reset()
    em.update(t(1, 1), t(1, 0), t(3, 4))
    assert float(em.compute()) == pytest.approx(1 / 2)


def test_unlabeled_rows_are_skipped_and_reset_forgets():
    m = TaskMetrics(get_task("wic"))
    m.update(t(1, 1, 0), t(1, -1, 1), t(0, 1, 2))
    assert m.compute()["acc"] == pytest.approx(0.5)
    m.reset()
    m.update(t(1), t(1), t(0))
    assert m.compute()["acc"] == 1.0


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_reports_acc_score_and_its_official_metrics(name):
    task = get_task(name)
    m = TaskMetrics(task)
    m.update(t(0, 1), t(0, 1), t(0, 1))
    out = m.compute()
    assert set(out) == {"acc", "score", *task.metrics}
    assert out["score"] == pytest.approx(1.0)
