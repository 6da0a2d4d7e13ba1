"""Which rows go together in a batch: multitask mixing and single-task evaluation batches.

Rows of all tasks live in one concatenated dataset; task ``t`` owns the global indices
``offsets[t] .. offsets[t] + sizes[t] - 1``. Every batch holds rows of one task only.

Mixing rates follow T5 (Raffel et al. 2020, Sec. 3.5.2, https://arxiv.org/abs/1910.10683):
examples-proportional with an artificial size limit ``cap``, ``r_t ∝ min(n_t, cap)``, and
temperature-scaled mixing, ``r_t ∝ min(n_t, cap) ** (1 / T)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Literal

import torch
from torch.utils.data import Sampler

SamplingRule = Literal["proportional", "temperature"]


def mixing_rates(sizes: Sequence[int], rule: SamplingRule, cap: int, temperature: float = 1.0) -> list[float]:
    """Probability of drawing each task for a batch.

    Args:
        sizes: examples per task.
        rule: ``proportional`` (``∝ min(n, cap)``) or ``temperature`` (``∝ min(n, cap)^(1/T)``).
        cap: size limit K; tasks larger than K count as K.
        temperature: T for the temperature rule (T=1 is proportional, T→∞ uniform).
    """
    if rule not in ("proportional", "temperature"):
        raise ValueError(f"sampling={rule!r} is not one of proportional, temperature")
    if cap < 1:
        raise ValueError(f"sampling_cap={cap} must be >= 1")
    if temperature <= 0:
        raise ValueError(f"sampling_temperature={temperature} must be > 0")
    if not sizes or any(n < 1 for n in sizes):
        raise ValueError(f"every task needs at least one training example, got sizes {list(sizes)}")
    power = 1.0 / temperature if rule == "temperature" else 1.0
    weights = [min(n, cap) ** power for n in sizes]
    total = sum(weights)
    return [w / total for w in weights]


def _offsets(sizes: Sequence[int]) -> list[int]:
    return [sum(sizes[:t]) for t in range(len(sizes))]


class MixedTaskBatchSampler(Sampler[list[int]]):
    """Training batches for multitask learning: each batch is one task, drawn by its rate.

    An epoch has ``sum_t ceil(n_t / batch_size)`` batches (as many as the tasks would
    give one by one). Each task reads its rows from its own endless stream of reshuffled
    passes, so a task drawn often simply starts another pass. Seeded: the same seed and
    epoch give the same batches.

    Args:
        sizes: rows per task, in task order.
        batch_size: rows per batch (fewer only for a task with fewer rows).
        rates: probability of each task per batch (see ``mixing_rates``).
        seed: base seed; epoch ``e`` uses ``seed + e``.
    """

    def __init__(self, sizes: Sequence[int], batch_size: int, rates: Sequence[float], seed: int) -> None:
        if len(sizes) != len(rates):
            raise ValueError(f"got {len(sizes)} task sizes but {len(rates)} rates")
        self.sizes, self.offsets = list(sizes), _offsets(sizes)
        self.batch_size, self.seed, self.epoch = batch_size, seed, 0
        self.rates = torch.tensor(rates, dtype=torch.double)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next pass draws. Lightning calls ``set_epoch`` on a DataLoader's sampler,
        never on its batch sampler, so each pass advances the epoch itself and a resumed fit
        sets the one it starts at (``SuperGLUEDataModule.load_state_dict``)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return sum(math.ceil(n / self.batch_size) for n in self.sizes)

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        tasks = torch.multinomial(self.rates, len(self), replacement=True, generator=g).tolist()
        streams: list[list[int]] = [[] for _ in self.sizes]
        for t in tasks:
            yield [self.offsets[t] + i for i in self._take(streams[t], t, g)]

    def _take(self, stream: list[int], t: int, g: torch.Generator) -> list[int]:
        """The next ``min(batch_size, n_t)`` rows of task ``t``, no row twice in a batch."""
        want = min(self.batch_size, self.sizes[t])
        batch = stream[:want]
        del stream[:want]
        if len(batch) < want:
            # Start a new pass. Rows already in this batch go to the end of it, so no row
            # appears twice in one batch (need <= n_t - len(batch) since want <= n_t).
            taken = set(batch)
            fresh = torch.randperm(self.sizes[t], generator=g).tolist()
            fresh = [i for i in fresh if i not in taken] + [i for i in fresh if i in taken]
            need = want - len(batch)
            batch += fresh[:need]
            stream[:] = fresh[need:]
        return batch


class TaskBatches(Sampler[list[int]]):
    """Evaluation batches: each task's rows in order, cut into single-task batches."""

    def __init__(self, sizes: Sequence[int], batch_size: int) -> None:
        self.sizes, self.offsets, self.batch_size = list(sizes), _offsets(sizes), batch_size

    def __len__(self) -> int:
        return sum(math.ceil(n / self.batch_size) for n in self.sizes)

    def __iter__(self) -> Iterator[list[int]]:
        for offset, n in zip(self.offsets, self.sizes, strict=True):
            for start in range(0, n, self.batch_size):
                yield list(range(offset + start, offset + min(n, start + self.batch_size)))
