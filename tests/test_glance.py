"""The one-page view of every published comparison: which rows count, how they are counted."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dp_bench.glance import dynamic_parts, glance_lines, published

STATIC = ("prompt_tuning", "p_tuning_v2")
PARTS = {"adap_ins_pos": ("position",), "adap_ins_vec_pos": ("position", "representation"),
         "p_tuning_v2_ins_vec": ("representation",)}


def row(method, task, gain, low, high, *, baseline="prompt_tuning", n=3, settings="", grid="g"):
    verdict = "gain" if low > 0 else "loss" if high < 0 else "no detectable difference"
    return {"regime": "full", "grid": grid, "backbone": "bb", "method": method, "baseline": baseline,
            "task": task, "n": n, "gain_pts": gain, "ci_low": low, "ci_high": high, "verdict": verdict,
            "settings": settings}


@pytest.mark.parametrize("prompt, parts", [
    ({"position": "prefix", "length_policy": "fixed", "representation": "shared"}, ()),
    ({"position": "task"}, ("position",)),
    ({"position": "instance", "representation": "instance_pool"}, ("position", "representation")),
    ({"length_policy": "instance"}, ("length",)),
    (None, ()),
])
def test_dynamic_parts_read_the_prompt_config(prompt, parts):
    assert dynamic_parts(prompt) == parts


def test_only_what_the_tables_publish_counts_and_mixtures_have_their_own_block():
    gains = pd.DataFrame([
        row("adap_ins_pos", "cb", 1.0, -1.0, 3.0, settings="tuned"),
        row("adap_ins_pos", "cb", 2.0, 0.5, 3.0, settings="as configured"),  # not what the table reports
        row("adap_ins_pos", "rte", 2.0, 0.5, 3.0, n=2),  # too few seeds
        row("adap_ins_pos", "wic", 2.0, math.nan, math.nan),  # no per-example predictions
        row("adap_ins_pos", "cb", 2.0, 0.5, 3.0, baseline="single-task (g)"),  # multitask vs single-task
        row("p_tuning_v2_ins_vec", "cb", -2.0, -3.0, -1.0, baseline="p_tuning_v2"),
    ])
    kept = published(gains, min_seeds=3)
    assert list(zip(kept["method"], kept["settings"], kept["baseline"], strict=True)) == [
        ("adap_ins_pos", "tuned", "prompt_tuning"), ("adap_ins_pos", "", "single-task (g)"),
        ("p_tuning_v2_ins_vec", "", "p_tuning_v2")]
    text = "\n".join(glance_lines(gains, PARTS, STATIC, 3, ["cb"], single_task="single-task"))
    assert "All: 2 comparisons; 1 exclude zero (0 gains, 1 loss)" in text  # against a static prompt only
    mixture = text.split("## A task mixture against single-task training")[1]
    assert "1 comparison; 1 exclude zero (1 gain, 0 losses)" in mixture and "`single-task (g)`" in mixture


def test_a_method_with_two_dynamic_parts_shows_in_both_blocks_and_counts_once():
    gains = pd.DataFrame([
        row("adap_ins_pos", "cb", 1.39, 0.14, 2.82),
        row("adap_ins_pos", "rte", -0.5, -3.0, 2.0),
        row("adap_ins_vec_pos", "cb", -4.89, -6.39, -2.93),
        row("p_tuning_v2_ins_vec", "cb", 0.5, -1.0, 2.0, baseline="p_tuning_v2"),
    ])
    text = "\n".join(glance_lines(gains, PARTS, STATIC, 3, ["cb", "rte", "wic"]))
    assert "All: 4 comparisons; 2 exclude zero (1 gain, 1 loss); chance alone: about 0.2." in text
    position = text.split("## Position")[1].split("## ")[0]
    representation = text.split("## Representation")[1]
    assert "3 comparisons; 2 exclude zero (1 gain, 1 loss)" in position
    assert "2 comparisons; 1 exclude zero (0 gains, 1 loss)" in representation
    assert "`adap_ins_vec_pos`" in position and "`adap_ins_vec_pos`" in representation
    assert "## Length" not in text  # no method chooses its length
    header, _, first, *_ = [line for line in position.splitlines() if line.startswith("|")]
    assert [c.strip() for c in header.split("|")[1:-1]] == [
        "method", "vs", "grid", "regime", "backbone", "seeds", "cb", "rte"]  # only tasks with a comparison
    assert [c.strip() for c in first.split("|")[1:-1]][6:] == ["+1.39 [+0.14, +2.82] **gain**", "-0.50 [-3.00, +2.00]"]


def test_no_published_comparison_says_so():
    text = "\n".join(glance_lines(pd.DataFrame(), PARTS, STATIC, 3, []))
    assert "All: 0 comparisons" in text and "No published comparison yet." in text
