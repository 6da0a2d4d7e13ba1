"""Tables from hand-made records: means, stds, seed counts, missing and failed cells, figures."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from dp_bench import tables
from dp_bench.results import load_results
from tests.test_results import make_record, write

DYNAMIC = {"position": "instance"}
PT = {"cb": [0.60, 0.70, 0.80], "rte": [0.50, 0.55, 0.60]}
DP = {"cb": [0.70, 0.74], "rte": [0.52, 0.61]}  # seed 2 failed


@pytest.fixture
def runs(tmp_path):
    """prompt_tuning: 3 seeds; adap_ins_pos: 2 seeds + a failed one; fine_tuning: CB only;
    p_tuning_v2: interrupted; a multitask run; an unreadable file; a duplicate of one run."""
    d = tmp_path / "runs"
    for seed in range(3):
        for task in ("cb", "rte"):
            write(d / "g", f"{task}_pt_{seed}.json", make_record(task, "prompt_tuning", seed, scores={task: PT[task][seed]}))
    for seed in range(2):
        for task in ("cb", "rte"):
            write(d / "g", f"{task}_dp_{seed}.json", make_record(
                task, "adap_ins_pos", seed, scores={task: DP[task][seed]}, prompt=DYNAMIC,
                positions={task: [0, 0, 5, 20][: 2 + seed]}))
    write(d / "g", "cb_dp_2.json", make_record("cb", "adap_ins_pos", 2, status="failed", prompt=DYNAMIC))
    write(d / "g", "cb_ft_0.json", make_record("cb", "fine_tuning", 0, scores={"cb": 0.9}))
    write(d / "g", "rte_v2_0.json", make_record("rte", "p_tuning_v2", 0, status="interrupted"))
    write(d / "m", "mt_0.json", make_record("cb+rte", "prompt_tuning", 0, scores={"cb": 0.4, "rte": 0.3}, grid="m", regime="multitask"))
    # An older failed attempt of a run that later finished: the finished one counts.
    old = make_record("cb", "prompt_tuning", 0, status="failed") | {"finished_at": "2025-01-01T00:00:00"}
    write(d / "elsewhere", "cb_pt_0_old.json", old)
    (d / "g" / "broken.json").write_text('{"status": "finished", "task": ')
    return d


def cells_of(runs_dir, metric="score"):
    frame, _ = tables.prepare(load_results(runs_dir)[0])
    group = frame[(frame["grid"] == "g")]
    return tables.cell_stats(group, metric).set_index(["method", "task"])


def test_cell_mean_std_and_seed_count(runs):
    cells = cells_of(runs)
    pt = cells.loc[("prompt_tuning", "cb")]
    assert pt["n"] == 3
    assert pt["mean"] == pytest.approx(70.0)
    assert pt["std"] == pytest.approx(statistics.stdev([60, 70, 80]))
    dp = cells.loc[("adap_ins_pos", "cb")]
    assert (dp["n"], dp["failed"]) == (2, 1) and dp["mean"] == pytest.approx(72.0)
    # avg: per seed mean over cb and rte, then over seeds.
    per_seed = [(PT["cb"][s] + PT["rte"][s]) / 2 * 100 for s in range(3)]
    avg = cells.loc[("prompt_tuning", tables.AVG)]
    assert avg["n"] == 3 and avg["mean"] == pytest.approx(statistics.mean(per_seed))
    assert avg["std"] == pytest.approx(statistics.stdev(per_seed))
    assert cells.loc[("fine_tuning", tables.AVG)]["n"] == 0  # no RTE run: no average
    accuracy = cells_of(runs, "acc").loc[("prompt_tuning", "cb")]
    assert accuracy["mean"] == pytest.approx(69.0)


def test_the_best_constant_answer_shows_only_where_it_beats_the_majority_class(runs):
    frame, _ = tables.prepare(load_results(runs)[0])
    group, reference = frame[frame["grid"] == "g"], tables.load_reference(Path("/nonexistent"))
    majority = {"cb": {"score": 36.1, "acc": 50.0}, "rte": {"score": 52.7, "acc": 52.7}}
    constant = {"cb": {"score": 36.1, "acc": 50.0}, "rte": {"score": 60.0, "acc": 52.7}}  # an F1 score's other answer
    shown = {metric: tables.wide_table(tables.cell_stats(group, metric), reference, "full", metric, majority, 1, constant)
             for metric in ("score", "acc")}
    assert list(shown["score"].index[:2]) == [tables.MAJORITY, tables.BEST_CONSTANT]
    assert shown["score"].loc[tables.BEST_CONSTANT, "rte"] == "60.0" and shown["score"].loc[tables.BEST_CONSTANT, "cb"] == "36.1"
    assert tables.BEST_CONSTANT not in shown["acc"].index  # the same as the majority row: not repeated


def test_a_reference_row_shows_only_where_its_source_reports_a_task_of_the_table(runs):
    import pandas as pd

    frame, _ = tables.prepare(load_results(runs)[0])
    reference = pd.DataFrame([
        ("full", "prompt_tuning", "rte", "score", 80.1, "bert-large", "a"),
        ("full", "prompt_tuning", "wsc", "score", 68.3, "bert-large", "b"),  # no WSC column here
    ], columns=list(tables.REFERENCE_COLUMNS))
    shown = tables.wide_table(tables.cell_stats(frame[frame["grid"] == "g"], "score"), reference, "full", "score")
    references = [label for label in shown.index if label.startswith("↳")]
    assert references == ["↳ reported: bert-large, a"]
    assert shown.loc[references[0], "rte"] == "80.1" and shown.loc[references[0], "cb"] == ""


def test_status_line_says_which_machines_ran_the_runs(tmp_path):
    d = tmp_path / "runs"
    machines = [{"cpus": 16, "gpu": "NVIDIA H200"}, {"cpus": 16, "gpu": "NVIDIA H200"}, {"cpus": 2, "gpu": None}, None]
    for seed, machine in enumerate(machines):
        record = make_record("cb", "prompt_tuning", seed, scores={"cb": 0.5}, status="finished" if seed < 3 else "failed")
        write(d / "g", f"cb_{seed}.json", record | ({"machine": machine} if machine else {}))
    frame, _ = tables.prepare(load_results(d)[0])
    assert tables.status_line(frame) == "3 finished, 1 failed; machines: NVIDIA H200 (2), CPU (1), unknown (1)"


def test_cells_show_missing_and_failed_never_zero(runs):
    cells = cells_of(runs)
    assert tables.format_cell(cells.loc[("prompt_tuning", "cb")]) == "70.0 ± 10.0 (n=3)"
    assert tables.format_cell(cells.loc[("adap_ins_pos", "cb")]) == "72.0 ± 2.8 (n=2); failed (1)"
    assert tables.format_cell(cells.loc[("fine_tuning", "cb")]) == "90.0 (n=1)"
    assert tables.format_cell(cells.loc[("fine_tuning", "rte")]) == "—"
    assert tables.format_cell(cells.loc[("p_tuning_v2", "rte")]) == "interrupted (1)"
    assert tables.format_cell(cells.loc[("p_tuning_v2", "cb")]) == "—"


def rte_record(method: str, seed: int, pred: list[int], label: list[int], prompt=None) -> dict:
    """A record whose score is what its per-example predictions give (RTE: accuracy)."""
    acc = sum(p == t for p, t in zip(pred, label, strict=True)) / len(label)
    record = make_record("rte", method, seed, scores={"rte": acc}, prompt=prompt)
    record["selected"]["predictions"]["rte"] |= {"label": label, "pred": pred, "example_idx": list(range(len(label)))}
    return record


def test_paired_gains_bootstrap_over_seeds_and_examples(tmp_path):
    label = [0, 1] * 50
    for seed in range(3):
        base = [(t if (i + seed) % 2 else 1 - t) for i, t in enumerate(label)]  # half right
        better = [t if i < 10 + seed else p for i, (p, t) in enumerate(zip(base, label, strict=True))]
        write(tmp_path / "g", f"pt{seed}.json", rte_record("prompt_tuning", seed, base, label))
        write(tmp_path / "g", f"dp{seed}.json", rte_record("adap_ins_pos", seed, better, label, DYNAMIC))
    frame, _ = tables.prepare(load_results(tmp_path)[0])
    row = tables.paired_gains(frame, "prompt_tuning", n_boot=500).set_index(["method", "task"]).loc[("adap_ins_pos", "rte")]
    expected = [100 * sum(1 for i in range(10 + s) if (i + s) % 2 == 0) / 100 for s in range(3)]  # 5, 5, 6 points
    assert row["n"] == 3 and row["gain_pts"] == pytest.approx(statistics.mean(expected))
    assert 0 < row["ci_low"] < row["gain_pts"] < row["ci_high"] and row["verdict"] == "gain"
    assert row["seeds_for_power"] >= 2


def test_deep_dynamic_prompts_are_also_measured_against_the_static_deep_prompt(tmp_path):
    label = [0, 1] * 20
    deep = {"depth": "deep", "representation": "shared"}
    deep_pool = {"depth": "deep", "representation": "instance_pool"}
    for seed in range(3):
        write(tmp_path / "g", f"pt{seed}.json", rte_record("prompt_tuning", seed, [0] * 40, label))  # 50%
        write(tmp_path / "g", f"v2{seed}.json", rte_record("p_tuning_v2", seed, label[:30] + [0] * 10, label, deep))
        write(tmp_path / "g", f"vec{seed}.json", rte_record("p_tuning_v2_ins_vec", seed, label[:32] + [0] * 8, label, deep_pool))
        write(tmp_path / "g", f"dp{seed}.json", rte_record("adap_ins_pos", seed, [1] * 40, label, DYNAMIC))
    frame, _ = tables.prepare(load_results(tmp_path)[0])
    gains = tables.gains_with_baselines(frame, "prompt_tuning").set_index(["method", "baseline"])["gain_pts"]
    assert gains.to_dict() == pytest.approx({
        ("adap_ins_pos", "prompt_tuning"): 0.0,
        ("p_tuning_v2_ins_vec", "prompt_tuning"): 100 * (36 / 40 - 0.5),
        ("p_tuning_v2_ins_vec", "p_tuning_v2"): 100 * (36 / 40 - 35 / 40),  # the dynamic part alone
    })
    shown = tables.gains_markdown(tables.gains_with_baselines(frame, "prompt_tuning"))
    assert [c.strip() for c in shown.splitlines()[0].split("|")[1:3]] == ["method", "vs"]


def test_a_gain_with_too_few_seeds_prints_no_interval(tmp_path):
    label = [0, 1] * 20
    for seed in range(2):  # one seed short of MIN_SEEDS
        write(tmp_path / "g", f"pt{seed}.json", rte_record("prompt_tuning", seed, [0] * 40, label))
        write(tmp_path / "g", f"dp{seed}.json", rte_record("adap_ins_pos", seed, label, label, DYNAMIC))
    frame, _ = tables.prepare(load_results(tmp_path)[0])
    gains = tables.gains_with_baselines(frame, "prompt_tuning")
    assert gains["ci_low"].iloc[0] > 0  # computed (and kept in gains.csv) ...
    row = tables.gains_markdown(gains).splitlines()[2]
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[3] == "2" and cells[4] == "+50.00"  # signed, as formatted
    assert gains["seeds_for_power"].iloc[0] == 2  # the same difference at both seeds ...
    assert cells[5:9] == ["—", "too few seeds", "—", "—"]  # ... but none printed: 2 seeds' spread says little


def test_the_gain_plot_draws_no_whisker_below_three_seeds(tmp_path, monkeypatch):
    import matplotlib.axes
    import pandas as pd

    whiskers = {}
    draw = matplotlib.axes.Axes.bar

    def bar(self, x, height, width, **kwargs):
        whiskers[kwargs["label"]] = kwargs["yerr"]
        return draw(self, x, height, width, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", bar)
    gains = pd.DataFrame({"method": ["adap_pos", "adap_ins_pos"], "task": ["rte", "rte"], "n": [3, 2],
                          "gain_pts": [1.0, 1.0], "ci_low": [-1.0, 0.5], "ci_high": [4.0, 1.5]})
    assert tables.plot_gains(gains, "prompt_tuning", "t", tmp_path / "gain.png").is_file()
    assert whiskers["adap_pos"].ravel().tolist() == [2.0, 3.0]
    assert whiskers["adap_ins_pos"].ravel().tolist() == [0.0, 0.0]


def test_multitask_runs_are_compared_with_single_task_runs_of_the_same_protocol(tmp_path):
    label = [0, 1] * 20
    for seed in range(3):
        single = rte_record("prompt_tuning", seed, [0] * 40, label) | {"grid": "s"}  # 50%
        single["config"]["trainer"] = {"max_epochs": 10}
        write(tmp_path / "s", f"single{seed}.json", single)
        shorter = rte_record("prompt_tuning", seed, label, label) | {"grid": "a_short"}  # 100%, another budget; sorts first
        shorter["config"]["trainer"] = {"max_epochs": 3}
        write(tmp_path / "short", f"short{seed}.json", shorter)
        multi = make_record("cb+rte", "prompt_tuning", seed, scores={"cb": 0.5, "rte": 0.75}, grid="m", regime="multitask")
        multi["config"]["trainer"] = {"max_epochs": 10}
        multi["selected"]["predictions"]["rte"] |= {"label": label, "pred": label[:20] + [0] * 20, "example_idx": list(range(40))}
        write(tmp_path / "m", f"multi{seed}.json", multi)
    frame, _ = tables.prepare(load_results(tmp_path)[0])
    versus = tables.multitask_vs_single_task(frame[frame["grid"] == "m"], frame, n_boot=300)
    assert versus[["method", "task", "baseline"]].values.tolist() == [["prompt_tuning", "rte", "single-task (s)"]]  # no CB single run
    row = versus.iloc[0]
    assert row["n"] == 3 and row["gain_pts"] == pytest.approx(25.0) and row["verdict"] == "gain"
    summary = tables.render(tmp_path, tmp_path / "out", reference_dir=tmp_path / "none", bench_dir=None).read_text()
    assert "| prompt_tuning | single-task (s) | rte" in summary.replace("  ", " ").replace("  ", " ")


def test_paired_gains_with_too_few_seeds_give_no_verdict(runs):
    frame, _ = tables.prepare(load_results(runs)[0])
    gains = tables.paired_gains(frame[frame["grid"] == "g"], "prompt_tuning").set_index(["method", "task"])
    assert set(gains.index) == {("adap_ins_pos", "cb"), ("adap_ins_pos", "rte")}  # fine_tuning is not dynamic
    row = gains.loc[("adap_ins_pos", "cb")]  # paired by seed: 10 and 4 points
    assert row["n"] == 2 and row["gain_pts"] == pytest.approx(7.0) and row["verdict"] == "too few seeds"


def test_render_writes_summary_csv_and_figures(runs, tmp_path, capsys):
    reference = tmp_path / "reference"
    reference.mkdir()
    (reference / "paper.csv").write_text(
        "# a comment line\nregime,method,task,metric,value,backbone,source\n"
        "full,prompt_tuning,cb,score,67.9,t5-large,Somebody 2023 Table 9\n"
        "few_shot,prompt_tuning,cb,score,11.1,t5-large,Somebody 2023 Table 9\n"
    )
    out = tmp_path / "tables"
    (out).mkdir()
    (out / "stale.png").write_bytes(b"x")  # not ours: kept
    summary = tables.render(runs, out, reference, bench_dir=None)  # the tables alone, not this checkout's bench reports
    text = summary.read_text()
    assert "broken.json" in text and "broken.json" in capsys.readouterr().err
    assert "cb_pt_0_old.json" in text  # the duplicate is reported, and ignored
    assert "### g · full · bb" in text and "### m · multitask (cb+rte) · bb" in text
    assert text.index("## Full data") < text.index("### g · full") < text.index("## Few-shot") < text.index("## Multitask") < text.index("### m ·")
    short = (out / "readme.md").read_text()
    assert "![" not in short and "Figures (chosen positions" in short  # the README's copy: no figures
    assert [x for x in short.splitlines() if x and not x.startswith("Figures (")] == [
        x for x in text.splitlines() if x and not x.startswith("![")]
    assert "70.0 ± 10.0 (n=3)" in text and "failed (1)" in text and "interrupted (1)" in text
    assert "↳ reported: t5-large, Somebody 2023 Table 9" in text and "67.9" in text and "11.1" not in text
    assert "Protocol: model selection and report on the same val.jsonl" in text
    assert "too few seeds (n=2), failed (1)" in text  # adap_ins_pos on CB: 2 seeds finished
    assert "| majority class " in text  # the backbone-signal block starts with it
    pngs = sorted(p.name for p in out.glob("*.png") if p.name != "stale.png")
    assert "g__full__bb__gain.png" in pngs and "g__full__bb__position__adap_ins_pos.png" in pngs
    for name in pngs:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cells = (out / "cells.csv").read_text().splitlines()
    assert cells[0].startswith("grid,regime,backbone,mixture,settings,metric,method,task,mean_pct,std_pct,n,failed")
    assert "g,full,bb,,,score,prompt_tuning,cb,70,10,3,0,0,0" in cells
    assert (out / "runs.csv").is_file() and (out / "gains.csv").is_file()
    assert "[glance.md](glance.md)" in text and (out / "glance.md").read_text().startswith("# Published comparisons")

    # A second render replaces its own outputs (the gains figure goes when its data goes).
    for path in runs.glob("g/*_dp_*.json"):
        path.unlink()
    tables.render(runs, out, reference)
    assert not (out / "g__full__bb__gain.png").exists() and (out / "stale.png").exists()


def test_bad_reference_names_the_file(tmp_path):
    (tmp_path / "ref.csv").write_text("regime,method,task,metric,value,backbone,source\nfull,pt,cb,score,high,t5,x\n")
    with pytest.raises(ValueError, match=r"ref\.csv.*'high'"):
        tables.load_reference(tmp_path)
    (tmp_path / "ref.csv").write_text("regime,method,task\n")
    with pytest.raises(ValueError, match=r"ref\.csv.*lacks"):
        tables.load_reference(tmp_path)


def test_shipped_reference_files_load():
    from pathlib import Path

    reference = tables.load_reference(Path(__file__).resolve().parents[1] / "experiments" / "reference")
    assert set(tables.REFERENCE_COLUMNS) <= set(reference.columns)


def test_main_with_no_records(tmp_path):
    assert tables.main(["--runs", str(tmp_path / "none"), "--out", str(tmp_path / "out"), "--reference", str(tmp_path)]) == 0
    assert "No run records to show yet" in (tmp_path / "out" / "summary.md").read_text()


def test_main_embeds_the_figure_free_summary_in_the_readme(runs, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{tables.README_BEGIN}\nold\n{tables.README_END}\n")
    out = tmp_path / "results" / "tables"
    assert tables.main(["--runs", str(runs), "--out", str(out), "--reference", str(tmp_path), "--readme", str(readme)]) == 0
    inside = readme.read_text().split(tables.README_BEGIN + "\n", 1)[1].split("\n" + tables.README_END, 1)[0]
    short = (out / "readme.md").read_text().rstrip()
    links = {f"]({name})": f"](results/tables/{name})" for name in ("summary.md", tables.GLANCE)}
    assert inside == short.replace(*links.popitem()).replace(*links.popitem())
    assert "### g · full · bb" in inside and "![" not in inside and "[summary.md](results/tables/summary.md)" in inside
    assert "[glance.md](results/tables/glance.md)" in inside


def test_bench_reports_are_included(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "cpu-test.md").write_text("# Cost benchmark: cpu-test\n\n## Targets\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n")
    summary = tables.render(tmp_path / "none", tmp_path / "out", tmp_path / "noref", bench_dir=bench).read_text()
    assert "## Cost benchmarks" in summary
    assert "### Cost benchmark: cpu-test" in summary and "#### Targets" in summary and "| 1 | 2 |" in summary


def test_summary_is_embedded_in_the_readme_byte_for_byte(tmp_path):
    out = tmp_path / "results" / "tables"
    out.mkdir(parents=True)
    summary = out / "summary.md"
    summary.write_text("# dp-bench results\n\n| a |\n| --- |\n| 1 |\n\n![fig](cb__gain.png)\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{tables.README_BEGIN}\nold table\n{tables.README_END}\noutro\n")
    assert tables.embed_in_readme(readme, summary)
    text = readme.read_text()
    inside = text.split(tables.README_BEGIN + "\n", 1)[1].split("\n" + tables.README_END, 1)[0]
    assert inside == summary.read_text().rstrip().replace("](cb__gain.png)", "](results/tables/cb__gain.png)")
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old table" not in text
    assert not tables.embed_in_readme(tmp_path / "results" / "tables" / "summary.md", summary)  # no markers


def write_grid_file(tmp_path: Path, body: str) -> Path:
    """``<tmp_path>/grids/g.yaml``: grid ``g`` with ``body``, the repo's configs, runs under tmp_path; its folder."""
    grids = tmp_path / "grids"
    grids.mkdir()
    experiments = (Path(__file__).parents[1] / "experiments").as_posix()
    (grids / "g.yaml").write_text(f"name: g\n{body}configs_dir: {experiments}\nruns_dir: {tmp_path.as_posix()}/runs\n")
    return grids


@pytest.mark.parametrize("grid_regime, recorded_regime", [
    ("full", "full"),
    ("few_shot", "few_shot_sample"),  # a record names its few-shot source, the grid file does not
])
def test_runs_line_counts_what_the_grid_file_plans_but_has_not_run(tmp_path, grid_regime, recorded_regime):
    grids = write_grid_file(tmp_path, "tasks: [cb]\nmethods: [prompt_tuning, adap_pos]\nseeds: [0, 1]\nbackbones: [bb]\n"
                                      f"regimes: [{grid_regime}]\n")
    runs = tmp_path / "runs"

    def write_run(method, seed, **fields):
        record = make_record("cb", method, seed, regime=recorded_regime, **fields)
        write(runs / "g", f"cb__{method}__{grid_regime}__bb__s{seed}.json", record)

    for seed in (0, 1):  # adap_pos has not run at all
        write_run("prompt_tuning", seed, scores={"cb": 0.6})

    def runs_line(grids_dir) -> str:
        summary = tables.render(runs, tmp_path / "out", tmp_path / "noref", bench_dir=None, grids_dir=grids_dir).read_text()
        return next(line for line in summary.splitlines() if line.startswith("Runs: "))

    assert runs_line(None).startswith("Runs: 2 finished; machines:")
    assert runs_line(grids).startswith("Runs: 2 finished, 2 of the 4 planned not run yet (no run of adap_pos); machines:")
    write_run("adap_pos", 0, status="failed")
    assert runs_line(grids).startswith("Runs: 2 finished, 1 failed, 1 of the 4 planned not run yet; machines:")


def test_runs_line_names_the_budget_and_a_learning_rate_scale_from_the_records(tmp_path):
    """A grid's overrides (epochs, input length, a fixed ``model.lr_scale``) show beside its numbers."""
    runs = tmp_path / "runs"

    def trained(seed: int, epochs: int, lr_scale: float | None, grid: str = "g") -> dict:
        record = make_record("cb", "prompt_tuning", seed, scores={"cb": 0.6}, grid=grid)
        model = record["config"]["model"] | ({"lr_scale": lr_scale} if lr_scale is not None else {})
        return record | {"config": {"trainer": {"max_epochs": epochs}, "data": {"batch_size": 16, "max_length": 128}, "model": model}}

    write(runs / "g", "s0.json", trained(0, 10, 0.3))
    write(runs / "g", "s1.json", trained(1, 20, 0.3))
    write(runs / "plain", "s0.json", trained(0, 10, None, grid="plain"))  # predates lr_scale: counts as 1
    summary = tables.render(runs, tmp_path / "out", tmp_path / "noref", bench_dir=None).read_text()
    lines = summary.splitlines()
    runs_line = {line[4:]: lines[i + 2] for i, line in enumerate(lines) if line.startswith("### ")}  # title -> its Runs line
    assert "Budget: 10 or 20 epochs, batch 16, max length 128, learning rates ×0.3 (`model.lr_scale`)." in runs_line["g · full · bb"]
    assert "Budget: 10 epochs, batch 16, max length 128. Protocol:" in runs_line["plain · full · bb"]
    frame, _ = tables.prepare(load_results(runs)[0])
    assert tables.budget_text(frame[frame["grid"] == "g"], tuned=True) == "10 or 20 epochs, batch 16, max length 128"
    assert tables.budget_text(frame.iloc[0:0], tuned=False) == ""
