"""Reference implementations that ``dp-bench bench`` times ours against.

- :func:`loop_arrange_with_choice`: dynamic prompt insertion the way the paper's released
  code does it (Yang et al. 2023, arXiv 2303.02909): a Python loop over the batch and over
  all ``L+1`` candidate positions, each candidate built with ``torch.cat`` and the
  candidates mixed with the straight-through one-hot weights, so autograd yields the
  position gradient ``<g, A_j>``. It is deliberately the slow, obvious code; a test proves
  it computes exactly what ``assemble.arrange_with_choice`` computes.
- :class:`PeftClassifier`: PEFT's prompt tuning / prefix tuning on the same Hugging Face
  model, with the same linear head on the [CLS] state as ours.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn


def loop_arrange_with_choice(
    x: torch.Tensor, prompt: torch.Tensor, weights: torch.Tensor, lengths: torch.Tensor,
    head: int, tail: int,
) -> torch.Tensor:
    """``sum_j w_j A_j(x, P)`` row by row, materialising every candidate, ``[B, T+L, H]``.

    Same arguments as :func:`dp_bench.prompts.assemble.arrange_with_choice`: ``x [B, T, H]``,
    ``prompt [B or 1, L, H]``, one-hot ``weights [B, L+1]``, real lengths ``[B]``.
    """
    B, L = x.shape[0], prompt.shape[1]
    rows = []
    for b in range(B):
        n = int(lengths[b])
        row, p = x[b], (prompt[b] if prompt.shape[0] > 1 else prompt[0])  # (T, H), (L, H)
        c = max(n - head - tail, 0)  # content tokens
        candidates = [
            torch.cat([row[:head], p[j:], row[head : head + c], p[:j], row[head + c : n], row[n:]])
            for j in range(L + 1)
        ]  # L+1 tensors (T+L, H)
        stacked = torch.stack(candidates)  # (L+1, T+L, H)
        rows.append((weights[b].view(L + 1, 1, 1) * stacked).sum(0))
    return torch.stack(rows)  # (B, T+L, H)


PeftMethod = Literal["prompt_tuning", "prefix_tuning"]


class PeftClassifier(nn.Module):
    """A PEFT prompt-learning model plus a linear head on the [CLS] state.

    Built as ``FEATURE_EXTRACTION`` on the bare encoder (``AutoModel``), so the head is the
    same ``Linear(H, C)`` ours uses. PEFT's prompt tuning prepends the virtual tokens
    before [CLS]; the [CLS] state is then at index ``L`` of the output.

    Args:
        model: a Hugging Face encoder (weights are frozen by PEFT).
        method: "prompt_tuning" (``PromptTuningConfig``) or "prefix_tuning" (``PrefixTuningConfig``).
        num_virtual_tokens: L.
        num_labels: C.
    """

    def __init__(self, model: nn.Module, method: PeftMethod, num_virtual_tokens: int, num_labels: int) -> None:
        super().__init__()
        from peft import PrefixTuningConfig, PromptTuningConfig, TaskType, get_peft_model

        configs = {"prompt_tuning": PromptTuningConfig, "prefix_tuning": PrefixTuningConfig}
        if method not in configs:
            raise ValueError(f"PeftClassifier.method={method!r}: choose from {', '.join(configs)}")
        config = configs[method](task_type=TaskType.FEATURE_EXTRACTION, num_virtual_tokens=num_virtual_tokens)
        self.peft = get_peft_model(model, config)
        self.head = nn.Linear(model.config.hidden_size, num_labels)
        self.cls_index = num_virtual_tokens if method == "prompt_tuning" else 0

    def train(self, mode: bool = True):
        """The frozen encoder runs without dropout, as ours does (``PromptedModel.train``)."""
        super().train(mode)
        self.peft.get_base_model().eval()
        return self

    def forward(self, batch: dict) -> torch.Tensor:
        """Class scores ``[B, C]``."""
        out = self.peft(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return self.head(out.last_hidden_state[:, self.cls_index])  # (B, C)
