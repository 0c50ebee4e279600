"""A published dataset from another lab (Borowski et al. 2021) read through read_trials.

The full check needs the CSV (not in this repository, see benchmarks/PUBLISHED_CHECK.md): set
INTERPSY_BOROWSKI_CSV to its path. The other tests use a small CSV in the same column format.
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import pandas as pd
import pytest

from analysis import DataError, main_trials, participant_summary, read_trials
from analysis.foreign import (
    BOROWSKI2021_PUBLISHED,
    format_comparison,
    main,
    published_comparison,
    read_borowski2021,
)
from experiments.study.schema import RESPONSE_COLUMNS

HEADER = ["", "subject_id_within_expert_type", "trial_nr", "block_nr", "instr_type", "trial_type",
          "catch_trial", "batch", "layer", "kernel_size", "channel", "query_order", "correct",
          "conf_rating", "RT", "timeout", "response", "correct_response", "query_image_a",
          "query_image_b", "old_trial_nr", "old_block_nr", "seed", "unit_name",
          "abs_conf_rating", "subject_id"]

# Main, non-catch answers per participant (1 = correct). Hand-computed scores:
#   natural   0.75, 1.00, 0.50 -> mean 0.75, SD 0.25, 2 SEM = 0.5 / sqrt(3)
#   synthetic 0.25, 0.50, 0.75 -> mean 0.50, SD 0.25, 2 SEM = 0.5 / sqrt(3)
#   none      0.50, 0.00, 1.00 -> mean 0.50, SD 0.50, 2 SEM = 1 / sqrt(3)
# Practice, catch and repeated trials are all answered wrongly: counting any of them would
# change these numbers.
ANSWERS = {
    1: {"none_pre": [1, 0], "natural": [1, 1, 1, 0], "optimized": [1, 0, 0, 0],
        "none_post": [1, 0]},
    2: {"none_pre": [0, 0], "natural": [1, 1, 1, 1], "optimized": [1, 1, 0, 0],
        "none_post": [0, 0]},
    3: {"none_pre": [1, 1], "natural": [1, 0, 1, 0], "optimized": [1, 1, 1, 0],
        "none_post": [1, 1]},
}
UNITS = [("layer_3", "3", "channel_1", "4b, P int."), ("layer_5", "0", "channel_0", "4d, 1x1 ")]


def _trial(index: int, subject: int, trial_nr: int, instr: str, trial_type: str, correct: bool,
           catch: bool = False, unit: int = 0, rt_s: float = 1.5) -> list[str]:
    """One row written the way the published CSV writes it (booleans as True/False text)."""
    layer, kernel, channel, unit_name = UNITS[unit]
    order = "max_min" if trial_nr % 2 else "min_max"
    right = "a" if order == "max_min" else "b"
    answer = right if correct else ("b" if right == "a" else "a")
    confidence = 1 + trial_nr % 3
    images = "optimized_images/" if catch and instr == "optimized" else "natural_images/batch_5/"
    stem = f"../stimuli/channel/sampled_trials/{layer}/kernel_size_{kernel}/{channel}/{images}"
    first, second = ("max_9", "min_0") if order == "max_min" else ("min_0", "max_9")
    repeated = trial_type == "repeated"
    return [str(index), str(subject), str(trial_nr), "1", instr, trial_type, str(catch),
            "0" if catch else "5", layer, kernel, channel, order, str(correct),
            str(confidence if answer == "b" else -confidence), repr(rt_s), "False", answer, right,
            f"{stem}{first}.png", f"{stem}{second}.png", "5.0" if repeated else "",
            "1.0" if repeated else "", "42", unit_name, str(confidence), str(subject)]


def _rows() -> list[list[str]]:
    """Practice, main (with catch trials) and repeated trials of three participants."""
    rows: list[list[str]] = []
    for subject, blocks in ANSWERS.items():
        plan = [("none_pre", "practice", False, False), ("natural", "practice", False, False)]
        for instr, answers in blocks.items():
            plan += [(instr, "main", bool(a), False) for a in answers]
            if instr in ("natural", "optimized"):
                plan.append((instr, "main", False, True))
        plan.append(("natural", "repeated", False, False))
        for trial_nr, (instr, trial_type, correct, catch) in enumerate(plan):
            rows.append(_trial(len(rows), subject, trial_nr, instr, trial_type, correct, catch,
                               unit=trial_nr % 2, rt_s=0.5 + trial_nr / 4))
    return rows


@pytest.fixture()
def borowski_like(tmp_path: Path) -> Path:
    """A small CSV in the exact column format of the published Experiment I file."""
    path = tmp_path / "experiment_I_like.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(_rows())
    return path


def test_borowski_mapping_columns(borowski_like: Path) -> None:
    raw = pd.read_csv(borowski_like)
    out = read_borowski2021(borowski_like)
    assert list(out.columns) == list(RESPONSE_COLUMNS)
    assert len(raw) == 3 * 17 and len(out) == 3 * 16
    assert out.attrs["dropped_rows"] == {"phase": 3}
    assert set(out["phase"]) == {"practice", "main"}
    assert set(out["condition"]) == {"natural", "synthetic", "none"}
    assert sorted(out["participant_id"].unique()) == ["1", "2", "3"]
    assert int(out["is_catch"].sum()) == 6
    assert set(out["unit_id"]) == {"layer_3/3/channel_1", "layer_5/0/channel_0"}
    assert out["channel"].isna().all() and set(out["layer"]) == {"layer_3", "layer_5"}
    kept = raw[raw["trial_type"] != "repeated"].reset_index(drop=True)
    assert out["rt_ms"].tolist() == pytest.approx((kept["RT"] * 1000).tolist())
    assert out["confidence"].tolist() == kept["abs_conf_rating"].tolist()
    assert out["correct"].tolist() == kept["correct"].tolist()
    assert (out["correct"] == (out["choice"] == out["correct_choice"])).all()
    assert out["trial_index"].tolist() == kept["trial_nr"].tolist()
    assert (out["client"] == "lab").all() and (out["model"] == "inception_v1").all()


def test_borowski_mean_two_sem_by_hand(borowski_like: Path) -> None:
    out = read_borowski2021(borowski_like)
    assert len(main_trials(out)) == 3 * 12
    summary = participant_summary(out, by=("condition",)).set_index("condition")
    expected = {"natural": (0.75, 0.5 / math.sqrt(3)), "synthetic": (0.5, 0.5 / math.sqrt(3)),
                "none": (0.5, 1 / math.sqrt(3))}
    for condition, (mean, two_sem) in expected.items():
        assert summary.loc[condition, "n_participants"] == 3
        assert summary.loc[condition, "score"] == pytest.approx(mean)
        assert 2 * summary.loc[condition, "sem"] == pytest.approx(two_sem)
    table = published_comparison(out, {"natural": (0.75, 0.29)}).set_index("condition")
    assert table.loc["natural", "matches"] and not table.loc["synthetic", "matches"]
    assert "75.00 +- 28.87 %" in format_comparison(table.reset_index())
    assert main([str(borowski_like)]) == 1  # the toy data do not reproduce the paper


def test_borowski_rejects_other_files(borowski_like: Path) -> None:
    frame = pd.read_csv(borowski_like)
    frame.loc[3, "instr_type"] = "mixed_2"
    with pytest.raises(DataError, match="unexpected instr_type values"):
        read_borowski2021(frame)
    with pytest.raises(DataError, match="kernel_size"):
        read_borowski2021(frame.drop(columns=["kernel_size"]))


def test_read_trials_combine_drop_and_numeric_errors(borowski_like: Path) -> None:
    base = {"subject_id": "participant_id", "instr_type": "condition", "trial_type": "phase"}
    common = {"defaults": {"model": "m"}, "combine": {"unit_id": ("layer", "kernel_size")}}
    with pytest.raises(DataError, match="column 'channel' must hold numbers, found 'channel_1'"):
        read_trials(borowski_like, columns=base, drop={"phase": ["repeated"]}, **common)
    with pytest.raises(DataError, match="phase must be .*'repeated'.*drop="):
        read_trials(borowski_like, columns={**base, "channel": "choice_kind"}, **common)
    out = read_trials(borowski_like, columns={**base, "channel": "choice_kind"},
                      drop={"phase": ["repeated", "practice"]}, **common)
    assert set(out["phase"]) == {"main"} and out.attrs["dropped_rows"] == {"phase": 9}
    assert set(out["unit_id"]) == {"layer_3/3", "layer_5/0"}
    with pytest.raises(DataError, match="combine=.*lacks: branch"):
        read_trials(borowski_like, columns=base, combine={"unit_id": ("layer", "branch")})
    with pytest.raises(DataError, match="no rows left after drop"):
        read_trials(borowski_like, columns=base, drop={"phase": ["practice", "main", "repeated"]},
                    **common)
    with pytest.raises(DataError, match="cannot drop rows by missing column 'stage'"):
        read_trials(borowski_like, columns=base, drop={"stage": ["x"]}, **common)


def test_analyze_borowski_format_without_exclusions(borowski_like: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`interpsy analyze --format borowski2021`: no online exclusion rules for a lab study."""
    from experiments.cli import main as cli

    out = tmp_path / "report"
    assert cli(["analyze", str(borowski_like), "--format", "borowski2021", "--out", str(out),
                "--bootstrap", "200"]) == 0
    printed = capsys.readouterr().out
    assert "3 of 3 participants kept (exclusion rules: none)" in printed
    assert "3 rows removed while loading (phase in ['repeated'])" in printed
    html = (out / "report.html").read_text()
    assert "<h3>While loading</h3>" in html and "3 rows removed while loading" in html
    table = pd.read_csv(out / "tables" / "participant_summary.csv")
    direct = participant_summary(read_borowski2021(borowski_like))
    for column in ("n_participants", "score", "sem", "low_2sem", "high_2sem"):
        assert table[column].tolist() == pytest.approx(direct[column].tolist()), column
    natural = table.set_index("condition").loc["natural"]
    assert (natural["score"], 2 * natural["sem"]) == pytest.approx((0.75, 0.5 / math.sqrt(3)))
    summary = pd.read_csv(out / "tables" / "exclusion_summary.csv")
    assert list(summary["rule"]) == ["failed_practice", "any", "kept"]
    # --no-exclusions says the same explicitly; IMI's rules would remove every participant here
    assert cli(["analyze", str(borowski_like), "--format", "borowski2021", "--out",
                str(tmp_path / "again"), "--bootstrap", "200", "--no-exclusions"]) == 0
    assert "3 of 3 participants kept" in capsys.readouterr().out
    assert cli(["analyze", str(borowski_like), "--format", "borowski2021", "--out",
                str(tmp_path / "imi"), "--exclusions", "catch_trials"]) == 2
    error = capsys.readouterr().err
    assert "no scored trials left" in error and "catch_trials excluded" in error
    # a pilot that every participant fails still gets its exclusions written down
    written = pd.read_csv(tmp_path / "imi" / "tables" / "exclusion_summary.csv").set_index("rule")
    assert written.loc["catch_trials", "participants"] == 3
    flags = pd.read_csv(tmp_path / "imi" / "tables" / "participant_flags.csv")
    assert flags["excluded"].all() and flags["exclusion_reasons"].str.contains("catch").all()
    assert "catch_trials excluded" in (tmp_path / "imi" / "report.html").read_text()
    assert cli(["analyze", str(borowski_like), "--format", "borowski2021", "--out",
                str(tmp_path / "x"), "--exclusions", "catch_trials", "--no-exclusions"]) == 2
    assert "--no-exclusions contradicts --exclusions catch_trials" in capsys.readouterr().err


PUBLISHED_CSV = os.environ.get("INTERPSY_BOROWSKI_CSV", "")


@pytest.mark.skipif(not PUBLISHED_CSV,
                    reason="set INTERPSY_BOROWSKI_CSV to the Borowski et al. (2021) Experiment I "
                           "CSV to compare with the published numbers (see "
                           "benchmarks/PUBLISHED_CHECK.md)")
def test_borowski2021_matches_published_numbers() -> None:
    out = read_borowski2021(PUBLISHED_CSV)
    assert len(out) == 1680 and out.attrs["dropped_rows"] == {"phase": 180}
    assert out["participant_id"].nunique() == 10
    main_rows = main_trials(out)
    assert main_rows.groupby(["condition", "participant_id"]).size().eq(45).all()
    table = published_comparison(out).set_index("condition")
    for condition, (score, two_sem) in BOROWSKI2021_PUBLISHED.items():
        assert table.loc[condition, "n_participants"] == 10
        assert round(100 * table.loc[condition, "score"]) == round(100 * score)
        assert round(100 * table.loc[condition, "two_sem"]) == round(100 * two_sem)
        assert table.loc[condition, "matches"]
    assert table.loc["natural", "score"] == pytest.approx(0.922222, abs=1e-6)
    assert table.loc["synthetic", "score"] == pytest.approx(0.82, abs=1e-9)
