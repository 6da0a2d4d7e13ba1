"""Position, length and representation policies (Yang et al. 2023, Sec. 3.2-3.4).

Each policy is a small module that turns the pooled frozen features of the raw input,
``[B, H]`` (or nothing, for static and task-level policies), into one decision about the
prompt. Inserting the prompt is not their business (see ``assemble.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from dp_bench.prompts.gumbel import straight_through_choice


def policy_network(in_features: int, hidden: int, choices: int) -> nn.Sequential:
    """The paper's small policy network: features ``[B, H]`` -> logits ``[B, choices]``."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(), nn.Linear(hidden, choices))


# ---------------------------------------------------------------- position: split j in 0..L


class FixedPosition(nn.Module):
    """Static position: every row uses the same split ``j`` (0 prefix, L suffix)."""

    def __init__(self, split: int) -> None:
        super().__init__()
        self.split = split

    def forward(self, features: torch.Tensor | None, batch_size: int, tau: float) -> torch.Tensor:
        """Split per row, ``[B]`` long (no gradient: nothing is learned)."""
        device = features.device if features is not None else None
        return torch.full((batch_size,), self.split, dtype=torch.long, device=device)


class TaskPosition(nn.Module):
    """Task-level position (``adap_pos``): one learned distribution over the L+1 splits."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(length + 1))

    def forward(self, features: torch.Tensor | None, batch_size: int, tau: float) -> torch.Tensor:
        """Straight-through one-hot split weights, ``[B, L+1]``, one sample per row."""
        return straight_through_choice(self.logits.expand(batch_size, -1), tau, self.training)


class InstancePosition(nn.Module):
    """Instance-level position (``adap_ins_pos``): a network picks each row's split."""

    def __init__(self, hidden_size: int, length: int, policy_hidden: int) -> None:
        super().__init__()
        self.net = policy_network(hidden_size, policy_hidden, length + 1)

    def forward(self, features: torch.Tensor, batch_size: int, tau: float) -> torch.Tensor:
        """Straight-through one-hot split weights, ``[B, L+1]``."""
        return straight_through_choice(self.net(features), tau, self.training)


# ---------------------------------------------------------------- length: 0..L vectors kept


class InstanceLength(nn.Module):
    """Instance-level length (``adap_ins_len``): keep the first ``l`` of L vectors.

    The released code filled unused slots with huge values; here they leave attention
    (``keep`` is the attention mask of the prompt slots) and the kept vectors are scaled
    by the straight-through ``keep`` (value exactly 1) so the length logits get a gradient.
    """

    def __init__(self, hidden_size: int, length: int, policy_hidden: int) -> None:
        super().__init__()
        self.net = policy_network(hidden_size, policy_hidden, length + 1)

    def forward(self, features: torch.Tensor, tau: float) -> torch.Tensor:
        """Keep weights ``[B, L]``: ``keep[b, k] = sum_{l > k} onehot[b, l]`` (0/1 values)."""
        onehot = straight_through_choice(self.net(features), tau, self.training)  # (B, L+1)
        return onehot.flip(-1).cumsum(-1).flip(-1)[:, 1:]


# ---------------------------------------------------------------- representation: the vectors


class SharedPrompt(nn.Module):
    """One prompt for every input, optionally produced by a reparameterisation MLP.

    ``reparam_hidden`` > 0 reproduces P-tuning v2's ``prefix_projection``: the stored
    parameters are ``[L, width]`` inputs of ``Linear-Tanh-Linear``; otherwise the stored
    parameters are the prompt itself.
    """

    def __init__(self, init: torch.Tensor, reparam_hidden: int = 0) -> None:
        super().__init__()
        self.vectors = nn.Parameter(init.clone())  # (L, W) or (k, L, W)
        width = init.shape[-1]
        self.reparam = (
            nn.Sequential(
                nn.Linear(width, reparam_hidden), nn.Tanh(), nn.Linear(reparam_hidden, width)
            )
            if reparam_hidden > 0
            else None
        )

    def table(self) -> torch.Tensor:
        return self.reparam(self.vectors) if self.reparam is not None else self.vectors

    def forward(self, features: torch.Tensor | None) -> torch.Tensor:
        """Prompt ``[1, L, W]`` (broadcast over the batch)."""
        return self.table().unsqueeze(0)


class InstancePool(SharedPrompt):
    """Instance-level representation (``adap_ins_vec``): softmax mixture of k prompts.

    ``P_b = sum_i softmax(net(features_b))_i * P_i`` (Yang et al. 2023, Sec. 3.4).
    """

    def __init__(
        self, init: torch.Tensor, hidden_size: int, policy_hidden: int, reparam_hidden: int = 0
    ) -> None:
        super().__init__(init, reparam_hidden)  # init: (k, L, W)
        self.net = policy_network(hidden_size, policy_hidden, init.shape[0])
        self.last_weights: torch.Tensor | None = None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Prompt ``[B, L, W]``."""
        weights = self.net(features).softmax(-1)  # (B, k)
        self.last_weights = weights.detach()
        return torch.einsum("bk,klw->blw", weights, self.table())
