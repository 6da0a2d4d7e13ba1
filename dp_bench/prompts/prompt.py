"""The prompt module: one class composed of a position, a length and a representation policy.

Static prompt tuning (Lester et al. 2021) is the case where every policy is fixed;
P-tuning v2 (Liu et al. 2021) the case of depth "deep"; the paper's dynamic methods
learn one or more policies (Yang et al. 2023). No method-specific subclass exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dp_bench.prompts.config import PromptConfig
from dp_bench.prompts.policies import (
    FixedPosition,
    InstanceLength,
    InstancePool,
    InstancePosition,
    SharedPrompt,
    TaskPosition,
)


@dataclass
class PromptDecision:
    """What the policies decided for one batch.

    Attributes:
        vectors: prompt vectors ``[B or 1, L, W]`` (W = hidden size, or the flattened
            key/value width of every layer for deep prompts).
        split: prompt vectors after the content per row, ``[B]`` long.
        split_weights: straight-through one-hot over splits ``[B, L+1]`` when learned.
        keep: 0/1 prompt-slot mask ``[B, L]`` when the length is learned.
        pool_weights: mixture weights ``[B, k]`` for pooled representations (detached).
    """

    vectors: torch.Tensor
    split: torch.Tensor
    split_weights: torch.Tensor | None = None
    keep: torch.Tensor | None = None
    pool_weights: torch.Tensor | None = None


class DynamicPrompt(nn.Module):
    """Produces prompt vectors and placement decisions; never touches the input itself.

    Args:
        config: the method.
        hidden_size: H, the width of the frozen features the policies read.
        width: W, the width of each prompt vector (H for input prompts).
        init: initial prompt table ``[L, W]`` (``[k, L, W]`` is built from it for pools).
    """

    def __init__(self, config: PromptConfig, hidden_size: int, width: int, init: torch.Tensor):
        super().__init__()
        c = self.config = config
        if init.shape != (c.length, width):
            raise ValueError(f"prompt init has shape {tuple(init.shape)}, expected {(c.length, width)}")
        reparam = c.reparam_hidden if c.reparameterize else 0
        if c.representation == "instance_pool":
            # Each pool member starts from the same table plus small noise, so members differ.
            pool = init.unsqueeze(0) + 0.02 * torch.randn(c.pool_size, *init.shape) * init.std()
            self.representation: SharedPrompt = InstancePool(pool, hidden_size, c.policy_hidden, reparam)
        else:
            self.representation = SharedPrompt(init, reparam)
        if c.position == "task":
            self.position: nn.Module = TaskPosition(c.length)
        elif c.position == "instance":
            self.position = InstancePosition(hidden_size, c.length, c.policy_hidden)
        else:
            self.position = FixedPosition(c.fixed_split)
        self.length_policy = (
            InstanceLength(hidden_size, c.length, c.policy_hidden)
            if c.length_policy == "instance"
            else None
        )
        self.tau = c.tau_start

    @property
    def learns_position(self) -> bool:
        return not isinstance(self.position, FixedPosition)

    def forward(self, features: torch.Tensor | None, batch_size: int) -> PromptDecision:
        """Decide the prompt for a batch; ``features`` is ``[B, H]`` or None when unused."""
        vectors = self.representation(features)  # (B or 1, L, W)
        keep = None
        if self.length_policy is not None:
            keep = self.length_policy(features, self.tau)  # (B, L)
            vectors = vectors * keep.unsqueeze(-1)  # value unchanged where kept; carries the ST gradient
        choice = self.position(features, batch_size, self.tau)
        split_weights = choice if self.learns_position else None
        split = choice.argmax(-1) if self.learns_position else choice
        pool_weights = getattr(self.representation, "last_weights", None)
        return PromptDecision(vectors, split.to(vectors.device), split_weights, keep, pool_weights)
