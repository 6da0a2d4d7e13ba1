"""``dp-bench`` end to end on CPU: records, W&B offline files, checkpoints, errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from dp_bench import recording
from dp_bench.cli import main, run
from dp_bench.module import PromptTuningModule
from dp_bench.recording import trainable_digest
from dp_bench.results import REQUIRED_KEYS

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "--data.limit_train_examples", "24", "--data.limit_eval_examples", "16", "--data.max_length", "64",
    "--data.batch_size", "8", "--model.prompt.length", "4",
]


@pytest.fixture
def workdir(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DP_BENCH_DATA", str(data_dir))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path


def test_fast_dev_run_writes_a_complete_record(workdir):
    record_path = workdir / "record.json"
    run(["fit", "--config", str(ROOT / "experiments/cb_dp.yaml"), "--trainer.fast_dev_run", "true",
         "--record.path", str(record_path), *SMALL])
    record = json.loads(record_path.read_text())
    assert set(REQUIRED_KEYS) <= set(record)
    assert record["status"] == "finished"
    assert (record["task"], record["method"], record["regime"], record["seed"]) == ("cb", "adap_ins_pos", "full", 0)
    assert record["backbone"] == "all-MiniLM-L6-v2"
    for name in ("val/cb/acc", "val/cb/f1_macro", "val/cb/score", "val/score"):
        assert set(record["metrics"][name]) == {"value", "epoch", "step"}
    assert record["config"]["model"]["prompt"]["position"] == "instance"
    assert record["versions"]["torch"] and record["wall_time_s"] > 0
    assert record["versions"]["tokenizers"] and record["versions"]["numpy"]
    assert record["machine"]["torch_threads"] >= 1 and record["machine"]["cpu"]["fingerprint"]["linear"]
    assert len(record["selected"]["predictions"]["cb"]["position"]) == 16


def test_fit_prints_lightnings_information_but_not_its_adverts_nor_its_torch_deprecation(workdir, caplog):
    caplog.set_level(logging.INFO)  # under pytest, Lightning's info lines reach pytest's log capture
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(["fit", "--config", str(ROOT / "experiments/cb_pt.yaml"), "--trainer.fast_dev_run", "true",
             "--trainer.logger", "false", *SMALL])
    printed = caplog.text
    assert "GPU available:" in printed  # Lightning's own information still shows
    assert "💡 Tip" not in printed  # "try installing litlogger / litmodels", on every fit
    assert not [w for w in caught if "LeafSpec" in str(w.message)]  # Lightning's use of a torch deprecation


def test_fit_logs_wandb_offline_and_checkpoints_only_trainable_parameters_and_the_feature_cache(workdir):
    cli = run(["fit", "--config", str(ROOT / "experiments/cb_dp.yaml"), "--trainer.max_epochs", "1",
               "--trainer.limit_train_batches", "2", "--trainer.logger.init_args.save_dir", str(workdir), *SMALL])
    offline_runs = list((workdir / "wandb").glob("offline-run-*"))
    assert offline_runs and any(offline_runs[0].rglob("*.wandb"))
    checkpoint = next((workdir / "checkpoints").rglob("last.ckpt"))
    assert checkpoint.stat().st_size < 2_000_000  # the prompt and policy net, not 90 MB of backbone
    saved = torch.load(checkpoint, weights_only=False)["state_dict"]
    trainable = {n for n, p in cli.model.named_parameters() if p.requires_grad}
    assert set(saved) == trainable | {"net.feature_cache._extra_state"}  # what a resume must read again

    reloaded = PromptTuningModule.load_from_checkpoint(checkpoint).eval()
    batch = next(iter(cli.datamodule.val_dataloader()))
    cli.model.eval()
    with torch.no_grad():
        assert torch.equal(reloaded(batch)[0], cli.model(batch)[0])


def test_the_record_names_the_code_the_fit_started_on(workdir, monkeypatch):
    code = {"git_sha": "a" * 40, "git_dirty": False}
    monkeypatch.setattr(recording, "git_state", lambda: dict(code))

    def commit_during_the_fit(module):
        code["git_sha"] = "b" * 40
    monkeypatch.setattr(PromptTuningModule, "on_train_epoch_end", commit_during_the_fit, raising=False)
    run(["fit", "--config", str(ROOT / "experiments/cb_pt.yaml"), "--trainer.fast_dev_run", "true",
         "--trainer.logger", "false", "--record.path", str(workdir / "record.json"), *SMALL])
    record = json.loads((workdir / "record.json").read_text())
    assert (record["git_sha"], record["git_dirty"]) == ("a" * 40, False)
    assert "git_before_resume" not in record


def test_a_fit_whose_output_is_not_a_terminal_prints_one_line_per_epoch(workdir, capsys, monkeypatch):
    args = ["fit", "--config", str(ROOT / "experiments/cb_pt.yaml"), "--trainer.max_epochs", "2",
            "--trainer.limit_train_batches", "1", "--trainer.logger", "false", *SMALL]
    run([*args, "--record.path", str(workdir / "a.json")])  # pytest's captured stdout is no terminal
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[dp-bench] epoch")]
    record = json.loads((workdir / "a.json").read_text())
    assert [line.split(" (")[0] for line in lines] == ["[dp-bench] epoch 0/1", "[dp-bench] epoch 1/1"]
    score = record["history"][1]["metrics"]["val/score"]
    assert lines[1].endswith(f"val/score {score:.4f}; selected epoch {record['selected']['epoch']} "
                             f"({record['selected']['metrics']['val/score']:.4f})")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)  # a terminal has the progress bar
    run([*args, "--record.path", str(workdir / "b.json")])
    assert "[dp-bench] epoch" not in capsys.readouterr().out


def test_resume_continues_after_the_latest_epoch_even_when_it_is_not_the_best(workdir, monkeypatch):
    # lr 0: every epoch scores the same, so only epoch 0 is ever "best"; last.ckpt must still
    # hold epoch 1, so that resuming runs epoch 2 only and keeps the selection of epoch 0.
    record_path = workdir / "record.json"
    args = ["fit", "--config", str(ROOT / "experiments/cb_pt.yaml"), "--trainer.limit_train_batches", "2",
            "--trainer.logger", "false", "--model.lr", "0", "--record.path", str(record_path), *SMALL]
    monkeypatch.setattr(recording, "git_state", lambda: {"git_sha": "a" * 40, "git_dirty": False})
    first = run([*args, "--trainer.max_epochs", "2"])
    last_path = next((workdir / "checkpoints").rglob("last.ckpt"))
    last = torch.load(last_path, weights_only=False)
    assert (last["epoch"], last["global_step"]) == (1, first.trainer.global_step) == (1, 4)
    best_path = first.best_checkpoint.best_model_path
    assert Path(best_path).name.startswith("epoch=0-")

    monkeypatch.setattr(recording, "git_state", lambda: {"git_sha": "b" * 40, "git_dirty": True})  # other code
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = run([*args, "--trainer.max_epochs", "3", "--ckpt_path", str(last_path)])
        warnings.warn("Checkpoint directory /elsewhere exists and is not empty.", UserWarning, stacklevel=1)
    not_empty = [str(w.message) for w in caught if "exists and is not empty" in str(w.message)]
    assert not_empty == ["Checkpoint directory /elsewhere exists and is not empty."]  # its own folder is expected
    record = json.loads(record_path.read_text())
    assert (record["git_sha"], record["git_dirty"]) == ("b" * 40, True)  # the code of its last epochs and test
    assert record["git_before_resume"] == {"git_sha": "a" * 40, "git_dirty": False}  # and of its first
    assert [h["epoch"] for h in record["history"]] == [0, 1, 2]
    assert record["selected"]["epoch"] == 0 and resumed.best_checkpoint.best_model_path == best_path
    assert resumed.trainer.global_step == 6


class Interrupted(Exception):
    """What stops a fit in the middle here, as a kill would."""


@pytest.mark.parametrize("regime", [
    [],  # single task: one shuffle stream over the epochs
    ["--config", str(ROOT / "experiments/multitask_cb_rte_wic.yaml")],  # batches drawn per epoch
])
def test_an_interrupted_fit_resumed_from_last_ckpt_is_the_fit_its_command_describes(workdir, monkeypatch, regime):
    # adap_ins_pos shuffles and draws Gumbel noise every epoch: the resumed epochs must draw
    # what the uninterrupted fit drew, or the record is of a run its command cannot reproduce
    # (epoch 1 of the uninterrupted fit reads backbone features cached in epoch 0: the
    # resumed one must too, as they differ in the last bits when recomputed in other batches)
    args = ["fit", "--config", str(ROOT / "experiments/cb_dp.yaml"), *regime, "--trainer.max_epochs", "2",
            "--trainer.logger", "false", *SMALL]
    whole = run([*args, "--record.path", str(workdir / "whole.json")])

    def stop_at_epoch_1(module):
        if module.current_epoch == 1:
            raise Interrupted
    with monkeypatch.context() as patch, pytest.raises(Interrupted):
        patch.setattr(PromptTuningModule, "on_train_epoch_start", stop_at_epoch_1, raising=False)
        run([*args, "--record.path", str(workdir / "parts.json")])
    last_path = next((workdir / "checkpoints").glob("*/parts/last.ckpt"))
    resumed = run([*args, "--record.path", str(workdir / "parts.json"), "--ckpt_path", str(last_path)])

    assert resumed.trainer.global_step == whole.trainer.global_step
    trained = dict(resumed.model.named_parameters())
    for name, parameter in whole.model.named_parameters():
        if parameter.requires_grad:
            assert torch.equal(parameter, trained[name]), name
    whole_record, resumed_record = (json.loads((workdir / f"{n}.json").read_text()) for n in ("whole", "parts"))
    assert resumed_record["history"] == whole_record["history"]  # the weights' digests too
    assert whole_record["history"][-1]["trainable_sha256"] == trainable_digest(whole.model)
    assert whole_record["history"][0]["trainable_sha256"] != whole_record["history"][1]["trainable_sha256"]
    assert resumed_record["selected"] == whole_record["selected"]  # its chosen positions too


def test_the_weights_digest_sees_one_last_bit_of_a_trainable_parameter_and_no_frozen_one():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    module[1].requires_grad_(False)
    before = trainable_digest(module)
    with torch.no_grad():
        module[1].weight.add_(1.0)  # frozen: not in the digest
        assert trainable_digest(module) == before
        module[0].weight[0, 0] = torch.nextafter(module[0].weight[0, 0], torch.tensor(2.0))  # one ulp
    assert trainable_digest(module) != before


def test_frozen_backbone_is_unchanged_by_training(workdir):
    cli = run(["fit", "--config", str(ROOT / "experiments/cb_pt.yaml"), "--trainer.fast_dev_run", "true", *SMALL])
    fresh = PromptTuningModule(method="prompt_tuning", prompt=cli.model.prompt_config, tasks=["cb"])
    trained = cli.model.net.backbone.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in fresh.net.backbone.state_dict().items())
    trainable = {n for n, p in cli.model.named_parameters() if p.requires_grad}
    assert trainable == {"net.prompt.representation.vectors", "net.head.linear.weight", "net.head.linear.bias"}


@pytest.mark.parametrize(("args", "message"), [
    (["--data.tasks", "[nope]"], "unknown task 'nope'"),
    (["--data.data_dir", "{tmp}"], "CB/train.jsonl"),
    (["--model.backbone", ".device/not-here"], "backbone '.device/not-here': no such file or folder"),
])
def test_bad_input_gives_one_line_error(workdir, capsys, args, message):
    args = [a.replace("{tmp}", str(workdir)) for a in args]
    code = main(["fit", "--config", str(ROOT / "experiments/cb_pt.yaml"), "--trainer.fast_dev_run", "true", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if line.startswith("dp-bench: error:")]
    assert len(error_lines) == 1 and message in error_lines[0]


def test_help_lists_harness_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("fit", "grid", "table", "bench"):
        assert command in out


def test_train_holdout_reports_val_once_at_the_selected_checkpoint(workdir):
    record_path = workdir / "record.json"
    run(["fit", "--config", str(ROOT / "experiments/cb_pt.yaml"), "--data.selection", "train_holdout",
         "--trainer.max_epochs", "2", "--trainer.logger", "false", "--record.path", str(record_path), *SMALL])
    record = json.loads(record_path.read_text())
    assert record["data"]["selection"] == "train_holdout"
    assert set(record["test"]["cb"]) >= {"acc", "f1_macro", "score"}
    assert (record["status"], record["error"]) == ("finished", None)
    test_predictions = record["test_predictions"]["cb"]
    assert len(test_predictions["pred"]) == len(test_predictions["label"]) == len(set(test_predictions["example_idx"])) > 0
    assert len(record["history"]) == 2


def test_train_holdout_without_a_selected_checkpoint_fails_instead_of_testing_the_last_weights(workdir):
    record_path = workdir / "record.json"
    code = main(["fit", "--config", str(ROOT / "experiments/cb_pt.yaml"), "--data.selection", "train_holdout",
                 "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "0", "--trainer.logger", "false",
                 "--record.path", str(record_path), *SMALL])
    record = json.loads(record_path.read_text())
    assert code == 2
    assert record["status"] == "failed" and "no checkpoint was selected" in record["error"]
    assert record.get("test") is None


def test_a_fit_stopped_before_its_test_is_not_finished_and_its_resume_only_tests(workdir, monkeypatch):
    from dp_bench.lightning_cli import DPBenchCLI
    from dp_bench.results import TEST_PENDING

    record_path = workdir / "record.json"
    args = ["fit", "--config", str(ROOT / "experiments/cb_pt.yaml"), "--data.selection", "train_holdout",
            "--trainer.max_epochs", "2", "--trainer.logger", "false", "--record.path", str(record_path), *SMALL]
    with monkeypatch.context() as patch:
        patch.setattr(DPBenchCLI, "after_fit", lambda self: None)  # as if killed when fit ended
        first = run(args)
    record = json.loads(record_path.read_text())
    assert (record["status"], record["error"], record.get("test")) == ("interrupted", TEST_PENDING, None)

    last_path = next((workdir / "checkpoints").rglob("last.ckpt"))
    resumed = run([*args, "--ckpt_path", str(last_path)])
    record = json.loads(record_path.read_text())
    assert (record["status"], record["error"]) == ("finished", None) and set(record["test"]["cb"]) >= {"acc", "score"}
    assert [h["epoch"] for h in record["history"]] == [0, 1]  # no epoch trained again
    assert resumed.trainer.global_step == first.trainer.global_step
    assert resumed.best_checkpoint.best_model_path == first.best_checkpoint.best_model_path


def test_a_reader_that_closes_the_pipe_early_gets_no_traceback():
    """``dp-bench grid --dry-run | head``: our stdout's reader is gone before we write."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write (and the final flush) now fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "dp_bench.cli", "grid", "--config", str(ROOT / "experiments/grids/smoke.yaml"),
             "--dry-run"],
            stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr


def test_a_command_line_run_does_not_warn_about_lightnings_args_parameter():
    """``dp-bench fit ...`` from a shell: LightningCLI reads sys.argv itself, so no 'args parameter' warning."""
    done = subprocess.run(
        [sys.executable, "-m", "dp_bench.cli", "fit", "--help"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "--model.backbone" in done.stdout
    assert "args parameter" not in done.stderr


def test_wandb_gets_one_histogram_bin_per_prompt_position(workdir, monkeypatch):
    """The per-instance positions reach W&B binned by choice (0..length), counted as the record has them."""
    from wandb.sdk.wandb_run import Run

    logged: list[dict] = []
    wandb_log = Run.log

    def spy(self, data, *args, **kwargs):
        logged.append(dict(data))
        return wandb_log(self, data, *args, **kwargs)

    monkeypatch.setattr(Run, "log", spy)
    record_path = workdir / "record.json"
    run(["fit", "--config", str(ROOT / "experiments/cb_dp.yaml"), "--trainer.max_epochs", "1",
         "--trainer.limit_train_batches", "2", "--trainer.logger.init_args.save_dir", str(workdir),
         "--record.path", str(record_path), *SMALL])
    histograms = [row["val/cb/position"] for row in logged if "val/cb/position" in row]
    assert len(histograms) == 1  # one validation epoch (no sanity check in cb_dp.yaml)
    chosen = json.loads(record_path.read_text())["selected"]["predictions"]["cb"]["position"]
    length = 4  # SMALL's --model.prompt.length
    assert histograms[0].bins == [edge - 0.5 for edge in range(length + 2)]
    assert histograms[0].histogram == [chosen.count(split) for split in range(length + 1)]
