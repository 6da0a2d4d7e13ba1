"""Prompt insertion: the vectorised arrangement against a per-example reference."""

import pytest
import torch

from dp_bench.prompts.assemble import (
    arrange,
    arrange_with_choice,
    arranged_mask,
    arrangement_index,
    positions_from_mask,
)


def reference_row(x, prompt, n, j, head, tail):
    """Plain per-example arrangement: head | P[j:] | content | P[:j] | tail | padding."""
    return torch.cat([x[:head], prompt[j:], x[head : n - tail], prompt[:j], x[n - tail : n], x[n:]])


def random_case(seed, B=5, T=11, L=6, H=4, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, H, generator=g, dtype=dtype)
    prompt = torch.randn(B, L, H, generator=g, dtype=dtype)
    lengths = torch.randint(2, T + 1, (B,), generator=g)
    lengths[0] = T  # one unpadded row
    lengths[-1] = 2  # one row with no content at all (only [CLS] [SEP])
    split = torch.randint(0, L + 1, (B,), generator=g)
    return x, prompt, lengths, split


@pytest.mark.parametrize("head,tail", [(1, 1), (0, 1), (0, 0)])
@pytest.mark.parametrize("seed", range(4))
def test_vectorised_insertion_equals_per_example_reference(seed, head, tail):
    x, prompt, lengths, split = random_case(seed)
    T, L = x.shape[1], prompt.shape[1]
    index = arrangement_index(lengths, split, T, L, head, tail)
    out = arrange(x, prompt, index)
    mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).long()
    out_mask = arranged_mask(mask, index)
    for b in range(x.shape[0]):
        n, j = int(lengths[b]), int(split[b])
        assert torch.equal(out[b], reference_row(x[b], prompt[b], n, j, head, tail))
        assert out_mask[b].tolist() == [1] * (n + L) + [0] * (T - n)


def test_prefix_and_suffix_ends():
    x, prompt, lengths, _ = random_case(0, B=1, T=6, L=3)
    lengths[:] = 6
    prefix = arrange(x, prompt, arrangement_index(lengths, torch.tensor([0]), 6, 3, 1, 1))
    suffix = arrange(x, prompt, arrangement_index(lengths, torch.tensor([3]), 6, 3, 1, 1))
    assert torch.equal(prefix[0, 1:4], prompt[0])  # right after [CLS]
    assert torch.equal(suffix[0, 5:8], prompt[0])  # right before the final [SEP]
    assert torch.equal(suffix[0, 8], x[0, 5]) and torch.equal(prefix[0, 0], x[0, 0])


def test_keep_mask_removes_unused_prompt_slots_and_their_positions():
    x, prompt, lengths, _ = random_case(1, B=2, T=5, L=4)
    lengths[:] = torch.tensor([5, 3])
    index = arrangement_index(lengths, torch.zeros(2, dtype=torch.long), 5, 4, 1, 1)
    keep = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]])
    mask = (torch.arange(5).unsqueeze(0) < lengths.unsqueeze(1)).long()
    out_mask = arranged_mask(mask, index, keep)
    assert out_mask.tolist() == [[1, 1, 1, 0, 0, 1, 1, 1, 1], [1, 1, 0, 0, 0, 1, 1, 0, 0]]
    positions = positions_from_mask(out_mask)
    assert positions[0].tolist()[5:] == [3, 4, 5, 6]  # content continues after the kept slots


@pytest.mark.parametrize("head,tail", [(1, 1), (0, 1), (0, 0)])
@pytest.mark.parametrize("shared", [True, False])
def test_straight_through_gradient_equals_materialised_candidates(head, tail, shared):
    """ArrangeST: same output and the same gradients as sum_j w_j A_j over all candidates."""
    x, prompt, lengths, _ = random_case(3)
    if shared:
        prompt = prompt[:1]
    x.requires_grad_(True)
    prompt.requires_grad_(True)
    B, T, L = x.shape[0], x.shape[1], prompt.shape[1]
    logits = torch.randn(B, L + 1, dtype=x.dtype, requires_grad=True)
    weights = torch.nn.functional.gumbel_softmax(logits, tau=0.7, hard=True)
    upstream = torch.randn(B, T + L, x.shape[2], dtype=x.dtype)

    ours = arrange_with_choice(x, prompt, weights, lengths, head, tail)
    grads = torch.autograd.grad((ours * upstream).sum(), (x, prompt, logits), retain_graph=True)

    candidates = torch.stack(
        [arrange(x, prompt, arrangement_index(lengths, torch.full((B,), j), T, L, head, tail)) for j in range(L + 1)], 1
    )  # (B, L+1, T+L, H)
    reference = (weights[:, :, None, None] * candidates).sum(1)
    ref_grads = torch.autograd.grad((reference * upstream).sum(), (x, prompt, logits))

    assert torch.allclose(ours, reference)
    for mine, ref in zip(grads, ref_grads, strict=True):
        assert torch.allclose(mine, ref, atol=1e-10)
    assert grads[2].abs().sum() > 0
