"""Key/value prefixes at every layer (P-tuning v2, Liu et al. 2021; prefix tuning, Li & Liang 2021).

transformers 5 passes past keys/values as ``Cache`` objects (BERT's ``past_key_values``
argument became ``cache``); PEFT's prefix tuning still builds legacy tuples and fails on
BERT there. We build a fresh ``DynamicCache`` per forward pass whose layer ``i`` already
holds the prompt's keys and values, ``[B, heads, L, head_dim]``; each attention layer
appends the input's own keys/values to it, so every token attends to the prefix. The
cache is rebuilt every call because attention layers extend it in place.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache


def deep_width(num_layers: int, num_kv_heads: int, head_dim: int) -> int:
    """Width W of one deep prompt vector: keys and values of every layer, flattened."""
    return num_layers * 2 * num_kv_heads * head_dim


def prefix_cache(
    vectors: torch.Tensor, batch_size: int, num_layers: int, num_kv_heads: int, head_dim: int,
    config=None,
) -> DynamicCache:
    """A cache preloaded with the prompt as every layer's key/value prefix.

    Args:
        vectors: deep prompt ``[B or 1, L, num_layers * 2 * heads * head_dim]``.
        batch_size: B.
        num_layers, num_kv_heads, head_dim: the attention geometry of the backbone.
        config: the backbone's config (lets the cache know its layer types).
    """
    L = vectors.shape[1]
    kv = vectors.expand(batch_size, -1, -1).reshape(
        batch_size, L, num_layers, 2, num_kv_heads, head_dim
    )
    kv = kv.permute(2, 3, 0, 4, 1, 5)  # (layers, 2, B, heads, L, head_dim)
    cache = DynamicCache(config=config) if config is not None else DynamicCache()
    for layer in range(num_layers):
        cache.update(kv[layer, 0], kv[layer, 1], layer)
    return cache
