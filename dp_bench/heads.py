"""Class scores from a backbone's readout: a linear head or a verbalizer, one per task.

Both return ``[B, C]`` scores with ``C`` the largest label count among the tasks; a
task with fewer labels gets ``-inf`` in the unused columns, so one cross-entropy serves
a multitask batch.
"""

from __future__ import annotations

import torch
from torch import nn


def _column_table(label_counts: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per task, its columns in a concatenated output, ``[tasks, C]``, and their validity."""
    width = max(label_counts)
    offsets = torch.tensor([0, *label_counts[:-1]]).cumsum(0)
    columns = offsets.unsqueeze(1) + torch.arange(width).unsqueeze(0)  # (tasks, C)
    valid = torch.arange(width).unsqueeze(0) < torch.tensor(label_counts).unsqueeze(1)
    return columns.where(valid, 0), valid


class LinearHead(nn.Module):
    """A linear classifier per task on the [CLS] state (one matmul for all tasks)."""

    def __init__(self, hidden_size: int, label_counts: list[int]) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, sum(label_counts))
        columns, valid = _column_table(label_counts)
        self.register_buffer("columns", columns, persistent=False)
        self.register_buffer("valid", valid, persistent=False)

    def forward(self, readout: torch.Tensor, task_idx: torch.Tensor) -> torch.Tensor:
        """``[B, H] -> [B, C]``."""
        scores = self.linear(readout).gather(1, self.columns[task_idx])
        return scores.masked_fill(~self.valid[task_idx], float("-inf"))


class VerbalizerHead(nn.Module):
    """Scores are the LM logits of each label's verbalizer token (no parameters)."""

    def __init__(self, token_ids: list[list[int]]) -> None:
        super().__init__()
        label_counts = [len(ids) for ids in token_ids]
        width = max(label_counts)
        table = torch.tensor([ids + [0] * (width - len(ids)) for ids in token_ids])
        _, valid = _column_table(label_counts)
        self.register_buffer("token_ids", table, persistent=False)  # (tasks, C)
        self.register_buffer("valid", valid, persistent=False)

    def forward(self, readout: torch.Tensor, task_idx: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, V] -> [B, C]``."""
        scores = readout.gather(1, self.token_ids[task_idx])
        return scores.masked_fill(~self.valid[task_idx], float("-inf"))


def verbalizer_token_ids(tokenizer, words: list[str]) -> list[int]:
    """First sub-token of each word as it appears after a space (BPE and SentencePiece)."""
    ids = []
    for word in words:
        pieces = tokenizer(" " + word, add_special_tokens=False).input_ids
        if not pieces:
            raise ValueError(f"verbalizer word {word!r} encodes to no token")
        ids.append(pieces[0])
    if len(set(ids)) != len(ids):
        raise ValueError(f"verbalizer words {words} share a first token; choose distinct words")
    return ids
