"""The LightningModule's optimiser set-up: learning rates per parameter group."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dp_bench.module import PromptTuningModule


def group_lrs(**kwargs) -> dict[str, float]:
    module = PromptTuningModule(**kwargs)
    module._trainer = SimpleNamespace(estimated_stepping_batches=10)  # all configure_optimizers reads
    optimizer = module.configure_optimizers()["optimizer"]
    return {group["name"]: group["initial_lr"] for group in optimizer.param_groups}


def test_lr_scale_multiplies_every_group():
    base = group_lrs(method="adap_ins_pos", lr=1e-2, policy_lr=2e-3)
    scaled = group_lrs(method="adap_ins_pos", lr=1e-2, policy_lr=2e-3, lr_scale=3.0)
    assert base == pytest.approx({"prompt": 1e-2, "policy": 2e-3})
    assert scaled == pytest.approx({"prompt": 3e-2, "policy": 6e-3})
    tuned = group_lrs(method="fine_tuning", backbone_lr=2e-5, lr_scale=0.3)
    assert tuned["backbone"] == pytest.approx(6e-6)


def test_lr_scale_must_be_positive():
    with pytest.raises(ValueError, match="lr_scale=0"):
        PromptTuningModule(lr_scale=0)


@pytest.mark.parametrize("method", ["fine_tuning", "prompt_tuning"])
def test_the_backbone_runs_without_dropout_whoever_calls_train(method):
    # Lightning keeps the modes it finds; bench.py and users call train(): both see no dropout,
    # as every recorded run trained (the backbone from from_pretrained is in eval mode).
    module = PromptTuningModule(method=method, tasks=["cb"]).train()
    assert not any(m.training for m in module.net.backbone.modules())
    assert module.net.head.training  # the rest of the model trains as usual
    tuned = {p.requires_grad for p in module.net.backbone.parameters()}
    assert tuned == {method == "fine_tuning"}
