"""``dp-bench bench``: the per-example baseline is a fair comparison, and --quick runs end to end.

No timing is asserted here: timings live in ``results/bench`` from real runs.
"""

import json

import pytest
import torch

from dp_bench import bench
from dp_bench.bench_baselines import loop_arrange_with_choice
from dp_bench.prompts.assemble import arrange_with_choice


def random_case(seed, B=4, T=9, L=5, H=3, shared=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, H, generator=g, dtype=torch.float64, requires_grad=True)
    prompt = torch.randn(1 if shared else B, L, H, generator=g, dtype=torch.float64, requires_grad=True)
    lengths = torch.randint(2, T + 1, (B,), generator=g)
    lengths[0], lengths[-1] = T, 2  # an unpadded row and one with no content
    logits = torch.randn(B, L + 1, generator=g, dtype=torch.float64, requires_grad=True)
    weights = torch.nn.functional.gumbel_softmax(logits, tau=0.7, hard=True)  # (B, L+1) one-hot, ST
    upstream = torch.randn(B, T + L, H, generator=g, dtype=torch.float64)
    return x, prompt, logits, weights, lengths, upstream


@pytest.mark.parametrize("head,tail", [(1, 1), (0, 1), (0, 0)])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_loop_baseline_computes_exactly_what_arrange_with_choice_computes(seed, shared, head, tail):
    x, prompt, logits, weights, lengths, upstream = random_case(seed, shared=shared)
    outs, grads = [], []
    for fn in (arrange_with_choice, loop_arrange_with_choice):
        out = fn(x, prompt, weights, lengths, head, tail)
        outs.append(out)
        grads.append(torch.autograd.grad(out, (x, prompt, logits), upstream, retain_graph=True))
    ours, loop = grads
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(ours[0], loop[0])  # d/dx: the chosen arrangement routes g back unchanged
    # d/dP and d/dlogits add the same products in another order (float64 rounding only).
    assert torch.allclose(ours[1], loop[1], rtol=0, atol=1e-12)
    assert torch.allclose(ours[2], loop[2], rtol=0, atol=1e-12)
    assert ours[2].abs().sum() > 0  # the position gradient is really there


def test_quick_run_writes_a_record_and_a_table(tmp_path):
    from dp_bench.cli import main

    assert main(["bench", "--quick", "--out", str(tmp_path), "--name", "ci"]) == 0
    record = json.loads((tmp_path / "ci.json").read_text())
    for key in ("kind", "name", "command", "device", "device_name", "machine", "versions", "git", "config",
                "insertion", "steps", "gpu", "targets", "notes", "load_average", "wall_time_s"):
        assert key in record, key
    assert record["config"]["quick"] is True
    assert {"git_sha", "git_dirty"} <= set(record["git"])
    assert record["versions"]["peft"]
    case = record["insertion"][0]
    assert {"ours", "gather", "loop"} <= set(case)
    assert {"median_s", "q1_s", "q3_s", "min_s", "max_s", "n", "times_s"} <= set(case["ours"])
    steps = record["steps"]
    assert list(steps) == ["prompt_tuning", "adap_ins_pos+cache", "adap_ins_pos+nocache", "peft_prompt_tuning",
                           "p_tuning_v2", "peft_prefix_tuning"]
    for name in ("prompt_tuning", "adap_ins_pos+cache", "adap_ins_pos+nocache", "peft_prompt_tuning", "p_tuning_v2"):
        assert steps[name]["status"] == "ok", steps[name]
        assert steps[name]["train_step"]["n"] >= 1 and steps[name]["eval"]["examples_per_s"] > 0
    # A PEFT baseline that breaks is recorded, not fatal.
    assert steps["peft_prefix_tuning"]["status"] == "ok" or steps["peft_prefix_tuning"]["status"].startswith("fails: ")
    # Same prompt (20 x 384) and the same Linear(384, 3) head: the comparison with PEFT is like for like.
    assert steps["prompt_tuning"]["trainable_params"] == steps["peft_prompt_tuning"]["trainable_params"] == 20 * 384 + 384 * 3 + 3
    memory = steps["prompt_tuning"]["memory"]
    assert memory.get("peak_rss_mb", 0) > 0 or "peak_allocated_mb" in memory, memory
    assert [t["name"] for t in record["targets"]] == [
        "insertion_speedup_vs_loop", "adap_ins_pos+cache_vs_prompt_tuning", "adap_ins_pos+nocache_vs_prompt_tuning",
        "prompt_tuning_vs_peft",
    ]
    for t in record["targets"]:
        assert t["value"] is not None and t["met"] in (True, False)
    if not torch.cuda.is_available():
        assert "skipped" in record["gpu"]
    table = (tmp_path / "ci.md").read_text()
    assert "## Targets" in table and "| prompt_tuning | 8,835 |" in table and "Quick mode" in table
    record["machine"].setdefault("cpu", {})["env"] = {"MKL_CBWR": "COMPATIBLE"}
    assert " torch threads) with MKL_CBWR=COMPATIBLE, torch " in bench.markdown(record)  # a kernel pin is named
    record["machine"]["cpu"].pop("env")
    assert " torch threads), torch " in bench.markdown(record)


def test_unknown_section_is_an_error_naming_it(capsys):
    assert bench.main(["--sections", "insertion,speed"]) == 2
    assert "speed" in capsys.readouterr().err


def test_dashed_and_underscored_options_are_the_same():
    assert bench._underscored("--peak-tflops=989") == "--peak_tflops=989"
    assert bench._underscored("--min-repeats") == "--min_repeats"
    assert bench._underscored("--not-an-option") == "--not-an-option"


def test_verdict_says_met_or_missed_and_by_how_much():
    assert bench.verdict(30.0, 15.0, ">=")["by"] == "met (2.0x the target)"
    assert bench.verdict(5.0, 100.0, ">=")["by"] == "missed (reached 5% of the target)"
    assert bench.verdict(1.2, 1.0, "<=") == {"value": 1.2, "target": 1.0, "comparison": "<=", "met": False, "by": "missed by 20%"}
    assert bench.verdict(0.9, 1.0, "<=")["by"] == "met (10% headroom)"
    assert bench.verdict(None, 1.05, "<=")["met"] is None


def test_method_names_set_the_feature_cache_explicitly():
    from tests.tiny import tiny_bert

    backbone, cpu = tiny_bert(), torch.device("cpu")
    assert bench.build_method("adap_ins_pos+cache", "unused", cpu, backbone).model.feature_cache is not None
    assert bench.build_method("adap_ins_pos+nocache", "unused", cpu, backbone).model.feature_cache is None
    with pytest.raises(ValueError, match="fast"):
        bench.build_method("adap_ins_pos+fast", "unused", cpu, backbone)
