"""Participant exclusion rules (IMI's criteria by default): flag with reasons, never drop rows."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from experiments.study.spec import Exclusions, ExperimentSpec
from experiments.tasks.registry import get_task, task_name_of_spec
from experiments.vocabulary import SessionStatus

FAILED_PRACTICE = SessionStatus.FAILED_PRACTICE.value

IMI = Exclusions()  # the thresholds' one definition: the spec's `exclusions` table and its defaults
IMI_CATCH_TRIALS = ExperimentSpec.model_fields["catch_trials_per_task"].default
POSITIONS_UNKNOWN = "query positions not in the data (choice empty)"


@dataclass
class RuleContext:
    """What a rule may look at: all responses and, when known, the participants table."""

    responses: pd.DataFrame
    participants: pd.DataFrame | None
    ids: pd.Index


@dataclass(frozen=True)
class Rule(ABC):
    """Base class: `check` returns a per-participant frame with `failed` (bool/NA) and `reason`."""

    name: str = "rule"

    def describe(self) -> str:
        """One line saying what passes."""
        return self.name

    @abstractmethod
    def check(self, ctx: RuleContext) -> pd.DataFrame:
        """Per participant: failed (True/False, NA when the data needed is missing) and reason."""

    def _result(self, ctx: RuleContext, failed: pd.Series, reason: pd.Series | str,
                missing: str = "the data it needs is missing") -> pd.DataFrame:
        """Frame of failed/reason per participant; `missing` says why a participant is NA."""
        failed = failed.reindex(ctx.ids).astype("boolean")
        if isinstance(reason, str):
            reason = pd.Series(reason, index=ctx.ids)
        reason = reason.reindex(ctx.ids).astype("string")
        reason = reason.where(failed.fillna(False).astype(bool), "")
        note = pd.Series(missing, index=ctx.ids, dtype="string").where(failed.isna(), "")
        return pd.DataFrame({"failed": failed, "reason": reason, "missing": note}, index=ctx.ids)

    def _not_applicable(self, ctx: RuleContext, why: str) -> pd.DataFrame:
        """The rule cannot be evaluated for anyone (failed NA for all), saying why."""
        return self._result(ctx, pd.Series(pd.NA, index=ctx.ids), "", missing=why)

    def _participant_column(self, ctx: RuleContext, column: str) -> pd.Series | None:
        if ctx.participants is None or column not in ctx.participants.columns:
            return None
        p = ctx.participants.drop_duplicates("participant_id").set_index("participant_id")
        values = pd.to_numeric(p[column], errors="coerce").reindex(ctx.ids)
        return None if values.isna().all() else values


@dataclass(frozen=True)
class CatchTrials(Rule):
    """At least `min_fraction` of catch trials correct (IMI: 4 of 5 = 0.8); `flag` is the
    column marking the trials checked, `label` what the reason calls them."""

    name: str = "catch_trials"
    min_fraction: float = IMI.min_catch_correct / IMI_CATCH_TRIALS
    flag: str = "is_catch"
    label: str = "catch"

    def describe(self) -> str:
        return f"catch trials correct >= {self.min_fraction:.0%} (IMI: 4 of 5)"

    def check(self, ctx: RuleContext) -> pd.DataFrame:
        r = ctx.responses
        marked = r[self.flag].fillna(False).astype(bool) if self.flag in r else False
        rows = r[marked & (r["phase"] == "main")]
        if rows.empty:
            return self._not_applicable(ctx, f"no {self.label} trials in the data")
        g = rows.groupby("participant_id", observed=True)["correct"].agg(["sum", "size"])
        g = g.reindex(ctx.ids)
        frac = g["sum"] / g["size"]
        failed = (frac < self.min_fraction - 1e-12).astype("boolean").where(g["size"].notna())
        reason = (f"{self.label} " + g["sum"].fillna(0).astype(int).astype(str) + "/"
                  + g["size"].fillna(0).astype(int).astype(str) + " correct")
        return self._result(ctx, failed, reason,
                            missing=f"no {self.label} trials for this participant")


@dataclass(frozen=True)
class CalibrationTrials(CatchTrials):
    """At least `min_fraction` of the calibration trials mixed into the main block correct (the
    spec's `[calibration]` and `exclusions.min_calibration_correct`; not IMI's)."""

    name: str = "calibration_trials"
    min_fraction: float = 0.0
    flag: str = "is_calibration"
    label: str = "calibration"

    def describe(self) -> str:
        return f"calibration trials correct >= {self.min_fraction:.0%}"


@dataclass(frozen=True)
class ResponseRows(Rule):
    """Each response option of the task type used >= `min_each` times in the main block (IMI's
    2-AFC: both rows of buttons, upper query a's and lower query b's), catch trials counted
    as IMI's code counts them unless `include_catch` is false (scored trials only).

    `column` holds the option chosen (the task type's `option_column`; IMI: `choice`, the
    displayed position); where it is empty (the IMI release records which query was chosen,
    not where it was shown) the rule is not applicable, never passed or failed.
    """

    name: str = "response_rows"
    min_each: int = IMI.min_row_uses
    column: str | None = "choice"
    options: tuple[str, ...] = ("a", "b")
    include_catch: bool = IMI.row_uses_include_catch

    def describe(self) -> str:
        counted = ("the main block, catch trials included (IMI)" if self.include_catch
                   else "scored main trials, catch trials left out (not IMI's rule)")
        return (f"each response option ({', '.join(self.options)}) chosen >= {self.min_each} "
                f"times over {counted}")

    def check(self, ctx: RuleContext) -> pd.DataFrame:
        r = ctx.responses
        if self.column is None or self.column not in r.columns or not self.options:
            return self._not_applicable(ctx, "the task type has no response-option column "
                                             "with a fixed set of options")
        counted = r["phase"] == "main"
        if not self.include_catch:
            counted &= ~r["is_catch"].fillna(False).astype(bool)
        main = r[counted & r[self.column].notna()]
        if main.empty:
            return self._not_applicable(ctx, POSITIONS_UNKNOWN)
        chosen = main[self.column].astype(str).str.lower()
        counts = (main.assign(option=chosen).groupby(["participant_id", "option"], observed=True)
                  .size().unstack(fill_value=0).reindex(ctx.ids))
        used = {o: counts.get(o.lower(), pd.Series(0, index=counts.index)).fillna(0)
                for o in self.options}
        has = counts.notna().any(axis=1)
        failed = pd.concat([n < self.min_each for n in used.values()], axis=1).any(axis=1)
        reason = "options used " + pd.concat(
            [o + "=" + n.astype(int).astype(str) for o, n in used.items()], axis=1
        ).agg(", ".join, axis=1)
        return self._result(ctx, failed.astype("boolean").where(has), reason,
                            missing=POSITIONS_UNKNOWN)


def _seconds(values: pd.Series) -> pd.Series:
    """Seconds as text with up to 3 decimals, so a value just past a threshold never prints
    as the threshold itself (14.96 s is not '15.0 s')."""
    return values.map(lambda v: "" if pd.isna(v) else f"{v:.3f}".rstrip("0").rstrip("."))


@dataclass(frozen=True)
class TotalTime(Rule):
    """Total time on the task within [min_s, max_s] seconds (IMI: 135-2500 s)."""

    name: str = "total_time"
    min_s: float = IMI.min_total_s
    max_s: float = IMI.max_total_s

    def describe(self) -> str:
        return f"total time in [{self.min_s:g}, {self.max_s:g}] s"

    def check(self, ctx: RuleContext) -> pd.DataFrame:
        total = self._participant_column(ctx, "total_s")
        if total is None:
            return self._not_applicable(ctx, "no total_s in the participants table")
        failed = ((total < self.min_s) | (total > self.max_s)).astype("boolean").where(total.notna())
        reason = "total " + _seconds(total) + " s"
        return self._result(ctx, failed, reason, missing="total_s missing")


@dataclass(frozen=True)
class InstructionTime(Rule):
    """Instructions read for at least `min_s` seconds (IMI: 15 s)."""

    name: str = "instruction_time"
    min_s: float = IMI.min_instruction_s

    def describe(self) -> str:
        return f"instructions read >= {self.min_s:g} s"

    def check(self, ctx: RuleContext) -> pd.DataFrame:
        t = self._participant_column(ctx, "instruction_s")
        if t is None:
            return self._not_applicable(ctx, "no instruction_s in the participants table")
        failed = (t < self.min_s).astype("boolean").where(t.notna())
        return self._result(ctx, failed, "instructions " + _seconds(t) + " s",
                            missing="instruction_s missing")


@dataclass(frozen=True)
class PracticeAttempts(Rule):
    """Practice block passed within `max_attempts` attempts (IMI: 3)."""

    name: str = "practice_attempts"
    max_attempts: int = IMI.max_practice_attempts

    def describe(self) -> str:
        return f"practice passed within {self.max_attempts} attempts"

    def check(self, ctx: RuleContext) -> pd.DataFrame:
        attempts = self._participant_column(ctx, "practice_attempts")
        r = ctx.responses
        if attempts is None:
            practice = r[r["phase"] == "practice"]
            if practice.empty or practice["attempt"].isna().all():
                return self._not_applicable(ctx, "no practice attempts in the data")
            # attempt is the 0-based repetition counter of practice rows
            attempts = (practice.groupby("participant_id", observed=True)["attempt"].max()
                        .astype(float) + 1).reindex(ctx.ids)
        never = failed_practice(ctx)
        failed = ((attempts > self.max_attempts) | never).astype("boolean").where(
            attempts.notna() | never)
        reason = ("practice attempts " + attempts.fillna(0).astype(int).astype(str)).where(
            ~never, "practice not passed")
        return self._result(ctx, failed, reason, missing="no practice attempts recorded")


def failed_practice(ctx: RuleContext) -> pd.Series:
    """Per participant: never passed the practice block (status failed_practice, or practice
    answers and no main-block answer)."""
    r = ctx.responses
    phases = r.groupby("participant_id", observed=True)["phase"].agg(set).reindex(ctx.ids)
    never = phases.map(lambda p: isinstance(p, set) and "practice" in p and "main" not in p)
    if ctx.participants is not None and "status" in ctx.participants.columns:
        status = (ctx.participants.drop_duplicates("participant_id")
                  .set_index("participant_id")["status"].reindex(ctx.ids))
        never |= status.astype(str).eq(FAILED_PRACTICE)
    return never.fillna(False).astype(bool)


@dataclass(frozen=True)
class RepeatParticipant(Rule):
    """A participant with more than `max_sessions` sessions is excluded with all their sessions.

    docs/analysis.md: repeat participants are excluded (flagged, every row kept), not their later
    sessions only: having seen the task before, their first session is not naive either.
    """

    name: str = "repeat_participant"
    max_sessions: int = 1

    def describe(self) -> str:
        return (f"at most {self.max_sessions} session(s) per participant "
                f"(a repeat participant is excluded with every session)")

    def check(self, ctx: RuleContext) -> pd.DataFrame:
        sessions = ctx.responses.groupby("participant_id", observed=True)["session_id"].nunique()
        sessions = sessions.reindex(ctx.ids).astype(float)
        recorded = self._participant_column(ctx, "n_sessions")
        if recorded is not None:
            sessions = np.fmax(sessions, recorded)
        failed = (sessions > self.max_sessions).astype("boolean").where(sessions.notna())
        return self._result(ctx, failed, sessions.fillna(0).astype(int).astype(str) + " sessions")


@dataclass(frozen=True)
class MinAccuracy(Rule):
    """Optional extra rule (not IMI's): main-trial accuracy at least `min_fraction`."""

    name: str = "min_accuracy"
    min_fraction: float = 0.5

    def describe(self) -> str:
        return f"main-trial accuracy >= {self.min_fraction:.0%}"

    def check(self, ctx: RuleContext) -> pd.DataFrame:
        r = ctx.responses
        main = r[(r["phase"] == "main") & ~r["is_catch"]]
        acc = main.groupby("participant_id", observed=True)["correct"].mean().reindex(ctx.ids)
        failed = (acc < self.min_fraction).astype("boolean").where(acc.notna())
        return self._result(ctx, failed, "accuracy " + (acc * 100).round(1).astype(str) + "%",
                            missing="no scored main trials")


def imi_rules(**thresholds: Any) -> list[Rule]:
    """IMI's exclusion criteria; thresholds as the spec's `exclusions` keys (IMI's defaults)."""
    return rules_from_spec({"exclusions": thresholds})


def rules_from_spec(spec: Mapping[str, Any]) -> list[Rule]:
    """IMI's rules with the thresholds an experiment spec (its `exclusions` table) sets."""
    values = Exclusions.model_validate(spec.get("exclusions") or {})
    n_catch = int(spec.get("catch_trials_per_task") or IMI_CATCH_TRIALS)
    task_type = get_task(task_name_of_spec(spec))
    # a spec asking more correct catch answers than it has catch trials needs all of them
    need = min(values.min_catch_correct, n_catch)
    calibration = spec.get("calibration") or {}
    n_known = int(calibration.get("trials") or 0)
    known = ([CalibrationTrials(min_fraction=min(values.min_calibration_correct, n_known)
                                / n_known)]
             if n_known and values.min_calibration_correct else [])
    return [CatchTrials(min_fraction=need / n_catch if n_catch else 0.0), *known,
            ResponseRows(min_each=values.min_row_uses, column=task_type.option_column,
                         options=tuple(task_type.options),
                         include_catch=values.row_uses_include_catch),
            TotalTime(min_s=values.min_total_s, max_s=values.max_total_s),
            InstructionTime(min_s=values.min_instruction_s),
            PracticeAttempts(max_attempts=values.max_practice_attempts),
            RepeatParticipant(max_sessions=1 if values.exclude_repeat else 1_000_000)]


def rules_for(settings: Sequence[Mapping[str, Any]]) -> list[Rule]:
    """The rules of the exported experiment(s); IMI defaults when none or when they disagree."""
    specs = [s.get("spec") or {} for s in settings]
    distinct = {repr(sorted((s.get("exclusions") or {}).items())) + repr(s.get("catch_trials_per_task"))
                + repr(s.get("calibration")) for s in specs}
    return rules_from_spec(specs[0]) if specs and len(distinct) == 1 else imi_rules()


def select_rules(names: Sequence[str], settings: Sequence[Mapping[str, Any]] = ()) -> list[Rule]:
    """The rules named (from the experiment's own rules, IMI's by default), in that order."""
    available = {r.name: r for r in [*rules_for(settings), MinAccuracy()]}
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown exclusion rule(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(available)}")
    return [available[n] for n in names]


@dataclass
class ExclusionResult:
    """Responses with `excluded`/`exclusion_reasons` added, per-participant flags and a summary."""

    responses: pd.DataFrame
    participants: pd.DataFrame
    summary: pd.DataFrame
    rules: list[Rule] = field(default_factory=list)

    @property
    def included(self) -> pd.DataFrame:
        """The responses of participants who passed every rule (a view for analysis, a copy)."""
        return self.responses[~self.responses["excluded"]]


def _applicability(result: pd.DataFrame) -> str:
    """'not applicable: why' when no participant could be evaluated, else who could not and why."""
    unknown = result["failed"].isna()
    if not unknown.any():
        return ""
    missing = result.get("missing", pd.Series("", index=result.index))
    why = "; ".join(sorted(set(missing[unknown].fillna("").astype(str)) - {""})) or "data missing"
    if unknown.all():
        return f"not applicable: {why}"
    return f"{int(unknown.sum())} not evaluable: {why}"


def apply_exclusions(responses: pd.DataFrame, participants: pd.DataFrame | None = None,
                     rules: Sequence[Rule] | None = None) -> ExclusionResult:
    """Evaluate `rules` per participant; add flags and reasons to every row; drop nothing."""
    rules = list(imi_rules() if rules is None else rules)
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise ValueError(f"rule names must be unique, got {names}")
    ids = pd.Index(pd.unique(responses["participant_id"].dropna()), name="participant_id")
    ctx = RuleContext(responses=responses, participants=participants, ids=ids)
    flags = pd.DataFrame(index=ids)
    reasons = pd.Series("", index=ids, dtype="string")
    evaluated, notes = {}, {}
    for rule in rules:
        result = rule.check(ctx)
        flags[f"fail_{rule.name}"] = result["failed"]
        evaluated[rule.name] = result["failed"].notna()
        notes[rule.name] = _applicability(result)
        text = rule.name + " (" + result["reason"] + ")"
        add = result["failed"].fillna(False).astype(bool)
        reasons = reasons.where(~add, reasons.where(reasons == "", reasons + "; ") + text)
    fail_cols = [f"fail_{n}" for n in names]
    excluded = (flags[fail_cols].fillna(False).astype(bool).any(axis=1) if fail_cols
                else pd.Series(False, index=ids))
    flags["excluded"] = excluded
    flags["exclusion_reasons"] = reasons
    flags = flags.reset_index()

    out = responses.copy()
    lookup = flags.set_index("participant_id")
    out["excluded"] = out["participant_id"].map(lookup["excluded"]).fillna(False).astype(bool)
    out["exclusion_reasons"] = (out["participant_id"].map(lookup["exclusion_reasons"])
                                .fillna("").astype("string"))

    rows = []
    bool_flags = flags[fail_cols].fillna(False).astype(bool) if fail_cols else flags[[]]
    for rule in rules:
        col = f"fail_{rule.name}"
        failed = bool_flags[col]
        only = failed & ~bool_flags.drop(columns=col).any(axis=1)
        rows.append({"rule": rule.name, "criterion": rule.describe(),
                     "evaluated": int(evaluated[rule.name].sum()),
                     "not_evaluable": int((~evaluated[rule.name]).sum()),
                     "excluded": int(failed.sum()), "excluded_only_by_this_rule": int(only.sum()),
                     "note": notes[rule.name]})
    never = failed_practice(ctx)
    rows.append({"rule": "failed_practice", "criterion": "never passed the practice block: no "
                 "main-block answer (counted apart; excluded when practice_attempts applies)",
                 "evaluated": len(ids), "not_evaluable": 0, "excluded": int(never.sum()),
                 "excluded_only_by_this_rule": np.nan, "note": ""})
    rows.append({"rule": "any", "criterion": "excluded by at least one rule",
                 "evaluated": len(ids), "not_evaluable": 0, "excluded": int(excluded.sum()),
                 "excluded_only_by_this_rule": np.nan, "note": ""})
    kept = ~excluded & ~never.to_numpy()
    rows.append({"rule": "kept", "criterion": "participants who passed every rule and "
                 "answered main-block trials", "evaluated": len(ids), "not_evaluable": 0,
                 "excluded": int(kept.sum()),
                 "excluded_only_by_this_rule": np.nan, "note": ""})
    summary = pd.DataFrame(rows).rename(columns={"excluded": "participants"})
    return ExclusionResult(responses=out, participants=flags, summary=summary, rules=rules)


def session_flags(responses: pd.DataFrame, sessions: pd.DataFrame, spec: Mapping[str, Any]
                  ) -> dict[str, list[str]]:
    """Per session, the reasons the spec's rules flag it so far: the admin's hint while a study
    runs, from the rules the analysis applies. Each session stands as its own participant
    (`participant_id` = the session) in both frames; the repeat rule needs a participant's
    other sessions and is left to the analysis."""
    rules = [r for r in rules_from_spec(spec) if not isinstance(r, RepeatParticipant)]
    ids = pd.Index(pd.unique(sessions["participant_id"]), name="participant_id")
    ctx = RuleContext(responses=responses, participants=sessions, ids=ids)
    found: dict[str, list[str]] = {str(i): [] for i in ids}
    for rule in rules:
        result = rule.check(ctx)
        for i in result.index[result["failed"].fillna(False).astype(bool)]:
            found[str(i)].append(str(result.at[i, "reason"]))
    return found


__all__ = [
    "POSITIONS_UNKNOWN",
    "CatchTrials",
    "ExclusionResult",
    "InstructionTime",
    "MinAccuracy",
    "PracticeAttempts",
    "RepeatParticipant",
    "ResponseRows",
    "Rule",
    "TotalTime",
    "apply_exclusions",
    "imi_rules",
    "rules_for",
    "select_rules",
    "session_flags",
]
