"""SuperGLUE metrics on torchmetrics.

Official metrics per task (Wang et al. 2019, https://arxiv.org/abs/1905.00537, Table 1):
accuracy for BoolQ, COPA, RTE, WiC, WSC; accuracy and macro-F1 for CB; F1 over all answer
options (F1a) and exact match per question (EM) for MultiRC. A task's score is the mean of
its official metrics, as on the leaderboard.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchmetrics
from torch import Tensor, nn
from torchmetrics.classification import BinaryF1Score, MulticlassAccuracy, MulticlassF1Score
from torchmetrics.utilities import dim_zero_cat

from dp_bench.data.tasks import TaskSpec


class GroupExactMatch(torchmetrics.Metric):
    """Fraction of groups (MultiRC questions) whose rows are all predicted right.

    Rows are kept until ``compute`` because the answer options of one question can arrive
    in different batches (or on different devices): correctness per group is only known
    once every row is in. States are concatenated across processes (``dist_reduce_fx="cat"``).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=[], dist_reduce_fx="cat")
        self.add_state("group", default=[], dist_reduce_fx="cat")

    def update(self, preds: Tensor, target: Tensor, group: Tensor) -> None:
        """Add rows: predicted and true class ``[N]``, group id ``[N]``."""
        self.correct.append((preds == target).long())
        self.group.append(group.long())

    def compute(self) -> Tensor:
        """EM in [0, 1] (0 when no row was seen)."""
        if isinstance(self.correct, list) and not self.correct:
            return torch.tensor(0.0, device=self.device)
        correct, group = dim_zero_cat(self.correct), dim_zero_cat(self.group)
        _, inverse = torch.unique(group, return_inverse=True)  # (N,) group index 0..G-1
        num_groups = int(inverse.max()) + 1
        all_right = torch.ones(num_groups, dtype=torch.long, device=correct.device)
        all_right = all_right.scatter_reduce(0, inverse, correct, reduce="amin")  # (G,)
        return all_right.float().mean()


# name -> factory(num_labels); "em" is the only metric that reads the group ids.
_FACTORIES: dict[str, Callable[[int], torchmetrics.Metric]] = {
    "acc": lambda n: MulticlassAccuracy(num_classes=n, average="micro"),
    # torchmetrics drops classes absent from both preds and target from the macro
    # average, as sklearn's f1_score(average="macro") used by the official scorer does.
    "f1_macro": lambda n: MulticlassF1Score(num_classes=n, average="macro"),
    "f1a": lambda n: BinaryF1Score(),
    "em": lambda n: GroupExactMatch(),
}
_GROUPED = frozenset({"em"})


class TaskMetrics(nn.Module):
    """The official metrics of one task, plus ``acc`` and the aggregate ``score``.

    Rows with target -1 (unlabeled) are skipped, so a stray unlabeled batch cannot crash
    a run; they are not counted anywhere.

    Args:
        task: the task whose official metrics to compute.
    """

    def __init__(self, task: TaskSpec) -> None:
        super().__init__()
        self.task_name, self.official = task.name, task.metrics
        unknown = [m for m in task.metrics if m not in _FACTORIES]
        if unknown:
            raise ValueError(f"task {task.name}: unknown metrics {unknown}; known: {', '.join(_FACTORIES)}")
        names = dict.fromkeys(("acc", *task.metrics))  # ordered, no duplicates
        self.metrics = nn.ModuleDict({m: _FACTORIES[m](task.num_labels) for m in names})

    def update(self, preds: Tensor, target: Tensor, group: Tensor) -> None:
        """Add a batch: predicted class ``[N]``, true class ``[N]`` (-1 skipped), group ``[N]``."""
        keep = target >= 0  # (N,)
        preds, target, group = preds[keep], target[keep], group[keep]
        if target.numel() == 0:
            return
        for name, metric in self.metrics.items():
            if name in _GROUPED:
                metric.update(preds, target, group)
            else:
                metric.update(preds, target)

    def compute(self) -> dict[str, float]:
        """``{metric: value}`` for acc, the official metrics, and ``score`` (their mean)."""
        out = {name: float(metric.compute()) for name, metric in self.metrics.items()}
        out["score"] = sum(out[m] for m in self.official) / len(self.official)
        return out

    def reset(self) -> None:
        """Forget every row seen so far."""
        for metric in self.metrics.values():
            metric.reset()
