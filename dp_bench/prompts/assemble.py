"""Insert prompt vectors into a batch of input embeddings (vectorised, no loops).

For a row whose ``n`` real tokens are ``head | content | tail`` (for BERT ``[CLS] | ... |
[SEP]``: ``head=1, tail=1``; for T5 ``head=0, tail=1`` keeps ``</s>`` last) and a prompt
``P`` of ``L`` vectors split at ``j`` (0 <= j <= L), the arranged row is::

    head | P[j:] | content | P[:j] | tail | padding          (Yang et al. 2023, Eq. 2)

so ``j = 0`` is a pure prefix and ``j = L`` a pure suffix. Every output slot is a gather
from the "bank" ``[x ; P]`` of the row, so one ``torch.gather`` arranges the whole batch
for per-row ``j`` and per-row lengths.

The straight-through position gradient (Yang et al. 2023, Sec. 3.2) is
``d loss / d w_j = <g, A_j(x, P)>`` for every candidate arrangement ``A_j``. The paper's
code materialises all ``L+1`` candidates, ``[B, L+1, T+L, H]``; :class:`ArrangeST` gets the
same inner products from three pieces without building any candidate (see ``_candidate_scores``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def arrangement_index(
    lengths: torch.Tensor, split: torch.Tensor, seq_len: int, prompt_len: int, head: int, tail: int
) -> torch.Tensor:
    """Bank index of every output slot.

    Args:
        lengths: real tokens per row, ``[B]`` (right padding).
        split: prompt vectors placed after the content, ``[B]``, in ``0..L``.
        seq_len: ``T``, padded input length.
        prompt_len: ``L``.
        head: tokens kept before the prompt region.
        tail: tokens kept after it.

    Returns:
        ``[B, T+L]`` long; values ``< T`` address input tokens, ``T + k`` prompt vector ``k``.
    """
    T, L = seq_len, prompt_len
    o = torch.arange(T + L, device=lengths.device).unsqueeze(0)  # (1, T+L)
    j = split.unsqueeze(1)  # (B, 1)
    c = (lengths - head - tail).clamp(min=0).unsqueeze(1)  # (B, 1) content tokens
    before = head + L - j  # first content slot
    after = before + c  # first slot of P[:j]
    end = head + L + c  # first tail slot
    return torch.where(
        o < head,
        o,
        torch.where(
            o < before,
            T + j + (o - head),
            torch.where(o < after, o - (L - j), torch.where(o < end, T + (o - after), o - L)),
        ),
    )


def arranged_mask(
    attention_mask: torch.Tensor, index: torch.Tensor, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """Attention mask of the arranged rows, ``[B, T+L]``.

    ``keep`` (``[B, L]``, 0/1) removes unused prompt slots from attention (the length policy);
    without it every prompt slot of a row is attended.
    """
    B, T = attention_mask.shape
    L = index.shape[1] - T
    if keep is None:
        keep = attention_mask.new_ones(B, L)
    bank_mask = torch.cat([attention_mask, keep.to(attention_mask.dtype)], dim=1)  # (B, T+L)
    return bank_mask.gather(1, index)


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that count attended slots only, ``[B, S]``: masked prompt slots take no position."""
    return (mask.long().cumsum(1) - 1).clamp(min=0)


def _gather(bank: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return bank.gather(1, index.unsqueeze(-1).expand(-1, -1, bank.shape[-1]))


def arrange(
    x: torch.Tensor, prompt: torch.Tensor, index: torch.Tensor
) -> torch.Tensor:
    """Arranged embeddings ``[B, T+L, H]`` from ``x [B, T, H]``, ``prompt [B or 1, L, H]``."""
    bank = torch.cat([x, prompt.expand(x.shape[0], -1, -1)], dim=1)  # (B, T+L, H)
    return _gather(bank, index)


def _diagonal_sums(d: torch.Tensor) -> torch.Tensor:
    """``out[b, L-1 + (m - a)] = sum over a, m of d[b, a, m]`` on each diagonal; ``[B, 2L-1]``."""
    B, L, _ = d.shape
    a = torch.arange(L, device=d.device)
    offset = (a.unsqueeze(0) - a.unsqueeze(1) + L - 1).reshape(1, -1).expand(B, -1)  # m - a
    return d.new_zeros(B, 2 * L - 1).scatter_add_(1, offset, d.reshape(B, -1))


def _candidate_scores(
    g: torch.Tensor, x: torch.Tensor, prompt: torch.Tensor, lengths: torch.Tensor,
    fixed_score: torch.Tensor, head: int, tail: int,
) -> torch.Tensor:
    """``<g, A_j(x, P)>`` for every ``j`` in ``0..L`` without building ``A_j``; ``[B, L+1]``.

    With ``s = L - j`` prompt vectors before the content and ``c`` content tokens::

        <g, A_j> = fixed + sum_{k<s} g[h+k].P[j+k]        (1: diagonal m-a=j of G_head P^T)
                         + sum_{t<c} g[h+s+t].x[h+t]      (2: cross-correlation at shift s)
                         + sum_{k<j} g[h+c+s+k].P[k]      (3: diagonal r-k=s of G_tail P^T)

    (2) is a grouped ``conv1d`` (one group per row); (1) and (3) are ``[L, L]`` products.
    """
    B, T, H = x.shape
    L = prompt.shape[1]
    h = head
    prompt = prompt.expand(B, -1, -1)
    c = (lengths - head - tail).clamp(min=0)  # (B,)
    # (1) prompt vectors before the content.
    d1 = torch.bmm(g[:, h : h + L], prompt.transpose(1, 2))  # (B, L, L): g[h+a] . P[m]
    # diagonal m - a = j sits at index L-1+j; j = L has no vector before the content
    term1 = F.pad(_diagonal_sums(d1)[:, L - 1 :], (0, 1))  # (B, L+1)
    # (2) content: correlate g[h : h+L+T-h] with the masked content x[h:T].
    content_mask = (torch.arange(T - h, device=x.device).unsqueeze(0) < c.unsqueeze(1))
    content = (x[:, h:] * content_mask.unsqueeze(-1).to(x.dtype)).transpose(1, 2)  # (B, H, T-h)
    signal = g[:, h:].transpose(1, 2).reshape(1, B * H, T + L - h)  # (1, B*H, T+L-h)
    by_shift = F.conv1d(signal, content, groups=B).reshape(B, L + 1)  # [b, s]
    term2 = by_shift.flip(1)  # s = L - j  ->  index j
    # (3) prompt vectors after the content: slots h+c+r, r in 0..L-1.
    r = torch.arange(L, device=x.device)
    tail_slots = (h + c).unsqueeze(1) + r.unsqueeze(0)  # (B, L)
    g_tail = _gather(g, tail_slots)  # (B, L, H)
    d3 = torch.bmm(g_tail, prompt.transpose(1, 2))  # (B, L, L): g_tail[r] . P[k]
    # diagonal r - k = s = L - j lies at offset (k - r) = -(L - j) -> index L-1-(L-j) = j-1
    term3 = F.pad(_diagonal_sums(d3)[:, :L], (1, 0))  # j = 0 has none after
    return fixed_score.unsqueeze(1) + term1 + term2 + term3


class ArrangeST(torch.autograd.Function):
    """``sum_j w_j A_j(x, P)`` for a one-hot ``w``, with the exact gradient for every ``w_j``.

    Forward gathers only the chosen arrangement; backward returns ``<g, A_j>`` for all ``j``
    (``_candidate_scores``) and routes ``g`` to ``x`` and ``P`` through the chosen one.
    """

    @staticmethod
    def forward(ctx, x, prompt, weights, lengths, head: int, tail: int):  # noqa: D102
        B, T, _ = x.shape
        L = prompt.shape[1]
        split = weights.argmax(dim=-1)
        index = arrangement_index(lengths, split, T, L, head, tail)
        ctx.save_for_backward(x, prompt, lengths, index)
        ctx.head, ctx.tail = head, tail
        return arrange(x, prompt, index)

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        x, prompt, lengths, index = ctx.saved_tensors
        B, T, H = x.shape
        L = prompt.shape[1]
        grad_bank = g.new_zeros(B, T + L, H).scatter_add_(
            1, index.unsqueeze(-1).expand(-1, -1, H), g
        )
        grad_x, grad_prompt = grad_bank[:, :T], grad_bank[:, T:]
        if prompt.shape[0] == 1:
            grad_prompt = grad_prompt.sum(0, keepdim=True)
        grad_w = None
        if ctx.needs_input_grad[2]:
            # Slots outside the moving region (head, tail, padding) score the same for every j.
            o = torch.arange(T + L, device=x.device).unsqueeze(0)
            moving = (o >= ctx.head) & (o < (lengths - ctx.tail).unsqueeze(1) + L)
            fixed_slots = ~moving
            fixed = (g * arrange(x, prompt, index) * fixed_slots.unsqueeze(-1)).sum((1, 2))
            grad_w = _candidate_scores(g, x, prompt, lengths, fixed, ctx.head, ctx.tail)
        return grad_x, grad_prompt, grad_w, None, None, None


def arrange_with_choice(
    x: torch.Tensor, prompt: torch.Tensor, weights: torch.Tensor, lengths: torch.Tensor,
    head: int, tail: int,
) -> torch.Tensor:
    """Arrange at the split chosen by one-hot ``weights [B, L+1]`` with its ST gradient."""
    return ArrangeST.apply(x, prompt, weights, lengths, head, tail)
