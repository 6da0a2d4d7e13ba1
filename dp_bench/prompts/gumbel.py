"""Straight-through Gumbel-softmax and its temperature schedule (pure functions).

Jang et al. 2017 (arXiv 1611.01144); the paper samples prompt positions, lengths and
pool choices this way (Yang et al. 2023, Sec. 3.2). Sampling itself is torch's
``F.gumbel_softmax``; what is ours is the evaluation rule (no noise, plain argmax, a fix
over the released code, which kept the noise on at evaluation) and the annealing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def straight_through_choice(logits: torch.Tensor, tau: float, training: bool) -> torch.Tensor:
    """One-hot choice over the last axis with a straight-through gradient.

    Args:
        logits: unnormalised scores, ``[..., K]``.
        tau: Gumbel-softmax temperature (> 0).
        training: sample with Gumbel noise when True; deterministic argmax when False.

    Returns:
        ``[..., K]`` tensor whose values are exactly one-hot; in training its gradient is
        that of ``softmax((logits + g) / tau)``.
    """
    if training:
        return F.gumbel_softmax(logits, tau=tau, hard=True, dim=-1)
    return F.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(logits.dtype)


def annealed_temperature(step: int, total_steps: int, start: float, end: float) -> float:
    """Exponential interpolation from ``start`` (step 0) to ``end`` (last step), then flat."""
    if total_steps <= 1 or start == end:
        return end if step >= total_steps else start
    fraction = min(max(step / (total_steps - 1), 0.0), 1.0)
    return start * math.exp(fraction * math.log(end / start))
