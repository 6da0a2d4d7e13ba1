"""Tiny randomly initialised backbones built in the test (no network, no weights)."""

from __future__ import annotations

import torch
from transformers import (
    BertConfig,
    BertModel,
    LlamaConfig,
    LlamaForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
)

from dp_bench.backbones import Backbone, wrap_backbone

VOCAB = 100


def tiny_bert() -> Backbone:
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128)
    return wrap_backbone(BertModel(cfg), "encoder")


def tiny_t5() -> Backbone:
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                   num_heads=4, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    return wrap_backbone(T5ForConditionalGeneration(cfg), "seq2seq")


def tiny_llama() -> Backbone:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return wrap_backbone(LlamaForCausalLM(cfg), "causal")


BUILDERS = {"encoder": tiny_bert, "seq2seq": tiny_t5, "causal": tiny_llama}


def batch(lengths: list[int], seq_len: int | None = None, seed: int = 0, num_labels: int = 3) -> dict:
    """A right-padded batch with the DataModule's keys; row b has ``lengths[b]`` real tokens."""
    g = torch.Generator().manual_seed(seed)
    T = seq_len or max(lengths)
    B = len(lengths)
    ids = torch.randint(5, VOCAB, (B, T), generator=g)
    mask = (torch.arange(T).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).long()
    ids = ids.masked_fill(mask == 0, 0)
    return {
        "input_ids": ids, "attention_mask": mask,
        "labels": torch.randint(0, num_labels, (B,), generator=g),
        "example_idx": torch.arange(B), "group_idx": torch.arange(B), "task_idx": torch.zeros(B, dtype=torch.long),
    }


VERBALIZER = [[7, 8, 9]]  # token ids standing for three label words
