"""A frozen backbone adapted only through a prompt: decide, insert, read out, score.

This is the forward pass of every method (Yang et al. 2023, Fig. 2): pooled frozen
features of the raw input feed the policies, the prompt module decides vectors and
placement, ``assemble`` or ``deep`` puts them into the backbone, and a head scores.
"""

from __future__ import annotations

import torch
from torch import nn

from dp_bench.backbones import Backbone
from dp_bench.heads import LinearHead, VerbalizerHead
from dp_bench.prompts.assemble import (
    arrange,
    arrange_with_choice,
    arranged_mask,
    arrangement_index,
    positions_from_mask,
)
from dp_bench.prompts.config import PromptConfig
from dp_bench.prompts.deep import deep_width, prefix_cache
from dp_bench.prompts.prompt import DynamicPrompt, PromptDecision


def initial_prompt(config: PromptConfig, backbone: Backbone, width: int) -> torch.Tensor:
    """``[L, W]``: embeddings of random vocabulary tokens (Lester et al. 2021) or N(0, 0.02)."""
    if config.depth == "input" and config.init == "vocab":
        table = backbone.model.get_input_embeddings().weight.detach().float()
        # Sample from the first 5000 ids, like Lester et al.'s "sampled vocab" init.
        ids = torch.randint(0, min(5000, table.shape[0]), (config.length,))
        return table[ids].clone()
    return torch.randn(config.length, width) * 0.02


class FeatureCache(nn.Module):
    """Per-example pooled features, kept across epochs (valid only while they cannot change).

    One table per (split, task), indexed by ``example_idx``; lookups are vectorised.
    """

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, torch.Tensor] = {}
        self.filled: dict[str, torch.Tensor] = {}

    def _table_on(self, key: str, device: torch.device) -> torch.Tensor | None:
        """The key's table (and its ``filled`` mask) on ``device``, moved there if need be.

        A checkpoint's tables come back on the CPU (``set_extra_state`` receives them as
        Lightning loaded them, and ``Module.to`` moves parameters and buffers, not extra state),
        while a resumed fit on a GPU looks them up with CUDA indices.
        """
        table = self.tables.get(key)
        if table is not None and table.device != device:
            self.tables[key], self.filled[key] = table.to(device), self.filled[key].to(device)
        return self.tables.get(key)

    def lookup(self, key: str, index: torch.Tensor) -> torch.Tensor | None:
        """Cached ``[B, H]`` if every row is present, else None."""
        table = self._table_on(key, index.device)
        if table is None or int(index.max()) >= table.shape[0] or not bool(self.filled[key][index].all()):
            return None
        return table[index]

    def store(self, key: str, index: torch.Tensor, features: torch.Tensor) -> None:
        need = int(index.max()) + 1
        table = self._table_on(key, features.device)
        if table is None or table.shape[0] < need:
            size = max(need, 2 * (table.shape[0] if table is not None else 0))
            grown = features.new_zeros(size, features.shape[1])
            filled = torch.zeros(size, dtype=torch.bool, device=features.device)
            if table is not None:
                grown[: table.shape[0]] = table
                filled[: table.shape[0]] = self.filled[key]
            self.tables[key], self.filled[key] = grown, filled
        self.tables[key][index] = features
        self.filled[key][index] = True

    # Saved with the model, so that a fit resumed from a checkpoint reads the features the
    # uninterrupted fit read. Recomputed ones can differ in the last bits: a row's features
    # depend slightly on the padded length of the batch that first computed them.
    def get_extra_state(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"tables": self.tables, "filled": self.filled}

    def set_extra_state(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        self.tables, self.filled = dict(state["tables"]), dict(state["filled"])


class PromptedModel(nn.Module):
    """Backbone + prompt + head.

    Args:
        backbone: the (frozen unless ``config.tune_backbone``) pretrained model.
        config: the prompt method.
        label_counts: labels per task, in task order.
        verbalizer_ids: per task, one token id per label (verbalizer heads only).
    """

    def __init__(
        self, backbone: Backbone, config: PromptConfig, label_counts: list[int],
        verbalizer_ids: list[list[int]] | None = None,
    ) -> None:
        super().__init__()
        self.backbone, self.config = backbone, config
        backbone.requires_grad_(config.tune_backbone)
        if backbone.kind == "encoder":
            self.head: nn.Module = LinearHead(backbone.hidden_size, label_counts)
        else:
            if verbalizer_ids is None:
                raise ValueError(f"a {backbone.kind} backbone scores through a verbalizer: give verbalizer_ids")
            self.head = VerbalizerHead(verbalizer_ids)
        self.prompt: DynamicPrompt | None = None
        if config.uses_prompt:
            width = (
                backbone.hidden_size
                if config.depth == "input"
                else deep_width(backbone.num_layers, backbone.num_kv_heads, backbone.head_dim)
            )
            init = initial_prompt(config, backbone, width)
            self.prompt = DynamicPrompt(config, backbone.hidden_size, width, init)
        self.feature_cache = FeatureCache() if config.cache_features and not config.tune_backbone else None

    def train(self, mode: bool = True):
        """The backbone always runs without dropout, frozen or tuned.

        Frozen: deterministic features and outputs (what ``cache_features`` relies on). Tuned
        (the ``fine_tuning`` reference row): no dropout either, which is how every recorded
        fine_tuning run trained. Those runs got it by default (``from_pretrained`` returns the
        model in eval mode, and Lightning 2.2 on keeps the modes it finds instead of calling
        ``train()``); saying it here makes it hold whoever calls ``train()``.
        """
        super().train(mode)
        self.backbone.eval()
        return self

    def instance_features(self, batch: dict, cache_key: str | None = None) -> torch.Tensor:
        """Masked mean of the frozen backbone's last hidden states, ``[B, H]``, no grad."""
        task_idx = batch["task_idx"]
        # Tables are per (split, task); batches mixing tasks are computed, not cached.
        if self.feature_cache is not None and cache_key is not None and bool((task_idx == task_idx[0]).all()):
            key = f"{cache_key}/{int(task_idx[0])}"
            cached = self.feature_cache.lookup(key, batch["example_idx"])
            if cached is not None:
                return cached
            features = self.backbone.features(batch["input_ids"], batch["attention_mask"])
            self.feature_cache.store(key, batch["example_idx"], features)
            return features
        return self.backbone.features(batch["input_ids"], batch["attention_mask"])

    def forward(self, batch: dict, cache_key: str | None = None) -> tuple[torch.Tensor, PromptDecision | None]:
        """Class scores ``[B, C]`` and the prompt decision (None without a prompt)."""
        ids, mask = batch["input_ids"], batch["attention_mask"]  # (B, T)
        x = self.backbone.embed(ids)  # (B, T, H)
        if self.prompt is None:
            readout = self.backbone.readout(x, mask, positions_from_mask(mask))
            return self.head(readout, batch["task_idx"]), None
        features = self.instance_features(batch, cache_key) if self.config.needs_features else None
        decision = self.prompt(features, ids.shape[0])
        if self.config.depth == "deep":
            b = self.backbone
            cache = prefix_cache(decision.vectors, ids.shape[0], b.num_layers, b.num_kv_heads, b.head_dim, b.config)
            readout = b.readout(x, mask, positions_from_mask(mask), cache=cache, prefix_mask=decision.keep)
        else:
            embeds, arranged = self.insert(x, mask, decision)
            readout = self.backbone.readout(embeds, arranged, positions_from_mask(arranged))
        return self.head(readout, batch["task_idx"]), decision

    def insert(
        self, x: torch.Tensor, mask: torch.Tensor, decision: PromptDecision
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompted embeddings ``[B, T+L, H]`` and their attention mask ``[B, T+L]``."""
        b = self.backbone
        lengths = mask.sum(1)  # (B,)
        T, L = x.shape[1], decision.vectors.shape[1]
        vectors, keep = decision.vectors, decision.keep
        if keep is not None:
            vectors, keep = unused_slots_first(vectors, keep)
        index = arrangement_index(lengths, decision.split, T, L, b.keep_head, b.keep_tail)
        if decision.split_weights is not None:
            embeds = arrange_with_choice(x, vectors, decision.split_weights, lengths, b.keep_head, b.keep_tail, index)
        else:
            embeds = arrange(x, vectors, index)
        return embeds, arranged_mask(mask, index, keep)


def unused_slots_first(vectors: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate each row's prompt so the kept ``P[:l]`` sit next to the content.

    Masked slots take no absolute position (``positions_from_mask``), but a relative-position
    model (T5) would still see them as a gap between prompt and content; rotated to the far
    end, the row looks exactly like a static prompt of length ``l``.
    ``vectors [B or 1, L, W]``, ``keep [B, L]`` -> ``[B, L, W]``, ``[B, L]``.
    """
    B, L = keep.shape
    kept = keep.detach().sum(1).long()  # (B,)
    order = (torch.arange(L, device=keep.device).unsqueeze(0) + kept.unsqueeze(1)) % L  # slot s holds P[(s+l) % L]
    vectors = vectors.expand(B, -1, -1).gather(1, order.unsqueeze(-1).expand(-1, -1, vectors.shape[-1]))
    return vectors, keep.gather(1, order)
