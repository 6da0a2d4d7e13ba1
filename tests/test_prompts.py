"""The prompt framework on tiny backbones: every preset, every head kind."""

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from dp_bench.prompted import PromptedModel
from dp_bench.prompts import PRESETS, PromptConfig, register_preset
from tests.tiny import BUILDERS, VERBALIZER, batch, tiny_bert

EXPECTED_TRAINABLE = {
    "prompt_tuning": {"prompt.representation.vectors"},
    "p_tuning_v2": {"prompt.representation.vectors"},
    "adap_pos": {"prompt.representation.vectors", "prompt.position.logits"},
    "adap_ins_pos": {"prompt.representation.vectors"} | {f"prompt.position.net.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")},
    "adap_ins_len": {"prompt.representation.vectors"} | {f"prompt.length_policy.net.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")},
    "adap_ins_vec": {"prompt.representation.vectors"} | {f"prompt.representation.net.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")},
    "adap_ins_vec_pos": {"prompt.representation.vectors"}
    | {f"prompt.{m}.net.{i}.{p}" for m in ("representation", "position") for i in (0, 2) for p in ("weight", "bias")},
    "p_tuning_v2_ins_vec": {"prompt.representation.vectors"} | {f"prompt.representation.net.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")},
    "linear_probe": set(),
}
HEAD = {"head.linear.weight", "head.linear.bias"}


def build(kind: str, config: PromptConfig, length: int = 4) -> PromptedModel:
    if config.uses_prompt:
        config = dataclasses.replace(config, length=length, pool_size=min(config.pool_size, 3), policy_hidden=8)
    return PromptedModel(BUILDERS[kind](), config, [3], None if kind == "encoder" else VERBALIZER)


def train_step(model: PromptedModel, data: dict) -> None:
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    scores, _ = model(data)
    F.cross_entropy(scores, data["labels"]).backward()
    optimizer.step()


def test_registry_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register_preset("prompt_tuning", PromptConfig())


@pytest.mark.parametrize("name", sorted(EXPECTED_TRAINABLE))
def test_exact_trainable_parameter_names(name):
    model = build("encoder", PRESETS[name])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == EXPECTED_TRAINABLE[name] | HEAD


def test_fine_tuning_trains_backbone():
    model = build("encoder", PRESETS["fine_tuning"])
    assert all(p.requires_grad for p in model.backbone.parameters())


@pytest.mark.parametrize("kind", sorted(BUILDERS))
@pytest.mark.parametrize("name", sorted(set(PRESETS) - {"fine_tuning"}))
def test_backbone_unchanged_and_every_trainable_part_gets_gradient(kind, name):
    if name == "linear_probe" and kind != "encoder":
        pytest.skip("a verbalizer head on a frozen LM has nothing to train (zero-shot)")
    model = build(kind, PRESETS[name])
    before = copy.deepcopy(model.backbone.state_dict())
    data = batch([9, 6, 4, 9], seed=1)
    model.train()
    scores, _ = model(data)
    assert scores.shape == (4, 3) and torch.isfinite(scores).all()
    F.cross_entropy(scores, data["labels"]).backward()
    for pname, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and param.grad.abs().sum() > 0, f"{pname} got no gradient"
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def _pin_network(net: torch.nn.Sequential, choice: int) -> None:
    """Make a policy network output a large logit for ``choice`` whatever its input."""
    with torch.no_grad():
        net[2].weight.zero_()
        net[2].bias.fill_(-50.0)
        net[2].bias[choice] = 50.0


@pytest.mark.parametrize("kind", sorted(BUILDERS))
@pytest.mark.parametrize("split", [0, 2, 4])
@pytest.mark.parametrize("name", ["adap_ins_pos", "adap_pos", "adap_ins_vec_pos"])
def test_pinned_position_reduces_to_static_split(kind, name, split):
    dynamic = build(kind, PRESETS[name]).eval()
    static = build(kind, PromptConfig(length=4, position="split", split=split)).eval()
    position = dynamic.prompt.position
    if name == "adap_pos":
        with torch.no_grad():
            position.logits.copy_(torch.full((5,), -50.0))
            position.logits[split] = 50.0
    else:
        _pin_network(position.net, split)
    table = dynamic.prompt.representation.table().detach()
    if name == "adap_ins_vec_pos":
        with torch.no_grad():  # every pool member equal: the mixture is that prompt exactly
            dynamic.prompt.representation.vectors.copy_(table[0].expand_as(table))
        table = table[0]
    static.load_state_dict({**dynamic.state_dict(), "prompt.representation.vectors": table}, strict=False)
    data = batch([9, 6, 2], seed=2)
    torch.testing.assert_close(dynamic(data)[0], static(data)[0], rtol=0, atol=1e-5)
    assert dynamic(data)[1].split.tolist() == [split] * 3


@pytest.mark.parametrize("kind", sorted(BUILDERS))
@pytest.mark.parametrize("kept", [0, 2, 4])
def test_pinned_length_reduces_to_shorter_static_prompt(kind, kept):
    dynamic = build(kind, PRESETS["adap_ins_len"]).eval()
    _pin_network(dynamic.prompt.length_policy.net, kept)
    data = batch([9, 6, 3], seed=3)
    scores, decision = dynamic(data)
    assert decision.keep.sum(1).tolist() == [kept] * 3
    if kept == 0:
        reference = PromptedModel(dynamic.backbone, PRESETS["linear_probe"], [3], None if kind == "encoder" else VERBALIZER)
    else:
        reference = build(kind, PromptConfig(length=kept), length=kept).eval()
        reference.prompt.representation.vectors.data.copy_(dynamic.prompt.representation.vectors[:kept])
    reference.head.load_state_dict(dynamic.head.state_dict())
    reference.eval()
    torch.testing.assert_close(scores, reference(data)[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_deep_prompt_masked_out_equals_no_prompt(kind):
    deep = build(kind, PRESETS["p_tuning_v2"]).eval()
    with torch.no_grad():
        deep.prompt.representation.vectors.normal_()  # large keys/values: masking must matter
    none = PromptedModel(deep.backbone, PRESETS["linear_probe"], [3], None if kind == "encoder" else VERBALIZER).eval()
    none.head.load_state_dict(deep.head.state_dict())
    data = batch([9, 5, 3], seed=4)
    features = None
    decision = deep.prompt(features, 3)
    from dp_bench.prompts.assemble import positions_from_mask
    from dp_bench.prompts.deep import prefix_cache

    b = deep.backbone
    x = b.embed(data["input_ids"])
    cache = prefix_cache(decision.vectors, 3, b.num_layers, b.num_kv_heads, b.head_dim, b.config)
    masked = b.readout(x, data["attention_mask"], positions_from_mask(data["attention_mask"]), cache=cache,
                       prefix_mask=torch.zeros(3, 4, dtype=torch.long))
    torch.testing.assert_close(deep.head(masked, data["task_idx"]), none(data)[0], rtol=0, atol=1e-5)
    assert not torch.allclose(deep(data)[0], none(data)[0], atol=1e-4)  # unmasked, the prefix acts


@pytest.mark.parametrize("name", ["adap_ins_pos", "adap_ins_len", "adap_ins_vec", "adap_pos"])
def test_evaluation_is_deterministic(name):
    model = build("encoder", PRESETS[name]).eval()
    data = batch([9, 6, 4, 8], seed=5)
    first = model(data)[0]
    for _ in range(3):
        assert torch.equal(model(data)[0], first)


def test_feature_cache_serves_same_features():
    config = dataclasses.replace(PRESETS["adap_ins_pos"], cache_features=True)
    model = build("encoder", config).eval()
    data = batch([9, 6, 4], seed=6)
    fresh = model.backbone.features(data["input_ids"], data["attention_mask"])
    assert torch.equal(model.instance_features(data, "val"), fresh)
    data2 = dict(data, input_ids=torch.zeros_like(data["input_ids"]))  # same example ids: cache hit
    assert torch.equal(model.instance_features(data2, "val"), fresh)
    assert not torch.equal(model.instance_features(data2, "train"), fresh)  # another split


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))]


@pytest.mark.parametrize("device", DEVICES)
def test_feature_cache_restored_from_a_checkpoint_serves_on_the_fit_device(device):
    """A checkpoint's cache comes back on the CPU (Lightning loads it there; ``Module.to``
    does not move extra state); a fit resumed on a GPU looks it up with CUDA indices. The
    CUDA case is the regression test (on an H200 such resumes failed until 2026-12-04)."""
    from dp_bench.prompted import FeatureCache

    saved = FeatureCache()
    index, features = torch.tensor([3, 0, 5]), torch.randn(3, 4)
    saved.store("val/0", index, features)
    restored = FeatureCache()
    restored.set_extra_state(saved.get_extra_state())  # CPU tensors, as from torch.load(map_location="cpu")
    assert torch.equal(restored.lookup("val/0", index.to(device)).cpu(), features)
    assert restored.lookup("val/0", torch.tensor([1], device=device)) is None  # row 1 never stored
    restored.store("val/0", torch.tensor([1], device=device), torch.ones(1, 4, device=device))
    assert restored.lookup("val/0", torch.tensor([1, 5], device=device)).device.type == device


def test_mean_pool_excludes_padding():
    backbone = tiny_bert()
    data = batch([5, 5], seq_len=5, seed=7)
    padded = batch([5, 5], seq_len=9, seed=7)
    padded["input_ids"][:, :5] = data["input_ids"]
    padded["input_ids"][:, 5:] = 3
    backbone.eval()
    torch.testing.assert_close(
        backbone.features(data["input_ids"], data["attention_mask"]),
        backbone.features(padded["input_ids"], padded["attention_mask"]), rtol=0, atol=1e-5,
    )


def test_prompt_tuning_agrees_with_peft_on_a_causal_lm():
    """Where insertion rules coincide (prefix of a decoder-only LM), PEFT and we agree."""
    peft = pytest.importorskip("peft")
    ours = build("causal", PRESETS["prompt_tuning"]).eval()
    config = peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)
    theirs = peft.get_peft_model(copy.deepcopy(ours.backbone.model), config).eval()
    with torch.no_grad():
        theirs.prompt_encoder["default"].embedding.weight.copy_(ours.prompt.representation.vectors)
    data = batch([7, 5, 3], seed=8)
    logits = theirs(input_ids=data["input_ids"], attention_mask=data["attention_mask"]).logits  # (B, L+T, V)
    last = data["attention_mask"].sum(1) - 1 + 4
    expected = logits[torch.arange(3), last][:, [7, 8, 9]]
    torch.testing.assert_close(ours(data)[0], expected, rtol=1e-5, atol=1e-5)


def test_bad_configs_name_the_field():
    with pytest.raises(ValueError, match="split"):
        PromptConfig(length=4, position="split", split=5)
    with pytest.raises(ValueError, match="position"):
        PromptConfig(depth="deep", position="instance")


@pytest.mark.parametrize("method,trains", [("linear_probe", False), ("prompt_tuning", True)])
def test_a_method_that_trains_nothing_is_refused_before_any_data_loads(method, trains, monkeypatch):
    """linear_probe on a causal LM: the verbalizer head has no weights of its own."""
    from dp_bench import module
    from tests.tiny import tiny_llama

    monkeypatch.setattr(module, "load_backbone", lambda name, kind=None: tiny_llama())
    monkeypatch.setattr(module, "load_tokenizer", lambda name: None)
    monkeypatch.setattr(module, "verbalizer_token_ids", lambda tokenizer, words: list(range(len(words))))
    if trains:
        module.PromptTuningModule("tiny-llama", method=method)
    else:
        with pytest.raises(ValueError, match="trains nothing on the causal backbone"):
            module.PromptTuningModule("tiny-llama", method=method)
