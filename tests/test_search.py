"""Hyperparameter search: choices on the selection split, reported at the chosen setting."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from dp_bench import search, tables
from dp_bench.results import load_results
from tests.test_results import make_record, write
from tests.test_tables import write_grid_file

# (setting, seed) -> (selection-split score, val.jsonl score) for prompt_tuning on CB.
# lr_scale3.0 wins on the selection split although as configured is better on val.jsonl.
SCORES = {
    "": [(0.60, 0.90), (0.62, 0.92), (0.64, 0.94)],
    "lr_scale0.3": [(0.50, 0.50), (0.52, 0.52), (0.54, 0.54)],
    "lr_scale3.0": [(0.70, 0.40), (0.72, 0.42), (0.74, 0.44)],
}

# A grid file of prompt_tuning on CB, seeds 0-2, that plans the three settings above.
SEARCH_GRID = ("tasks: [cb]\nmethods: [prompt_tuning]\nseeds: [0, 1, 2]\nbackbones: [bb]\nregimes: [full]\n"
               "search:\n  - {}\n  - {model.lr_scale: 0.3}\n  - {model.lr_scale: 3.0}\n")


def searched(task: str, method: str, seed: int, setting: str, selection: float, test: float, **kwargs) -> dict:
    record = make_record(task, method, seed, scores={task: selection}, **kwargs)
    record["test"] = {task: {"score": test, "acc": test}}
    if setting:
        record["setting"] = setting
    return record


@pytest.fixture
def runs(tmp_path):
    d = tmp_path / "runs"
    for setting, values in SCORES.items():
        for seed, (selection, test) in enumerate(values):
            write(d / "g", f"pt_{seed}_{setting}.json", searched("cb", "prompt_tuning", seed, setting, selection, test))
    return d


def frame_of(runs_dir):
    frame, warnings = tables.prepare(load_results(runs_dir)[0])
    assert warnings == []  # settings of one seed are different runs, not duplicates
    return frame


def test_the_best_mean_selection_score_wins_not_the_reported_one(runs):
    frame = frame_of(runs)
    choices = search.choose_settings(frame).set_index("setting")
    assert choices["chosen"].to_dict() == {"": False, "lr_scale0.3": False, "lr_scale3.0": True}
    assert choices.loc["lr_scale3.0", "selection_mean_pct"] == pytest.approx(72.0)
    reported = search.chosen_runs(frame, search.choose_settings(frame))
    assert set(reported["setting"]) == {"lr_scale3.0"} and len(reported) == 3
    cells = tables.cell_stats(reported, "score").set_index(["method", "task"])
    assert cells.loc[("prompt_tuning", "cb"), "mean"] == pytest.approx(42.0)  # the chosen setting's val.jsonl scores


def test_ties_go_to_the_grid_as_configured_and_incomplete_settings_cannot_win(tmp_path):
    d = tmp_path / "runs"
    for seed in range(3):
        write(d / "g", f"a{seed}.json", searched("cb", "prompt_tuning", seed, "", 0.6, 0.6))
        write(d / "g", f"b{seed}.json", searched("cb", "prompt_tuning", seed, "lr_scale3.0", 0.6, 0.9))
    for seed in range(2):  # best selection score, but one seed short
        write(d / "g", f"c{seed}.json", searched("cb", "prompt_tuning", seed, "lr_scale9.0", 0.99, 0.99))
    write(d / "g", "c2.json", make_record("cb", "prompt_tuning", 2, status="failed") | {"setting": "lr_scale9.0"})
    choices = search.choose_settings(frame_of(d)).set_index("setting")
    assert choices["chosen"].to_dict() == {"": True, "lr_scale3.0": False, "lr_scale9.0": False}
    assert choices["complete"].to_dict() == {"": True, "lr_scale3.0": True, "lr_scale9.0": False}
    assert choices["tie"].to_dict() == {"": True, "lr_scale3.0": True, "lr_scale9.0": False}


def test_equal_scores_in_another_seed_order_are_a_tie_and_the_table_marks_it(tmp_path):
    # the same three scores: summed in seed order their float means differ in the last bit
    # ((0.3 + 0.2) + 0.1 < (0.1 + 0.2) + 0.3), which must not decide the choice
    d = tmp_path / "runs"
    for seed, (first, second) in enumerate([(0.3, 0.1), (0.2, 0.2), (0.1, 0.3)]):
        write(d / "g", f"a{seed}.json", searched("cb", "prompt_tuning", seed, "", first, 0.5))
        write(d / "g", f"b{seed}.json", searched("cb", "prompt_tuning", seed, "lr_scale3.0", second, 0.5))
        write(d / "g", f"c{seed}.json", searched("cb", "prompt_tuning", seed, "lr_scale0.3", 0.1, 0.5))
    choices = search.choose_settings(frame_of(d))
    means = choices.set_index("setting")["selection_mean_pct"]
    assert means[""] != means["lr_scale3.0"]  # the float means do differ
    assert choices.set_index("setting")["chosen"].to_dict() == {"": True, "lr_scale0.3": False, "lr_scale3.0": False}
    assert choices.set_index("setting")["tie"].to_dict() == {"": True, "lr_scale0.3": False, "lr_scale3.0": True}
    shown = search.choices_table(choices, ["cb"], ["prompt_tuning"]).set_index("setting")["cb"].to_dict()
    assert shown == {"as configured": "**20.0 (n=3)**, tie", "lr_scale0.3": "10.0 (n=3)", "lr_scale3.0": "20.0 (n=3), tie"}


def test_render_reports_the_search_and_writes_the_choices(runs, tmp_path):
    grids = tmp_path / "grids"
    grids.mkdir()
    (grids / "g.yaml").write_text("name: g\nsearch:\n  - {}\n  - {model.lr_scale: 0.3}\n  - {model.lr_scale: 3.0}\n")
    summary = tables.render(runs, tmp_path / "out", tmp_path / "noref", bench_dir=None, tuned_dir=tmp_path / "tuned")
    text = summary.read_text()
    assert "Hyperparameter search" in text and "**72.0 (n=3)**" in text
    assert "| prompt_tuning | 42.0 ± 2.0 (n=3)" in text.replace("  ", " ").replace("  ", " ")
    tuned = yaml.safe_load((tmp_path / "tuned" / "g.yaml").read_text())
    assert tuned["cb"]["prompt_tuning"]["chosen"] == "lr_scale3.0"
    assert tuned["cb"]["prompt_tuning"]["selection_score_pct"]["as configured"] == pytest.approx(62.0)
    # the flags of each setting, as the grid's YAML gives them
    flags = search.search_flags("g", grids)
    assert flags == {"": {}, "lr_scale0.3": {"model.lr_scale": 0.3}, "lr_scale3.0": {"model.lr_scale": 3.0}}
    cells = pd.read_csv(tmp_path / "out" / "cells.csv")
    mine = cells[(cells["metric"] == "score") & (cells["task"] == "cb")].set_index("settings")
    assert mine.loc["tuned", "mean_pct"] == pytest.approx(42.0)  # every setting run: the search is done
    assert mine.loc["as configured", "mean_pct"] == pytest.approx(92.0)


def test_a_grid_with_two_tables_keeps_both_in_its_choices_file(runs, tmp_path):
    for setting, values in SCORES.items():  # the same search on a second backbone
        for seed, (selection, test) in enumerate(values):
            write(runs / "g", f"pt_{seed}_{setting}_other.json",
                  searched("cb", "prompt_tuning", seed, setting, 1 - selection, test, backbone="other"))
    tables.render(runs, tmp_path / "out", tmp_path / "noref", bench_dir=None, tuned_dir=tmp_path / "tuned")
    tuned = yaml.safe_load((tmp_path / "tuned" / "g.yaml").read_text())
    assert tuned["full · bb"]["cb"]["prompt_tuning"]["chosen"] == "lr_scale3.0"
    assert tuned["full · other"]["cb"]["prompt_tuning"]["chosen"] == "lr_scale0.3"


def test_a_search_under_way_is_not_a_choice_until_every_method_has_run_it(runs, tmp_path):
    # prompt_tuning has all three settings (lr_scale3.0 the best on the selection split);
    # adap_ins_pos has the grid as configured and one seed of lr_scale3.0 so far.
    for seed in range(3):
        write(runs / "g", f"pos_{seed}.json", searched("cb", "adap_ins_pos", seed, "", 0.6, 0.6))
    write(runs / "g", "pos_0_lr3.json", searched("cb", "adap_ins_pos", 0, "lr_scale3.0", 0.9, 0.9))
    choices = search.choose_settings(frame_of(runs)).set_index(["method", "setting"])
    assert choices["chosen"][choices["chosen"]].index.tolist() == [("adap_ins_pos", ""), ("prompt_tuning", "")]
    assert not choices.loc[("prompt_tuning", "lr_scale3.0"), "in_search"]
    assert not choices.loc[("prompt_tuning", "lr_scale0.3"), "in_search"]

    # once adap_ins_pos has every seed of lr_scale3.0 (one failed: still a run of the budget),
    # that setting takes part; lr_scale0.3 is still under way
    write(runs / "g", "pos_1_lr3.json", searched("cb", "adap_ins_pos", 1, "lr_scale3.0", 0.9, 0.9))
    write(runs / "g", "pos_2_lr3.json", make_record("cb", "adap_ins_pos", 2, status="failed") | {"setting": "lr_scale3.0"})
    choices = search.choose_settings(frame_of(runs)).set_index(["method", "setting"])
    assert choices["chosen"][choices["chosen"]].index.tolist() == [("adap_ins_pos", ""), ("prompt_tuning", "lr_scale3.0")]
    assert choices["in_search"].to_dict() == {
        ("adap_ins_pos", ""): True, ("adap_ins_pos", "lr_scale3.0"): True,
        ("prompt_tuning", ""): True, ("prompt_tuning", "lr_scale0.3"): False, ("prompt_tuning", "lr_scale3.0"): True,
    }
    for seed in range(3):  # a task the search has not reached: only the grid as configured
        write(runs / "g", f"rte_{seed}.json", searched("rte", "prompt_tuning", seed, "", 0.5, 0.5))
    text = tables.render(runs, tmp_path / "out", tmp_path / "noref", bench_dir=None, tuned_dir=tmp_path / "tuned").read_text()
    assert "Not yet part of the choice" in text and "cb `lr_scale0.3`; rte `lr_scale0.3`, `lr_scale3.0`." in text
    assert "52.0 (n=3), under way" in text
    tuned = yaml.safe_load((tmp_path / "tuned" / "g.yaml").read_text())
    assert tuned["cb"]["prompt_tuning"]["under_way"] == ["lr_scale0.3"]
    assert "under_way" not in tuned["cb"]["adap_ins_pos"]
    assert tuned["rte"]["prompt_tuning"]["not_run"] == ["lr_scale0.3", "lr_scale3.0"]
    # the CSVs label the chosen numbers as from a search not yet finished
    cells = pd.read_csv(tmp_path / "out" / "cells.csv")
    assert set(cells.loc[cells["grid"] == "g", "settings"]) == {"tuned, search under way", "as configured"}


def test_a_setting_the_grid_file_plans_but_no_run_has_reached_keeps_the_search_under_way(tmp_path):
    # as configured and lr_scale0.3 have every seed; the grid file also plans lr_scale3.0,
    # of which there is no record at all: the search is not done, whatever the records say
    grids = write_grid_file(tmp_path, SEARCH_GRID)
    runs = tmp_path / "runs"
    for setting in ("", "lr_scale0.3"):
        for seed, (selection, test) in enumerate(SCORES[setting]):
            write(runs / "g", f"pt_{seed}_{setting}.json", searched("cb", "prompt_tuning", seed, setting, selection, test))

    def render(grids_dir):
        text = tables.render(runs, tmp_path / "out", tmp_path / "noref", bench_dir=None,
                             tuned_dir=tmp_path / "tuned", grids_dir=grids_dir).read_text()
        cells = pd.read_csv(tmp_path / "out" / "cells.csv")
        return text, set(cells["settings"])

    text, labels = render(None)  # without the grid file only the records speak: a finished search
    assert "Not yet part of the choice" not in text and labels == {"tuned", "as configured"}
    assert "not_run" not in (tmp_path / "tuned" / "g.yaml").read_text()  # nor its header line
    text, labels = render(grids)
    assert "settings `as configured`, `lr_scale0.3`, `lr_scale3.0`," in text
    assert "Not yet part of the choice" in text and "cb `lr_scale3.0`." in text
    assert "| prompt_tuning | lr_scale3.0   | —" in text
    assert labels == {"tuned, search under way", "as configured"}
    tuned = yaml.safe_load((tmp_path / "tuned" / "g.yaml").read_text())
    assert tuned["cb"]["prompt_tuning"]["chosen"] == "as configured"  # 62.0 over lr_scale0.3's 52.0
    assert tuned["cb"]["prompt_tuning"]["not_run"] == ["lr_scale3.0"]  # no record of it: not "under way"
    assert "# under_way / not_run:" in (tmp_path / "tuned" / "g.yaml").read_text()
    assert "under_way" not in tuned["cb"]["prompt_tuning"]


def test_a_grid_file_that_plans_a_search_no_run_has_reached_reports_it_under_way(tmp_path):
    # every record is of the grid as configured, but the grid file plans lr_scale0.3 and
    # lr_scale3.0 too: the section is a search not yet begun, not a grid without one
    grids = write_grid_file(tmp_path, SEARCH_GRID)
    runs = tmp_path / "runs"
    for seed, (selection, test) in enumerate(SCORES[""]):
        write(runs / "g", f"pt_{seed}.json", searched("cb", "prompt_tuning", seed, "", selection, test))
    text = tables.render(runs, tmp_path / "out", tmp_path / "noref", bench_dir=None,
                         tuned_dir=tmp_path / "tuned", grids_dir=grids).read_text()
    assert "settings `as configured`, `lr_scale0.3`, `lr_scale3.0`," in text
    assert "cb `lr_scale0.3`, `lr_scale3.0`." in text
    assert set(pd.read_csv(tmp_path / "out" / "cells.csv")["settings"]) == {"tuned, search under way", "as configured"}
    tuned = yaml.safe_load((tmp_path / "tuned" / "g.yaml").read_text())
    assert tuned["cb"]["prompt_tuning"]["chosen"] == "as configured"
    assert tuned["cb"]["prompt_tuning"]["not_run"] == ["lr_scale0.3", "lr_scale3.0"]
    assert "under_way" not in tuned["cb"]["prompt_tuning"]
