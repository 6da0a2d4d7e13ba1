"""Grids: expansion, sharding, resume logic (with a fake runner: nothing trains), dry run."""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

import pytest

from dp_bench import grid
from dp_bench.grid import GridSpec, expand, parse_shard, run_grid, shard
from dp_bench.results import read_record, record_stem, write_json_atomic
from tests.test_results import make_record

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"


def spec(tmp_path: Path, **kwargs) -> GridSpec:
    values = {
        "name": "t", "tasks": ["cb", "rte"], "methods": ["prompt_tuning", "adap_ins_pos"], "seeds": [0, 1],
        "regimes": ["full"], "runs_dir": str(tmp_path / "runs"), "configs_dir": str(EXPERIMENTS),
    }
    return GridSpec(**(values | kwargs))


# ---------------------------------------------------------------- expansion


def test_expand_is_the_cartesian_product(tmp_path):
    s = spec(tmp_path, seeds=[0, 1, 2], regimes=["full", "few_shot"], backbones=["all-MiniLM-L6-v2", "org/other"])
    runs = expand(s)
    assert len(runs) == 2 * 2 * 3 * 2 * 2
    combos = {(r.task, r.method, r.seed, r.regime, r.backbone) for r in runs}
    assert combos == set(itertools.product(["cb", "rte"], s.methods, [0, 1, 2], ["full", "few_shot"], s.backbones))
    assert len({r.record_path for r in runs}) == len(runs)
    first = runs[0]
    assert first.record_path == Path(s.runs_dir) / "t" / "cb__prompt_tuning__full__all-MiniLM-L6-v2__s0.json.gz"
    assert any(r.stem == "rte__adap_ins_pos__few_shot__other__s2" for r in runs)  # backbone short name


def test_command_composes_configs_then_identity_then_overrides(tmp_path):
    s = spec(tmp_path, overrides={"data.limit_train_examples": 64, "trainer.enable_progress_bar": False, "data.few_shot_source": "sample"})
    cmd = expand(s)[0].command()
    assert cmd[1:4] == ["-m", "dp_bench.cli", "fit"]
    configs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--config"]
    assert configs == [str(EXPERIMENTS / p) for p in ("tasks/cb.yaml", "regimes/full.yaml", "methods/prompt_tuning.yaml")]
    tail = cmd[cmd.index("--seed_everything"):]
    assert tail == [
        "--seed_everything", "0", "--model.backbone", "all-MiniLM-L6-v2",
        "--record.path", str(Path(s.runs_dir) / "t" / "cb__prompt_tuning__full__all-MiniLM-L6-v2__s0.json.gz"),
        "--record.grid", "t", "--data.limit_train_examples=64", "--trainer.enable_progress_bar=false",
        "--data.few_shot_source=sample",
    ]
    listed = spec(tmp_path, overrides=["--trainer.max_epochs", "2"])
    assert expand(listed)[0].command()[-2:] == ["--trainer.max_epochs", "2"]
    resumed = expand(s)[0].command(ckpt_path=Path("checkpoints/x/last.ckpt"))
    assert resumed[-2:] == ["--ckpt_path", "checkpoints/x/last.ckpt"]


def test_task_group_is_one_multitask_run(tmp_path):
    s = spec(tmp_path, tasks=["cb", ["cb", "rte", "wic"]], methods=["prompt_tuning"], seeds=[0])
    runs = expand(s)
    assert [(r.task, r.regime) for r in runs] == [("cb", "full"), ("cb+rte+wic", "multitask")]
    group = runs[1]
    cmd = group.command()
    configs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--config"]
    assert configs == [str(EXPERIMENTS / "regimes/multitask.yaml"), str(EXPERIMENTS / "methods/prompt_tuning.yaml")]
    assert "--data.tasks=[cb, rte, wic]" in cmd
    assert group.stem == "cb+rte+wic__prompt_tuning__multitask__all-MiniLM-L6-v2__s0"
    assert grid.expected_identity(group)["regime"] == "multitask"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"overrides": {"seed_everything": 3}}, "seed_everything"),
        ({"overrides": ["--record.path=x.json"]}, "record.path"),
        ({"methods": ["prompt_tuning", "prompt_tuning"]}, "twice"),
        ({"tasks": [["cb"]]}, "two or more"),
        ({"name": "a/b"}, "name"),
        ({"seeds": []}, "seeds is empty"),
        ({"search": []}, "search is empty"),
        ({"search": [{}, {}]}, "twice"),
        ({"search": [{"record.setting": "x"}]}, "record.setting"),
        ({"search": [{"model.lr": 0.1}], "overrides": {"model.lr": 0.2}}, "overrides sets it too"),
        ({"search": [{"model.optimizer": "a b"}]}, "label"),
        ({"search": [{"model.lr_scale:3.0": None}]}, "space after the colon"),  # YAML's {model.lr_scale:3.0}
        ({"overrides": {"trainer.max_epochs:30": None}}, "space after the colon"),  # YAML's {trainer.max_epochs:30}
    ],
)
def test_spec_rejects_bad_values(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        spec(tmp_path, **kwargs)


def test_search_settings_are_an_inner_axis_with_their_own_records(tmp_path):
    s = spec(tmp_path, tasks=["cb"], methods=["prompt_tuning"], seeds=[0, 1], overrides={"trainer.max_epochs": 2},
             search=[{}, {"model.lr_scale": 0.3}, {"model.lr_scale": 3.0, "model.warmup_ratio": 0}])
    runs = expand(s)
    assert [(r.seed, r.setting) for r in runs] == [
        (seed, label) for seed in (0, 1) for label in ("", "lr_scale0.3", "lr_scale3.0__warmup_ratio0")]
    plain, low, high = runs[:3]
    assert plain.stem == "cb__prompt_tuning__full__all-MiniLM-L6-v2__s0"  # the grid as configured: same record as without search
    assert plain.command() == expand(spec(tmp_path, tasks=["cb"], methods=["prompt_tuning"], seeds=[0, 1],
                                          overrides={"trainer.max_epochs": 2}))[0].command()
    assert low.stem == "cb__prompt_tuning__full__all-MiniLM-L6-v2__s0__lr_scale0.3"
    # the setting comes after the overrides, and the record names it
    assert low.command()[-3:] == ["--trainer.max_epochs=2", "--model.lr_scale=0.3", "--record.setting=lr_scale0.3"]
    assert high.command()[-3:] == ["--model.lr_scale=3.0", "--model.warmup_ratio=0", "--record.setting=lr_scale3.0__warmup_ratio0"]
    assert grid.expected_identity(low)["setting"] == "lr_scale0.3"
    assert grid.expected_identity(plain)["setting"] is None


def test_configured_reads_the_config_files_then_the_flags(tmp_path):
    s = spec(tmp_path, tasks=["cb", ["cb", "rte"]], methods=["adap_ins_pos"], seeds=[1],
             overrides=["--trainer.max_epochs", "2", "--data.max_length=96"], search=[{"model.lr_scale": 0.3}])
    single, group = expand(s)
    values = single.configured()
    assert values["data.tasks"] == ["cb"] and values["model.prompt.position"] == "instance"  # from the files
    assert values["data.max_length"] == 96  # the override wins over cb.yaml's 256
    assert values["trainer.max_epochs"] == 2 and values["model.lr_scale"] == 0.3
    assert values["seed_everything"] == 1 and values["record.grid"] == "t" and values["record.setting"] == "lr_scale0.3"
    assert "config" not in values and "model.lr" not in values  # left to the code's default
    assert group.configured()["data.tasks"] == ["cb", "rte"]


def test_config_departures_name_what_a_record_holds_otherwise(tmp_path):
    run = expand(spec(tmp_path, tasks=["cb"], methods=["prompt_tuning"], seeds=[0], overrides={"trainer.max_epochs": 2}))[0]
    config = {"seed_everything": 0, "trainer": {"max_epochs": 2}, "model": {"backbone": "all-MiniLM-L6-v2",
              "method": "prompt_tuning", "prompt": {"length": 20}}, "data": {"tasks": ["cb"], "max_length": 256},
              "record": {"path": "elsewhere.json", "grid": "t"}}
    assert grid.config_departures(run, config) == []  # keys the record lacks (added since) and record.path do not count
    config["data"]["max_length"] = 128
    config["trainer"]["max_epochs"] = 3
    assert grid.config_departures(run, config) == [
        "data.max_length: the grid's files say 256, the record says 128",
        "trainer.max_epochs: the grid's files say 2, the record says 3",
    ]


def test_run_of_record_finds_the_planned_run_or_says_why_not(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grids = tmp_path / "grids"
    grids.mkdir()
    (grids / "t.yaml").write_text(f"name: t\ntasks: [cb]\nmethods: [prompt_tuning]\nseeds: [0]\nconfigs_dir: {EXPERIMENTS}\n")
    planned = tmp_path / "results/runs/t/cb__prompt_tuning__full__all-MiniLM-L6-v2__s0.json.gz"
    write_json_atomic(planned, make_record(grid="t"))
    assert grid.run_of_record(planned, read_record(planned), grids).record_path.resolve() == planned
    plain = planned.with_name("cb__prompt_tuning__full__all-MiniLM-L6-v2__s0.json")  # the same record, uncompressed
    write_json_atomic(plain, make_record(grid="t"))
    assert grid.run_of_record(plain, read_record(plain), grids).record_path.resolve() == planned
    stray = planned.with_name("cb__prompt_tuning__full__all-MiniLM-L6-v2__s7.json")
    write_json_atomic(stray, make_record(grid="t", seed=7))
    with pytest.raises(ValueError, match="plans no run"):
        grid.run_of_record(stray, read_record(stray), grids)
    orphan = planned.with_name("orphan.json")
    write_json_atomic(orphan, make_record(grid="gone"))
    with pytest.raises(ValueError, match=r"'gone' has no file"):
        grid.run_of_record(orphan, read_record(orphan), grids)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"methods/nope\.yaml"):
        expand(spec(tmp_path, methods=["nope"]))
    with pytest.raises(ValueError, match="same record name"):
        expand(spec(tmp_path, backbones=["a/x", "b/x"]))


def test_shipped_grids_expand():
    counts = {"smoke": 4, "paper_full": 5 * 8 * 3, "paper_fewshot": 5 * 10 * 3, "paper_multitask": 8 * 3}
    for name, count in counts.items():
        s, _ = grid.load_spec(["--config", str(EXPERIMENTS / "grids" / f"{name}.yaml"), "--configs_dir", str(EXPERIMENTS)])
        assert s.name == name
        assert len(expand(s)) == count, name


def test_unknown_grid_key_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntasks: [cb]\nmethods: [prompt_tuning]\nseedz: [1]\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*seedz"):
        grid.load_spec(["--config", str(bad)])


# ---------------------------------------------------------------- sharding


def test_shards_partition_the_grid(tmp_path):
    runs = expand(spec(tmp_path, seeds=[0, 1, 2]))  # 12 runs
    for n in range(1, 8):
        parts = [shard(runs, i, n) for i in range(n)]
        stems = [r.stem for part in parts for r in part]
        assert sorted(stems) == sorted(r.stem for r in runs)  # union is everything, nothing twice
        assert all(abs(len(a) - len(b)) <= 1 for a in parts for b in parts)
    assert [r.stem for r in shard(runs, 1, 5)] == [runs[1].stem, runs[6].stem, runs[11].stem]
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "1/0", "x"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


# ---------------------------------------------------------------- running with a fake runner


class FakeRunner:
    """Stands in for the subprocess: records each call, then acts out ``outcome(run stem)``."""

    def __init__(self, outcomes: dict[str, str]) -> None:
        self.outcomes, self.calls = outcomes, []

    def __call__(self, command: list[str], stdout: Path, stderr: Path) -> int:
        path = Path(command[command.index("--record.path") + 1])
        stem = record_stem(path)
        self.calls.append((stem, command))
        during = read_record(path)
        assert during["status"] == "interrupted"  # the grid marked the run as started
        stderr.parent.mkdir(parents=True, exist_ok=True)
        outcome = self.outcomes.get(stem, "finished")
        if outcome == "crash":  # died before writing a record (bad config, OOM kill, ...)
            stderr.write_text("Traceback (most recent call last):\n  ...\nValueError: data.tasks: no train.jsonl\n")
            return 1
        task, method, regime, backbone, seed = stem.split("__")
        record = make_record(task, method, int(seed[1:]), scores={task: 0.5}, status=outcome, grid="t", regime=regime)
        write_json_atomic(path, record)
        return 0 if outcome == "finished" else 1


def test_resume_logic(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # checkpoints/ is relative to the working directory, as in the CLI
    runs = expand(spec(tmp_path, tasks=["cb"], methods=["prompt_tuning", "adap_ins_pos", "adap_pos"], seeds=[0, 1]))
    done, interrupted, failed, fresh, crash, foreign = runs
    write_json_atomic(done.record_path, make_record(scores={"cb": 0.6}))
    write_json_atomic(interrupted.record_path, make_record(status="interrupted"))
    interrupted.checkpoint.parent.mkdir(parents=True)
    interrupted.checkpoint.write_bytes(b"ckpt")
    write_json_atomic(failed.record_path, make_record(status="failed"))
    foreign.checkpoint.parent.mkdir(parents=True)  # left by another grid or a manual fit
    foreign.checkpoint.write_bytes(b"not ours")

    runner = FakeRunner({crash.stem: "crash"})
    lines = []
    ends = run_grid(runs, runner=runner, out=lines.append)
    called = dict(runner.calls)
    assert set(called) == {interrupted.stem, fresh.stem, crash.stem, foreign.stem}
    assert called[interrupted.stem][-2:] == ["--ckpt_path", str(interrupted.checkpoint)]
    assert "--ckpt_path" not in called[fresh.stem] and "--ckpt_path" not in called[foreign.stem]
    assert ends == {"done": 4, "failed": 2, "interrupted": 0, "todo": 0}

    crashed = read_record(crash.record_path)
    assert crashed["status"] == "failed" and "no train.jsonl" in crashed["error"] and crashed["exit_status"] == 1
    assert (crashed["method"], crashed["task"], crashed["seed"], crashed["regime"]) == ("adap_ins_pos", "cb", 1, "full")
    assert read_record(failed.record_path)["status"] == "failed"  # kept

    # Second pass: everything finished or failed is left alone ...
    again = FakeRunner({})
    run_grid(runs, runner=again, out=lines.append)
    assert again.calls == []
    # ... until failed runs are retried, from scratch.
    retry = FakeRunner({})
    ends = run_grid(runs, retry_failed=True, runner=retry, out=lines.append)
    assert sorted(stem for stem, _ in retry.calls) == sorted([failed.stem, crash.stem])
    assert all("--ckpt_path" not in cmd for _, cmd in retry.calls)
    assert ends["done"] == 6


def test_a_train_holdout_record_without_its_test_is_run_again(tmp_path):
    run = expand(spec(tmp_path, tasks=["cb"], methods=["prompt_tuning"], seeds=[0]))[0]
    record = make_record(scores={"cb": 0.6})
    record["config"]["data"] = {"selection": "train_holdout"}  # killed during the test after fit
    write_json_atomic(run.record_path, record)
    assert grid.run_state(run) == "interrupted"
    write_json_atomic(run.record_path, record | {"test": {"cb": {"score": 0.5}}})
    assert grid.run_state(run) == "done"


def test_killed_grid_leaves_interrupted_record(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = expand(spec(tmp_path, tasks=["cb"], methods=["prompt_tuning"], seeds=[0]))[0]

    def interrupted(command, stdout, stderr):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_grid([run], runner=interrupted, out=lambda _: None)
    assert grid.run_state(run) == "interrupted"
    run.checkpoint.parent.mkdir(parents=True)
    run.checkpoint.write_bytes(b"ckpt")
    assert grid.plan(run, "interrupted", retry_failed=False) == ("resume", run.checkpoint)
    # A resume that dies before writing a record is failed, not resumed forever.
    ends = run_grid([run], runner=FakeRunner({run.stem: "crash"}), out=lambda _: None)
    assert ends["failed"] == 1 and read_record(run.record_path)["status"] == "failed"


def test_a_run_from_scratch_never_resumes_from_a_checkpoint_it_did_not_write(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = expand(spec(tmp_path, tasks=["cb"], methods=["prompt_tuning"], seeds=[0]))[0]
    write_json_atomic(run.record_path, make_record(status="failed"))
    run.checkpoint.parent.mkdir(parents=True)
    run.checkpoint.write_bytes(b"the failed attempt's")

    def killed_before_its_first_checkpoint(command, stdout, stderr):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_grid([run], retry_failed=True, runner=killed_before_its_first_checkpoint, out=lambda _: None)
    assert grid.run_state(run) == "interrupted"
    assert grid.plan(run, "interrupted", retry_failed=False) == ("run", None)


def test_dry_run_lists_states_and_commands(tmp_path, capsys):
    config = tmp_path / "g.yaml"
    config.write_text(json.dumps({
        "name": "t", "tasks": ["cb"], "methods": ["prompt_tuning", "adap_ins_pos"], "seeds": [0],
        "runs_dir": str(tmp_path / "runs"), "configs_dir": str(EXPERIMENTS),
        "overrides": {"trainer.max_epochs": 2},
    }))
    runs_dir = tmp_path / "runs" / "t"
    write_json_atomic(runs_dir / "cb__prompt_tuning__full__all-MiniLM-L6-v2__s0.json.gz", make_record(scores={"cb": 0.5}))

    def no_run(*args):
        raise AssertionError("a dry run ran something")

    assert grid.main(["--config", str(config), "--dry-run"], runner=no_run) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "2 runs" in lines[0]
    assert "done" in lines[1] and "skip" in lines[1] and "cb__prompt_tuning__full" in lines[1]
    assert "todo" in lines[3] and "cb__adap_ins_pos__full" in lines[3]
    assert "dp_bench.cli fit --config" in lines[4] and "--trainer.max_epochs=2" in lines[4]
    assert lines[-1] == "1 done; 1 todo"
    assert not (runs_dir / "cb__adap_ins_pos__full__all-MiniLM-L6-v2__s0.json.gz").exists()


def test_grid_refuses_records_it_would_not_see(tmp_path, capsys):
    """A record saved as plain .json (grids before 2026-12-06) is not the .json.gz the grid reads:
    the grid says how to compress it instead of running the run again."""
    config = tmp_path / "g.yaml"
    config.write_text(json.dumps({"name": "t", "tasks": ["cb"], "methods": ["prompt_tuning"], "seeds": [0],
                                  "runs_dir": str(tmp_path / "runs"), "configs_dir": str(EXPERIMENTS)}))
    plain = tmp_path / "runs" / "t" / "cb__prompt_tuning__full__all-MiniLM-L6-v2__s0.json"
    write_json_atomic(plain, make_record(scores={"cb": 0.5}))

    def no_run(*args):
        raise AssertionError("the grid ran a run it has a record of")

    assert grid.main(["--config", str(config)], runner=no_run) == 2
    err = capsys.readouterr().err
    assert str(plain) in err and f"reformat_records.py --compress {plain.parent}" in err
    compressed = plain.with_name(plain.name + ".gz")
    write_json_atomic(compressed, make_record(scores={"cb": 0.5}))  # both: the grid reads the .json.gz
    assert grid.main(["--config", str(config)], runner=no_run) == 0


def test_main_runs_one_shard_and_reports_failure(tmp_path, capsys):
    config = tmp_path / "g.yaml"
    config.write_text(json.dumps({
        "name": "t", "tasks": ["cb"], "methods": ["prompt_tuning"], "seeds": [0, 1, 2, 3],
        "runs_dir": str(tmp_path / "runs"), "configs_dir": str(EXPERIMENTS),
    }))
    runner = FakeRunner({"cb__prompt_tuning__full__all-MiniLM-L6-v2__s3": "crash"})
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert grid.main(["--config", str(config), "--shard", "1/2"], runner=runner) == 1
    finally:
        os.chdir(cwd)
    assert [stem for stem, _ in runner.calls] == [f"cb__prompt_tuning__full__all-MiniLM-L6-v2__s{s}" for s in (1, 3)]
    assert grid.main(["--config", str(config), "--shard", "2/2"]) == 2
    assert "shard" in capsys.readouterr().err


def test_a_backbone_that_is_not_here_stops_the_grid_before_its_first_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "g.yaml"
    config.write_text(json.dumps({
        "name": "t", "tasks": ["cb"], "methods": ["prompt_tuning"], "seeds": [0, 1], "backbones": [".device/not-here"],
        "runs_dir": str(tmp_path / "runs"), "configs_dir": str(EXPERIMENTS),
    }))
    runner = FakeRunner({})
    assert grid.main(["--config", str(config)], runner=runner) == 2
    assert runner.calls == []
    assert "backbone '.device/not-here': no such file or folder" in capsys.readouterr().err
    assert grid.main(["--config", str(config), "--dry-run"], runner=runner) == 0  # listing needs no backbone
    (tmp_path / ".device/not-here").mkdir(parents=True)  # once it is here, the runs start
    assert grid.main(["--config", str(config)], runner=runner) == 0
    assert len(runner.calls) == 2


# ---------------------------------------------------------------- real training (slow)


@pytest.mark.slow
def test_same_config_and_seed_give_the_same_metrics(tmp_path, monkeypatch, data_dir):
    """Two grids that run the same fit on the same machine record identical metrics."""
    monkeypatch.setenv("DP_BENCH_DATA", str(data_dir))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    overrides = {
        "data.limit_train_examples": 16, "data.limit_eval_examples": 16, "data.max_length": 64,
        "trainer.max_epochs": 1, "trainer.enable_progress_bar": False, "trainer.logger": False,
    }
    records = []
    for name in ("a", "b"):
        s = spec(tmp_path, name=name, tasks=["cb"], methods=["adap_ins_pos"], seeds=[0], overrides=overrides)
        (run,) = expand(s)
        assert run_grid([run], out=lambda _: None) == {"done": 1, "failed": 0, "interrupted": 0, "todo": 0}, (
            (run.record_path.parent / "logs" / f"{run.stem}.err").read_text()[-3000:])
        records.append(read_record(run.record_path))
    assert records[0]["selected"]["metrics"] == records[1]["selected"]["metrics"]
    assert records[0]["selected"]["predictions"] == records[1]["selected"]["predictions"]


def test_a_resume_keeps_the_log_of_the_epochs_before_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = expand(spec(tmp_path, tasks=["cb"], methods=["prompt_tuning"], seeds=[0]))[0]

    def echo(line):
        def runner(command, stdout, stderr):
            code = grid.run_subprocess([sys.executable, "-c", f"print({line!r})"], stdout, stderr)
            write_json_atomic(run.record_path, make_record(status="interrupted"))
            return code

        return runner

    log = run.record_path.parent / "logs" / f"{run.stem}.out"
    run_grid([run], runner=echo("epoch 0"), out=lambda _: None)
    run.checkpoint.parent.mkdir(parents=True, exist_ok=True)
    run.checkpoint.write_bytes(b"ckpt")
    run_grid([run], runner=echo("epoch 1"), out=lambda _: None)  # the grid resumes it
    text = log.read_text()
    assert text.startswith("epoch 0")  # a first try's log has no header
    assert text.index("epoch 0") < text.index(f"resumed from {run.checkpoint}") < text.index("epoch 1")
    # A run from scratch (a failed run retried) starts its log afresh, saying what it replaces.
    failed = make_record(status="failed") | {"finished_at": "2026-12-01T10:00:00+00:00"}
    write_json_atomic(run.record_path, failed)
    run_grid([run], retry_failed=True, runner=echo("again"), out=lambda _: None)
    text = log.read_text()
    assert "epoch 0" not in text and "again" in text
    assert "record saying failed, written 2026-12-01T10:00:00+00:00" in text.splitlines()[0]
