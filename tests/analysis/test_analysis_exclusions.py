"""Exclusion rules flag participants with reasons and never drop rows."""
from __future__ import annotations

import pandas as pd
import pytest

from analysis import (
    CatchTrials,
    InstructionTime,
    PracticeAttempts,
    RepeatParticipant,
    ResponseRows,
    TotalTime,
    apply_exclusions,
    imi_rules,
)


def test_imi_rules_catch_every_careless_participant_and_keep_rows(small):
    result = apply_exclusions(small.responses, small.participants)
    assert len(result.responses) == len(small.responses)
    assert result.responses["excluded"].dtype == bool
    flagged = set(result.participants.loc[result.participants["excluded"], "participant_id"])
    assert set(small.truth["careless"]) <= flagged
    # most attentive participants pass
    assert len(flagged) < 0.25 * small.responses["participant_id"].nunique()
    summary = result.summary.set_index("rule")
    assert list(summary.index[:6]) == [r.name for r in imi_rules()]
    assert summary.loc["any", "participants"] == len(flagged)
    assert summary.loc["kept", "participants"] + len(flagged) == len(result.participants)
    reasons = result.participants.set_index("participant_id")["exclusion_reasons"]
    assert all(reasons[p] for p in flagged)
    assert result.included["participant_id"].isin(flagged).sum() == 0


def _one_participant(n_main=40, a_choices=20, catch_correct=5, practice_attempts=1):
    rows = []
    for i in range(n_main):
        choice = "a" if i < a_choices else "b"
        rows.append(dict(participant_id="P1", session_id="S1", phase="main", is_catch=False,
                         choice=choice, correct=True, attempt=0))
    for i in range(5):
        rows.append(dict(participant_id="P1", session_id="S1", phase="main", is_catch=True,
                         choice="a", correct=i < catch_correct, attempt=0))
    for a in range(practice_attempts):
        for _ in range(5):
            rows.append(dict(participant_id="P1", session_id="S1", phase="practice",
                             is_catch=False, choice="a", correct=True, attempt=a))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("catch_correct, fails", [(5, False), (4, False), (3, True)])
def test_catch_rule_threshold(catch_correct, fails):
    r = _one_participant(catch_correct=catch_correct)
    res = apply_exclusions(r, rules=[CatchTrials()])
    assert bool(res.participants["excluded"].iloc[0]) is fails
    if fails:
        assert "catch 3/5 correct" in res.participants["exclusion_reasons"].iloc[0]


@pytest.mark.parametrize("a_choices, include_catch, fails", [
    (5, True, False), (36, True, True), (35, True, False),
    # IMI's code counts the whole main block: the 5 catch trials (all answered `a`) make up
    # for an upper row never used on scored trials; counting scored trials only, they do not
    (0, True, False), (0, False, True), (4, False, True), (5, False, False)])
def test_response_rows_rule_counts_both_rows_over_the_main_block(a_choices, include_catch, fails):
    rule = ResponseRows(include_catch=include_catch)
    res = apply_exclusions(_one_participant(a_choices=a_choices), rules=[rule])
    assert bool(res.participants["excluded"].iloc[0]) is fails
    assert ("catch trials included (IMI)" in rule.describe()) is include_catch


def test_the_spec_chooses_whether_catch_trials_count_for_the_rows():
    from analysis.exclusions import rules_from_spec

    def rows(spec):
        return next(r for r in rules_from_spec(spec) if isinstance(r, ResponseRows))
    assert rows({}).include_catch is True
    assert rows({"exclusions": {"row_uses_include_catch": False}}).include_catch is False


def test_the_response_rows_rule_is_each_response_option_of_the_task_type():
    """Another type's option column and values (here a yes/no answer); a type without one is
    not applicable; the spec's task type picks them."""
    from analysis.exclusions import rules_from_spec

    r = _one_participant(a_choices=38).assign(says_yes=lambda f: f["choice"] == "a")
    yes_no = ResponseRows(column="says_yes", options=("true", "false"))
    res = apply_exclusions(r, rules=[yes_no])
    assert bool(res.participants["excluded"].iloc[0])
    # the 5 catch trials (answered yes) count as IMI counts them
    assert "options used true=43, false=2" in res.participants["exclusion_reasons"].iloc[0]
    none = apply_exclusions(r, rules=[ResponseRows(column=None)])
    assert not bool(none.participants["excluded"].iloc[0])
    rule = next(x for x in rules_from_spec({"task": {"type": "occlusion"}})
                if isinstance(x, ResponseRows))
    assert (rule.column, rule.options) == ("choice", ("a", "b"))


@pytest.mark.parametrize("total, instruction, attempts, sessions, expected", [
    (300, 60, 3, 1, set()),
    (134, 60, 1, 1, {"total_time"}),
    (2501, 60, 1, 1, {"total_time"}),
    (300, 14.9, 1, 1, {"instruction_time"}),
    (300, 60, 4, 1, {"practice_attempts"}),
    (300, 60, 1, 2, {"repeat_participant"}),
    (100, 5, 5, 1, {"total_time", "instruction_time", "practice_attempts"}),
])
def test_participant_table_rules(total, instruction, attempts, sessions, expected):
    r = _one_participant()
    p = pd.DataFrame({"participant_id": ["P1"], "total_s": [total], "instruction_s": [instruction],
                      "practice_attempts": [attempts], "n_sessions": [sessions]})
    res = apply_exclusions(r, p)
    row = res.participants.iloc[0]
    failed = {name for name in ("total_time", "instruction_time", "practice_attempts",
                                "repeat_participant") if row[f"fail_{name}"]}
    assert failed == expected
    assert bool(row["excluded"]) is bool(expected)


def test_rules_without_their_data_are_reported_not_applied():
    r = _one_participant(practice_attempts=5)
    res = apply_exclusions(r, None)
    summary = res.summary.set_index("rule")
    assert summary.loc["total_time", "not_evaluable"] == 1
    assert summary.loc["instruction_time", "not_evaluable"] == 1
    # practice attempts fall back to the practice rows' attempt counter
    assert summary.loc["practice_attempts", "participants"] == 1


def test_a_time_just_past_a_threshold_never_prints_as_the_threshold():
    """14.96 s of instructions fail `>= 15 s` and say 14.96, not 15.0."""
    r = pd.concat([_one_participant(), _one_participant().assign(participant_id="P2")])
    participants = pd.DataFrame({"participant_id": ["P1", "P2"], "instruction_s": [14.96, 15.0],
                                 "total_s": [134.9, 2500.0]})
    res = apply_exclusions(r, participants, rules=[InstructionTime(), TotalTime()])
    reasons = res.participants.set_index("participant_id")["exclusion_reasons"]
    assert "instructions 14.96 s" in reasons["P1"] and "total 134.9 s" in reasons["P1"]
    assert reasons["P2"] == ""


def test_failed_practice_sessions_are_counted_apart_from_the_kept():
    """A participant who never passed the practice block has no main-block answer: IMI's
    practice rule excludes them, and even without it they are not 'kept'."""
    passed = _one_participant()
    failed = _one_participant(practice_attempts=3).assign(participant_id="P2", session_id="S2")
    failed = failed[failed["phase"] == "practice"]
    r = pd.concat([passed, failed], ignore_index=True)
    participants = pd.DataFrame({"participant_id": ["P1", "P2"],
                                 "status": ["completed", "failed_practice"],
                                 "practice_attempts": [1, 3]})
    res = apply_exclusions(r, participants, rules=[PracticeAttempts()])
    flags = res.participants.set_index("participant_id")
    assert flags.loc["P2", "excluded"] and not flags.loc["P1", "excluded"]
    assert "practice not passed" in flags.loc["P2", "exclusion_reasons"]
    summary = res.summary.set_index("rule")["participants"]
    assert summary["failed_practice"] == 1 and summary["kept"] == 1
    bare = apply_exclusions(r, participants, rules=[]).summary.set_index("rule")["participants"]
    assert bare["failed_practice"] == 1 and bare["kept"] == 1 and bare["any"] == 0


def test_rules_compose_and_are_configurable(small):
    strict = apply_exclusions(small.responses, small.participants,
                              rules=[CatchTrials(min_fraction=1.0), TotalTime(min_s=0, max_s=1e9)])
    lenient = apply_exclusions(small.responses, small.participants,
                               rules=[CatchTrials(min_fraction=0.4)])
    assert strict.participants["excluded"].sum() > lenient.participants["excluded"].sum()
    assert list(strict.summary["rule"]) == ["catch_trials", "total_time", "failed_practice",
                                            "any", "kept"]
    with pytest.raises(ValueError, match="unique"):
        apply_exclusions(small.responses, rules=[CatchTrials(), CatchTrials()])


def test_repeat_participants_are_excluded_with_every_session():
    """IMI's criteria: repeat participants excluded; the first session is flagged too, nothing deleted."""
    r = pd.concat([_one_participant(), _one_participant().assign(session_id="S2"),
                   _one_participant().assign(participant_id="P2", session_id="S3")])
    res = apply_exclusions(r, rules=[RepeatParticipant()])
    flags = res.participants.set_index("participant_id")
    assert flags.loc["P1", "excluded"] and not flags.loc["P2", "excluded"]
    assert flags.loc["P1", "exclusion_reasons"] == "repeat_participant (2 sessions)"
    assert len(res.responses) == len(r)
    p1 = res.responses[res.responses["participant_id"] == "P1"]
    assert p1.groupby("session_id")["excluded"].all().to_dict() == {"S1": True, "S2": True}
    assert set(res.included["session_id"]) == {"S3"}


def test_response_rows_rule_does_not_apply_without_query_positions():
    """IMI's release: choice empty (positions unknown); 37/40 correct must not be a row presser."""
    r = _one_participant(a_choices=3).assign(choice=pd.NA)
    r["correct"] = [i >= 3 for i in range(40)] + [True] * (len(r) - 40)
    res = apply_exclusions(r, rules=imi_rules())
    flags = res.participants.iloc[0]
    assert not flags["excluded"] and pd.isna(flags["fail_response_rows"])
    row = res.summary.set_index("rule").loc["response_rows"]
    assert (row["evaluated"], row["not_evaluable"], row["participants"]) == (0, 1, 0)
    assert row["note"] == "not applicable: query positions not in the data (choice empty)"
    assert res.summary.set_index("rule").loc["kept", "participants"] == 1


def test_summary_says_who_could_not_be_evaluated():
    r = pd.concat([_one_participant(), _one_participant().assign(participant_id="P2")])
    p = pd.DataFrame({"participant_id": ["P1", "P2"], "total_s": [300.0, None]})
    summary = apply_exclusions(r, p, rules=[TotalTime(), CatchTrials()]).summary.set_index("rule")
    assert summary.loc["total_time", "note"] == "1 not evaluable: total_s missing"
    assert summary.loc["catch_trials", "note"] == ""
    no_catch = apply_exclusions(r[~r["is_catch"]], rules=[CatchTrials()]).summary
    assert no_catch.set_index("rule").loc["catch_trials", "note"] == (
        "not applicable: no catch trials in the data")


def test_select_rules_by_name():
    from analysis.exclusions import select_rules

    assert [r.name for r in select_rules(["total_time", "catch_trials"])] == [
        "total_time", "catch_trials"]
    with pytest.raises(ValueError, match="unknown exclusion rule.*nope; choose from catch_trials"):
        select_rules(["nope"])


def test_practice_rule_uses_participants_table_first():
    r = _one_participant(practice_attempts=1)
    p = pd.DataFrame({"participant_id": ["P1"], "practice_attempts": [7]})
    assert apply_exclusions(r, p, rules=[PracticeAttempts()]).participants["excluded"].iloc[0]
    assert not apply_exclusions(r, p, rules=[InstructionTime()]).participants["excluded"].iloc[0]


def test_rules_follow_the_exported_experiment_spec():
    """An export's experiment.json sets the thresholds; disagreeing experiments fall back to IMI's."""
    from analysis.exclusions import rules_for

    spec = {"catch_trials_per_task": 2,
            "exclusions": {"min_catch_correct": 1, "min_row_uses": 3, "min_total_s": 0.0,
                           "max_total_s": 99.0, "min_instruction_s": 2.0,
                           "max_practice_attempts": 7, "exclude_repeat": False}}
    described = " ".join(r.describe() for r in rules_for([{"experiment": "a@1", "spec": spec}]))
    for expected in (">= 50%", ">= 3 times", "[0, 99] s", ">= 2 s", "within 7 attempts"):
        assert expected in described
    other = {**spec, "exclusions": {**spec["exclusions"], "min_row_uses": 9}}
    fallback = " ".join(r.describe() for r in rules_for([{"spec": spec}, {"spec": other}]))
    assert fallback == " ".join(r.describe() for r in rules_for([]))


def test_thresholds_come_from_the_spec_model_and_unknown_ones_are_refused():
    import pydantic

    from experiments.study.spec import Exclusions

    defaults = Exclusions()
    rules = {r.name: r for r in imi_rules()}
    assert (rules["total_time"].min_s, rules["total_time"].max_s) == \
        (defaults.min_total_s, defaults.max_total_s)
    assert rules["response_rows"].min_each == defaults.min_row_uses
    assert {r.name: r for r in imi_rules(min_total_s=60)}["total_time"].min_s == 60
    with pytest.raises(pydantic.ValidationError, match="min_totl_s"):
        imi_rules(min_totl_s=60)


def test_a_spec_asking_more_catch_answers_than_it_has_needs_all_of_them():
    """2 catch trials with the default minimum of 4 correct: all correct passes (the rule asked
    for a share of 200% before and excluded everyone)."""
    from analysis.exclusions import CatchTrials, rules_for

    rule = next(r for r in rules_for([{"spec": {"catch_trials_per_task": 2}}])
                if isinstance(r, CatchTrials))
    rows = pd.DataFrame({"participant_id": ["good"] * 2 + ["bad"] * 2, "phase": "main",
                         "is_catch": True, "correct": [True, True, True, False]})
    result = apply_exclusions(rows, None, [rule]).participants.set_index("participant_id")
    assert not result.loc["good", "excluded"] and result.loc["bad", "excluded"]
