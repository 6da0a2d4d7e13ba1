"""``dp-bench fit`` runs for every task and regime on the MiniLM default (a few steps each)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dp_bench.cli import run

ROOT = Path(__file__).resolve().parents[1]
FEW = ["--trainer.fast_dev_run", "true", "--data.limit_train_examples", "8", "--data.limit_eval_examples", "8",
       "--data.max_length", "64", "--data.batch_size", "4", "--data.eval_batch_size", "8", "--model.prompt.length", "4"]
CASES = {
    "cb-full": ["tasks/cb.yaml", "regimes/full.yaml"],
    "rte-full": ["tasks/rte.yaml", "regimes/full.yaml"],
    "copa-full": ["tasks/copa.yaml", "regimes/full.yaml"],
    "wic-full": ["tasks/wic.yaml", "regimes/full.yaml"],
    "wsc-full": ["tasks/wsc.yaml", "regimes/full.yaml"],
    "multirc-full": ["tasks/multirc.yaml", "regimes/full.yaml"],
    "boolq-few_shot": ["tasks/boolq.yaml", "regimes/few_shot.yaml", "--data.few_shot_source", "fewglue"],
    # CB has 16 "neutral" training examples: all of them, 32 of each other class.
    "cb-few_shot": ["tasks/cb.yaml", "regimes/few_shot.yaml", "--data.small_class", "all"],
    # Not fast_dev_run: validation must reach every task's batches.
    "multitask": ["multitask_cb_rte_wic.yaml", "--trainer.fast_dev_run", "false", "--trainer.max_epochs", "1",
                  "--trainer.limit_train_batches", "2", "--trainer.logger", "false"],
}


def _args(parts: list[str]) -> list[str]:
    out = []
    for part in parts:
        out += ["--config", str(ROOT / "experiments" / part)] if part.endswith(".yaml") else [part]
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_fit_runs(case, tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DP_BENCH_DATA", str(data_dir))
    record = tmp_path / "r.json"
    run(["fit", "--config", str(ROOT / "experiments/methods/adap_ins_pos.yaml"), *FEW, *_args(CASES[case]),
         "--record.path", str(record)])
    result = json.loads(record.read_text())
    assert result["status"] == "finished"
    tasks = result["tasks"]
    for task in tasks:
        assert f"val/{task}/score" in result["metrics"]
    if case == "multitask":
        assert tasks == ["cb", "rte", "wic"] and result["regime"] == "multitask"
