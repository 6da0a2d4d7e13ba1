"""Named prompt methods: each preset is a :class:`PromptConfig`, nothing more.

A new method is a new entry here (and a YAML in ``experiments/methods/``), never a new
class or a branch in the training code.
"""

from __future__ import annotations

from dp_bench.prompts.config import PromptConfig

PRESETS: dict[str, PromptConfig] = {}


def register_preset(name: str, config: PromptConfig) -> PromptConfig:
    """Add a named method; names are unique."""
    if name in PRESETS:
        raise ValueError(f"prompt preset {name!r} is already registered")
    PRESETS[name] = config
    return config


def get_preset(name: str) -> PromptConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


# Lester et al. 2021: L input vectors as a prefix.
register_preset("prompt_tuning", PromptConfig(length=20))
# Liu et al. 2021 (P-tuning v2): key/value prefixes at every layer.
register_preset("p_tuning_v2", PromptConfig(length=20, depth="deep", init="normal"))
# Yang et al. 2023: task-level position (Sec. 3.2).
register_preset("adap_pos", PromptConfig(length=20, position="task"))
# Yang et al. 2023: instance-level position.
register_preset("adap_ins_pos", PromptConfig(length=20, position="instance"))
# Yang et al. 2023: instance-level length (Sec. 3.3).
register_preset("adap_ins_len", PromptConfig(length=20, length_policy="instance"))
# Yang et al. 2023: instance-level representation, a mixture of k prompt pools (Sec. 3.4).
register_preset("adap_ins_vec", PromptConfig(length=20, representation="instance_pool", pool_size=4))
# Yang et al. 2023: instance-level position and representation together.
register_preset(
    "adap_ins_vec_pos",
    PromptConfig(length=20, position="instance", representation="instance_pool", pool_size=4),
)
# Not in the paper: an instance-level pool of deep prompts.
register_preset(
    "p_tuning_v2_ins_vec",
    PromptConfig(length=20, depth="deep", init="normal", representation="instance_pool", pool_size=4),
)
# Reference rows: full fine-tuning (upper) and a head on the frozen backbone (lower).
register_preset("fine_tuning", PromptConfig(depth="none", tune_backbone=True))
register_preset("linear_probe", PromptConfig(depth="none"))

__all__ = ["PRESETS", "PromptConfig", "get_preset", "register_preset"]
