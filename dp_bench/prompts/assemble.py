"""Insert prompt vectors into a batch of input embeddings (vectorised, no loops).

For a row whose ``n`` real tokens are ``head | content | tail`` (for BERT ``[CLS] | ... |
[SEP]``: ``head=1, tail=1``; for T5 ``head=0, tail=1`` keeps ``</s>`` last) and a prompt
``P`` of ``L`` vectors split at ``j`` (0 <= j <= L), the arranged row is::

    head | P[j:] | content | P[:j] | tail | padding          (Yang et al. 2023, Eq. 2)

so ``j = 0`` is a pure prefix and ``j = L`` a pure suffix (the order of the authors' code,
``openprompt/prompts/soft_ins_pos_adaptive.py`` in github.com/Xianjun-Yang/DPT). Every
output slot is a gather from the "bank" ``[x ; P]`` of the row, so one ``torch.gather``
arranges the whole batch for per-row ``j`` and per-row lengths.

The straight-through position gradient (Yang et al. 2023, Sec. 3.2) is
``d loss / d w_j = <g, A_j(x, P)>`` for every candidate arrangement ``A_j``. The paper's
code materialises all ``L+1`` candidates, ``[B, L+1, T+L, H]``; :class:`ArrangeST` gets the
same inner products from small products without building any candidate (see ``_candidate_scores``).
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


def _shifted_dots(signal: torch.Tensor, content: torch.Tensor, max_shift: int, chunk: int = 32) -> torch.Tensor:
    """``out[b, s] = sum_t signal[b, t+s] . content[b, t]`` for ``s`` in ``0..max_shift``; ``[B, S+1]``.

    A banded cross-correlation along the sequence. One ``bmm`` of all pairs costs ``T/S``
    times the needed work and a grouped ``conv1d`` unfolds ``[B*H, T, S]`` on the CPU; we cut
    the content into chunks of ``chunk`` rows, multiply each with the ``chunk + S`` signal
    rows it can meet, and read the ``S+1`` diagonals. ``signal [B, Tc+S, H]``, ``content [B, Tc, H]``.
    """
    B, Tc, H = content.shape
    S = max_shift
    n = -(-Tc // chunk)
    content = F.pad(content, (0, 0, 0, n * chunk - Tc)).reshape(B, n, chunk, H)
    signal = F.pad(signal, (0, 0, 0, n * chunk + S - signal.shape[1]))
    windows = signal.unfold(1, chunk + S, chunk).transpose(2, 3)  # (B, n, chunk+S, H)
    dots = torch.matmul(windows, content.transpose(2, 3)).contiguous()  # (B, n, chunk+S, chunk)
    # Element (i+s, i) of a row-major (chunk+S, chunk) block sits at s*chunk + i*(chunk+1):
    # the S+1 diagonals are a strided view, no copy.
    bs, ns = dots.stride(0), dots.stride(1)
    band = dots.as_strided((B, n, S + 1, chunk), (bs, ns, chunk, chunk + 1))  # (B, n, S+1, chunk)
    return band.sum((1, 3))


def _candidate_scores(
    g: torch.Tensor, x: torch.Tensor, prompt: torch.Tensor, lengths: torch.Tensor, head: int, tail: int,
) -> torch.Tensor:
    """``<g, A_j(x, P)>`` for every ``j`` in ``0..L`` without building ``A_j``; ``[B, L+1]``.

    With ``s = L - j`` prompt vectors before the content and ``c`` content tokens::

        <g, A_j> = fixed + sum_{k<s} g[h+k].P[j+k]        (1: diagonal m-a=j of G_head P^T)
                         + sum_{t<c} g[h+s+t].x[h+t]      (2: banded correlation at shift s)
                         + sum_{k<j} g[h+c+s+k].P[k]      (3: diagonal r-k=s of G_tail P^T)

    ``fixed`` (head, tail and padding slots) is the same for every ``j``; it is kept so the
    result equals the materialised inner products exactly, not only up to a constant.
    """
    B, T, H = x.shape
    L = prompt.shape[1]
    h = head
    prompt = prompt.expand(B, -1, -1)
    c = (lengths - head - tail).clamp(min=0)  # (B,)
    t = torch.arange(T, device=x.device).unsqueeze(0)  # (1, T)
    # fixed: head slots hold x[o]; slots from h+L+c on hold x[o-L] (tail, then padding).
    after = (t >= (h + c).unsqueeze(1)).to(x.dtype)  # (B, T): x[t] sits at slot t+L
    fixed = (g[:, :h] * x[:, :h]).sum((1, 2)) + ((g[:, L:] * x).sum(-1) * after).sum(1)
    # (1) prompt vectors before the content; diagonal m - a = j sits at index L-1+j.
    d1 = torch.bmm(g[:, h : h + L], prompt.transpose(1, 2))  # (B, L, L): g[h+a] . P[m]
    term1 = F.pad(_diagonal_sums(d1)[:, L - 1 :], (0, 1))  # j = L has none before
    # (2) content x[h : h+c] against g shifted by s = L - j.
    in_content = (t[:, : T - h] < c.unsqueeze(1)).to(x.dtype)  # (B, T-h)
    term2 = _shifted_dots(g[:, h:], x[:, h:] * in_content.unsqueeze(-1), L).flip(1)  # index j
    # (3) prompt vectors after the content: slots h+c+r, r in 0..L-1.
    tail_slots = (h + c).unsqueeze(1) + torch.arange(L, device=x.device).unsqueeze(0)  # (B, L)
    d3 = torch.bmm(_gather(g, tail_slots), prompt.transpose(1, 2))  # (B, L, L): g[h+c+r] . P[k]
    # diagonal r - k = s = L - j sits at index (k - r) + L - 1 = j - 1; j = 0 has none after
    term3 = F.pad(_diagonal_sums(d3)[:, :L], (1, 0))
    return fixed.unsqueeze(1) + term1 + term2 + term3


class ArrangeST(torch.autograd.Function):
    """``sum_j w_j A_j(x, P)`` for a one-hot ``w``, with the exact gradient for every ``w_j``.

    Forward gathers only the chosen arrangement; backward returns ``<g, A_j>`` for all ``j``
    (``_candidate_scores``) and routes ``g`` to ``x`` and ``P`` through the chosen one.
    """

    @staticmethod
    def forward(ctx, x, prompt, weights, lengths, head: int, tail: int, index=None):  # noqa: D102
        if index is None:
            index = arrangement_index(lengths, weights.argmax(dim=-1), x.shape[1], prompt.shape[1], head, tail)
        ctx.save_for_backward(x, prompt, lengths, index)
        ctx.head, ctx.tail = head, tail
        return arrange(x, prompt, index)

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        x, prompt, lengths, index = ctx.saved_tensors
        B, T, H = x.shape
        L = prompt.shape[1]
        # Every bank row fills exactly one output slot (the index is a permutation of 0..T+L-1),
        # so the gradient is a gather through the inverse permutation: no zero-fill, no scatter-add.
        slots = torch.arange(T + L, device=index.device).expand(B, -1)
        inverse = torch.empty_like(index).scatter_(1, index, slots)
        grad_bank = _gather(g, inverse)  # (B, T+L, H)
        grad_x, grad_prompt = grad_bank[:, :T], grad_bank[:, T:]
        if prompt.shape[0] == 1:
            grad_prompt = grad_prompt.sum(0, keepdim=True)
        grad_w = None
        if ctx.needs_input_grad[2]:
            grad_w = _candidate_scores(g, x, prompt, lengths, ctx.head, ctx.tail)
        return grad_x, grad_prompt, grad_w, None, None, None, None


def arrange_with_choice(
    x: torch.Tensor, prompt: torch.Tensor, weights: torch.Tensor, lengths: torch.Tensor,
    head: int, tail: int, index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Arrange at the split chosen by one-hot ``weights [B, L+1]`` with its ST gradient.

    ``index`` is ``arrangement_index`` of that split when the caller already has it.
    """
    return ArrangeST.apply(x, prompt, weights, lengths, head, tail, index)
