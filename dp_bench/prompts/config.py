"""One typed description of a prompt method: a point in the paper's design space.

Every method in the benchmark (Lester et al.'s prompt tuning, P-tuning v2, the paper's
dynamic variants, and combinations the paper does not run) is a value of
:class:`PromptConfig`; ``dp_bench.prompts.PRESETS`` names the ones we ship.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Depth = Literal["input", "deep", "none"]
Position = Literal["prefix", "suffix", "split", "task", "instance"]
LengthPolicy = Literal["fixed", "instance"]
Representation = Literal["shared", "instance_pool"]


@dataclass
class PromptConfig:
    """Where the prompt sits, how long it is, what it is made of, and how deep it goes.

    Args:
        length: number of prompt vectors L (the maximum, for the instance-level length).
        depth: "input" inserts vectors into the input embeddings (prompt tuning); "deep"
            adds key/value prefixes at every layer (P-tuning v2); "none" uses no prompt
            (linear probe / fine-tuning rows).
        position: "prefix", "suffix", "split" (fixed split, see ``split``), "task" (learned
            logits over the L+1 splits, Gumbel) or "instance" (a network on pooled frozen
            features picks the split per example, Gumbel).
        split: with position="split", how many prompt vectors go after the input content.
        length_policy: "fixed" uses all L vectors; "instance" picks a length 0..L per
            example (Gumbel) and removes the unused slots from attention.
        representation: "shared" is one prompt for all inputs; "instance_pool" mixes
            ``pool_size`` prompts with per-example softmax weights.
        pool_size: number of prompts in the pool (k).
        reparameterize: produce the prompt through a two-layer MLP (P-tuning v2 option).
        reparam_hidden: hidden width of that MLP.
        policy_hidden: hidden width of the small policy networks.
        tau_start: Gumbel-softmax temperature at the first training step.
        tau_end: temperature reached at the last training step (exponential annealing).
        init: "vocab" initialises input-level prompts from random vocabulary embeddings
            (Lester et al. 2021), "normal" from N(0, 0.02).
        tune_backbone: also train every backbone weight (the fine-tuning reference row).
        cache_features: cache the instance features per example across epochs (valid
            because the frozen backbone runs without dropout; identical results, one
            backbone pass per step instead of two). Ignored when the backbone is tuned.
    """

    length: int = 20
    depth: Depth = "input"
    position: Position = "prefix"
    split: int = 0
    length_policy: LengthPolicy = "fixed"
    representation: Representation = "shared"
    pool_size: int = 4
    reparameterize: bool = False
    reparam_hidden: int = 512
    policy_hidden: int = 128
    tau_start: float = 1.0
    tau_end: float = 0.5
    init: Literal["vocab", "normal"] = "vocab"
    tune_backbone: bool = False
    cache_features: bool = True

    def __post_init__(self) -> None:
        def bad(field: str, why: str) -> ValueError:
            return ValueError(f"PromptConfig.{field}={getattr(self, field)!r}: {why}")

        if self.depth != "none" and self.length < 1:
            raise bad("length", "must be >= 1 (use depth='none' for no prompt)")
        if self.position == "split" and not 0 <= self.split <= self.length:
            raise bad("split", f"must be in 0..length={self.length}")
        if self.pool_size < 1:
            raise bad("pool_size", "must be >= 1")
        if not (self.tau_start > 0 and self.tau_end > 0):
            raise bad("tau_start", f"temperatures must be > 0 (tau_end={self.tau_end})")
        if self.depth == "deep" and self.position != "prefix":
            raise bad("position", "deep (key/value) prompts have no position: use 'prefix'")
        if self.length_policy == "instance" and self.position != "prefix":
            raise bad("length_policy", "the instance-level length applies to prefix prompts")
        if self.depth == "none" and (
            self.position != "prefix" or self.length_policy != "fixed"
            or self.representation != "shared"
        ):
            raise bad("depth", "no prompt: position/length/representation policies must stay static")

    @property
    def uses_prompt(self) -> bool:
        return self.depth != "none"

    @property
    def needs_features(self) -> bool:
        """Whether any policy reads the pooled frozen features of the raw input."""
        return self.uses_prompt and (
            self.position == "instance"
            or self.length_policy == "instance"
            or self.representation == "instance_pool"
        )

    @property
    def fixed_split(self) -> int | None:
        """The split for static positions, None when it is learned."""
        return {"prefix": 0, "suffix": self.length, "split": self.split}.get(self.position)
