"""The experiment spec: a TOML file validated with pydantic; errors name the file, key and expectation."""
from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from experiments.errors import SpecError
from experiments.tasks.base import NoParams
from experiments.tasks.registry import DEFAULT_TASK, get_task
from experiments.vocabulary import IN_DISTRIBUTION, PLATFORMS, Platform

NonNegativeInt = Annotated[int, Field(ge=0)]
# `in`, a shifted pool's label (`blur-3`) or a domain's name (stimuli.shifts)
DISTRIBUTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}(-[1-5])?$")
LEGACY_TASK_KEY = "references_per_side"  # was a top-level key; now in the [task] table
PositiveInt = Annotated[int, Field(ge=1)]


class Strict(BaseModel):
    """Base: unknown keys are errors (a typo must not silently fall back to a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Timing(Strict):
    """Trial timing in milliseconds (IMI defaults)."""

    button_lock_ms: NonNegativeInt = 1500
    feedback_delay_ms: NonNegativeInt = 350
    feedback_ms: NonNegativeInt = 1150
    main_feedback: bool = Field(
        True, description="false: the main block shows no right or wrong (practice still does)")
    auto_continue: bool = Field(
        False, description="true: the next trial starts by itself once the answer is saved "
                           "(and its feedback shown), without a Continue press")
    session_timeout_min: PositiveInt = Field(
        90, description="an in-progress session idle this long is timed out and its task freed")


class Practice(Strict):
    """The practice block: repeated until `min_correct` of `trials` are answered correctly."""

    trials: NonNegativeInt = 5
    min_correct: NonNegativeInt | None = Field(None, description="default: all trials correct")
    max_attempts: NonNegativeInt = Field(0, description="0 = repeat until passed")
    units: list[str] = Field(default_factory=list,
                             description="unit_ids; empty = reserve `trials` units (seeded)")

    @model_validator(mode="after")
    def _criterion_fits(self) -> Practice:
        if self.min_correct is not None and self.min_correct > self.trials:
            raise ValueError(f"min_correct ({self.min_correct}) exceeds trials ({self.trials})")
        if self.units and len(self.units) < self.trials:
            raise ValueError(f"{len(self.units)} units listed but {self.trials} trials needed")
        return self

    @property
    def pass_mark(self) -> int:
        return self.trials if self.min_correct is None else self.min_correct


class Catch(Strict):
    """Catch trials: the query is one of the references shown, so the answer is obvious."""

    units: list[str] = Field(default_factory=list,
                             description="unit_ids; empty = reserve trials-per-task units (seeded)")


class CalibrationTrials(Strict):
    """`[calibration]`: trials of the calibration model's units (known mechanisms; a set built
    with `interpsy stimuli build calibration-net`) shuffled into every task's main block in the
    task's condition: a per-participant control score on trials that look like all the others."""

    stimulus_set: str = Field(description="the calibration set's folder, relative to the spec")
    trials: PositiveInt = Field(4, description="calibration trials per task")
    units: list[str] = Field(default_factory=list,
                             description="unit_ids drawn from; empty = the set's detectors and "
                                         "mixtures")


class UnitSelection(Strict):
    """`[select_units]`: the main units of each unit group (a stimulus set, or all when
    `task_units = "pooled"`) chosen by a machine observer's unit scores, as in the MIS paper's
    interventional design: the `easiest` (highest score), the `hardest` (lowest) and `random`
    ones from the rest (seeded). Practice and catch units are reserved first."""

    scores: str = Field(description="an `interpsy observe` output folder, relative to the spec")
    condition: str = Field("natural", description="whose rows give the unit score (mean "
                                                  "p_correct of scored trials)")
    observer: str | None = Field(None, description="the observer's rows to use, e.g. 'mis' "
                                                   "(needed when the folder holds several)")
    easiest: NonNegativeInt = 0
    hardest: NonNegativeInt = 0
    random: NonNegativeInt = 0

    @model_validator(mode="after")
    def _some(self) -> UnitSelection:
        if self.easiest + self.hardest + self.random == 0:
            raise ValueError("choose at least one unit: easiest, hardest or random")
        return self


class InstructionPage(Strict):
    """One instruction screen: text (HTML allowed) and optional example images."""

    title: str = ""
    text: str
    images: list[str] = Field(default_factory=list, description="image ids or files")
    conditions: list[str] = Field(default_factory=list,
                                  description="show only for these; empty = all")


class Consent(Strict):
    """What the consent page (and MTurk's preview) tells people before they agree."""

    text: str = Field("", description="the study's own information, paragraphs separated by a "
                                      "blank line; empty = the built-in description of the task")
    duration: str = Field("about 15-25 minutes", description="how long the study takes")
    payment: str = Field("", description="what participants are paid, e.g. '£3.00 (£9/hour)'")
    researcher: str = Field("", description="who runs the study: name and institution")
    contact: str = Field("", description="how to reach the researchers, e.g. an e-mail address")
    ethics: str = Field("", description="the ethics approval: board and reference number")


class CompletionCodes(Strict):
    """Codes returned to the recruitment platform at the end of a session."""

    completed: str = "COMPLETED"
    failed_checks: str = "FAILED_CHECKS"
    timed_out: str = Field("TIMED_OUT", description="for a session that timed out after answering "
                                                    "and whose task went to someone else")


class Recruitment(Strict):
    """Where participants come from and what happens when they come back."""

    platforms: list[Platform] = Field(default_factory=lambda: list(PLATFORMS))
    completion_codes: CompletionCodes = CompletionCodes()
    resume_policy: Literal["resume", "restart", "block"] = "resume"
    block_participants_of: list[str] = Field(
        default_factory=list, description="names of other experiments whose participants are refused")
    reservation_min: PositiveInt = Field(
        15, description="a session holds its task this long before its first answer; after "
                        "that the task may go to the next arrival (forged sign-ups expire)")
    reward: float = Field(
        0.0, ge=0, description="what a completed session pays on the platform, e.g. 3.00: a session "
                         "that timed out after answering is owed its share of the trials "
                         "answered times this (0 = not set: the share alone is shown)")
    currency: str = Field("GBP", max_length=8, description="the reward's currency, as shown")
    max_unanswered_share: float = Field(
        0.5, gt=0, le=1, description="the share of open tasks that sessions with no answer yet may "
                                     "reserve at once; past it a new sign-up ends the oldest such "
                                     "reservation, which gets its task back (or a free one) at its "
                                     "first answer; 1 = no cap")
    max_sessions_per_network: NonNegativeInt = Field(
        4, description="in-progress sessions one IP address may hold at once; 0 = no cap")
    verify_platform_ids: bool = Field(
        False, description="refuse entries whose platform ids do not have the platform's format "
                           "(Prolific: 24 hex digits; MTurk: worker A..., assignment 30 chars)")
    prolific_study_ids: list[str] = Field(
        default_factory=list, description="with verify_platform_ids: Prolific's STUDY_ID must be "
                                          "one of these")

    def owed(self, answered: int, trials: int) -> float:
        """What a session that timed out after `answered` of its `trials` is owed (0 without a
        reward)."""
        return round(self.reward * min(1.0, answered / max(trials, 1)), 2)


class Exclusions(Strict):
    """Exclusion thresholds (IMI defaults). Exclusions flag data; they never delete it."""

    min_catch_correct: NonNegativeInt = 4
    min_calibration_correct: NonNegativeInt = Field(
        0, description="with [calibration]: calibration trials a participant must answer "
                       "correctly; 0 = report the control score without excluding anyone")
    min_row_uses: NonNegativeInt = 5
    row_uses_include_catch: bool = Field(
        True, description="count the response rows over the whole main block, catch trials "
                          "included (IMI's code); false: over scored trials only")
    min_total_s: float = Field(135.0, ge=0)
    max_total_s: float = Field(2500.0, ge=0)
    min_instruction_s: float = Field(15.0, ge=0)
    max_practice_attempts: PositiveInt = 3
    exclude_repeat: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> Exclusions:
        if self.min_total_s > self.max_total_s:
            raise ValueError("min_total_s must not exceed max_total_s")
        return self

    def unmeetable(self, main_trials: int, catch_trials: int, options: int,
                   calibration_trials: int = 0) -> list[str]:
        """What no participant of a task with this many trials (the fewest of any task) can
        meet, one sentence each."""
        found = []
        if self.min_catch_correct > catch_trials:
            found.append(f"exclusions.min_catch_correct = {self.min_catch_correct} but a task "
                         f"has {catch_trials} catch trials: the analysis then needs all of them "
                         f"correct")
        counted = main_trials + (catch_trials if self.row_uses_include_catch else 0)
        if options and self.min_row_uses * options > counted:
            found.append(f"exclusions.min_row_uses = {self.min_row_uses} needs {options} x "
                         f"{self.min_row_uses} = {self.min_row_uses * options} counted answers "
                         f"but a task has {counted} "
                         + ("(main and catch trials)" if self.row_uses_include_catch
                            else "(scored main trials)") + ": everyone would be excluded")
        if self.min_calibration_correct > calibration_trials:
            found.append(f"exclusions.min_calibration_correct = {self.min_calibration_correct} "
                         f"but a task has {calibration_trials} calibration trials")
        return found


class LabSettings(Strict):
    """Lab sessions: image sizes in degrees of visual angle (each lab session then needs a
    monitor profile: width in cm, viewing distance, resolution; none given: the trial screen
    fits the window; gamma is left to the monitor profile's calibration), and what the
    experimenter is asked about the participant at the start."""

    reference_deg: float | None = Field(None, gt=0, le=20, description="side of a reference image")
    query_deg: float | None = Field(None, gt=0, le=30, description="side of a query image; "
                                                                   "default 1.6 x reference_deg")
    gap_deg: float | None = Field(None, ge=0, le=5, description="gap between references; default "
                                                               "0.06 x reference_deg")
    participant_fields: list[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,39}$")]] = Field(
        default_factory=list, description="asked in a dialog when a lab session starts (e.g. "
                                          "age, gender, handedness); exported as participant_info")

    @model_validator(mode="after")
    def _reference_first(self) -> LabSettings:
        if self.reference_deg is None and (self.query_deg is not None or self.gap_deg is not None):
            raise ValueError("query_deg and gap_deg need reference_deg")
        return self


class TaskSettings(BaseModel):
    """The `[task]` table: the task type (`interpsy tasks` lists them) and its parameters."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    type: str = DEFAULT_TASK
    params: SerializeAsAny[BaseModel] = NoParams()

    @model_validator(mode="before")
    @classmethod
    def _type_and_params(cls, data: Any) -> Any:
        if isinstance(data, TaskSettings) or not isinstance(data, dict):
            return data
        values = dict(data)
        name = values.pop("type", DEFAULT_TASK)
        if isinstance(values.get("params"), (dict, BaseModel)):  # a stored spec: model_dump's form
            stored = values.pop("params")
            values.update(stored if isinstance(stored, dict) else stored.model_dump())
        try:
            task = get_task(name)
        except SpecError as exc:
            raise ValueError(f"type: {exc}") from None
        try:
            return {"type": name, "params": task.Params.model_validate(values)}
        except ValidationError as exc:
            raise ValueError("; ".join(f"{_location(e)}: {_expected(e)}" for e in exc.errors())
                             ) from None


def _in_vocabulary(values: list[str], info: ValidationInfo, what: str) -> None:
    """Each value one of the task type's conditions (or difficulties)."""
    settings = info.data.get("task")
    if settings is None:  # the [task] table itself did not validate
        return
    task = get_task(settings.type)
    allowed = task.conditions if what == "conditions" else task.difficulties
    for value in values:
        if value not in allowed:
            raise ValueError(f"{value!r} is not a {what.removesuffix('s')} "
                             f"of task type {task.name}; use {', '.join(allowed)}")


def _shifted_queries(values: list[str], info: ValidationInfo) -> None:
    """Names a set can hold; queries other than `in` need a task type that takes them."""
    for value in values:
        if not DISTRIBUTION_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a query distribution: use {IN_DISTRIBUTION!r}, "
                             f"a shifted pool's label (e.g. blur-3) or a domain's name")
    settings = info.data.get("task")
    if settings is None or values == [IN_DISTRIBUTION]:
        return
    task = get_task(settings.type)
    if not task.shifted_queries:
        raise ValueError(f"task type {task.name} has no shifted queries; use "
                         f"{IN_DISTRIBUTION!r} only")


class ExperimentSpec(Strict):
    """A whole experiment: stimuli, conditions, task layout, timing, recruitment, exclusions."""

    name: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    version: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")] = "1"
    seed: NonNegativeInt = 42
    description: str = ""
    # Before the keys whose vocabulary is the task type's (validated in this order).
    task: TaskSettings = Field(TaskSettings(), description="the task type and its parameters "
                                                           "(IMI's 2-AFC by default)")
    stimulus_sets: Annotated[list[str], Field(min_length=1)]
    conditions: Annotated[list[str], Field(min_length=1)] = ["natural", "synthetic"]
    difficulty: Annotated[list[str], Field(min_length=1)] = ["easy"]
    query_distribution: Annotated[list[str], Field(min_length=1)] = Field(
        [IN_DISTRIBUTION], description="where the queries come from: `in` (the set's own) and "
                                       "shifted pools or domains added with `interpsy stimuli "
                                       "shift` (e.g. blur-3); a design factor like difficulty")
    task_units: Literal["per_set", "pooled"] = Field(
        "per_set", description="per_set: a task draws its units from one stimulus set (one model)")
    main_trials_per_task: PositiveInt = 40
    catch_trials_per_task: NonNegativeInt = 5
    responses_per_unit: PositiveInt = 30
    practice: Practice = Practice()
    catch: Catch = Catch()
    timing: Timing = Timing()
    consent: Consent = Consent()
    instructions: list[InstructionPage] = Field(
        default_factory=list, description="pages shown before the built-in ones (how to answer, "
                                          "the button lock, the practice criterion)")
    recruitment: Recruitment = Recruitment()
    exclusions: Exclusions = Exclusions()
    feedback_form: bool = True
    fv_must_beat_natural: bool = Field(
        True, description="IMI's rule: units whose feature visualizations do not beat their "
                          "natural exemplars (the set's fv_beats_natural) are left out; false "
                          "keeps them")
    lab: LabSettings = LabSettings()
    select_units: UnitSelection | None = Field(
        None, description="choose the main units by a machine observer's scores")
    calibration: CalibrationTrials | None = Field(
        None, description="mix calibration trials (units with known mechanisms) into every task")

    @model_validator(mode="before")
    @classmethod
    def _layout_under_task(cls, data: Any) -> Any:
        """A top-level `references_per_side` (specs written before it moved under `[task]`)
        goes to the task type that takes it; types without it never used it."""
        if not isinstance(data, dict) or LEGACY_TASK_KEY not in data:
            return data
        values = dict(data)
        value = values.pop(LEGACY_TASK_KEY)
        task = dict(values.get("task") or {})
        table = dict(task["params"]) if isinstance(task.get("params"), dict) else task
        try:
            takes = LEGACY_TASK_KEY in get_task(task.get("type", DEFAULT_TASK)).Params.model_fields
        except SpecError:
            takes = False  # the [task] table's own check names the unknown type
        if takes:
            if table.get(LEGACY_TASK_KEY, value) != value:
                raise ValueError(f"{LEGACY_TASK_KEY} is {value} at the top level but "
                                 f"{table[LEGACY_TASK_KEY]} under [task]: give it once, under "
                                 f"[task]")
            table[LEGACY_TASK_KEY] = value
            if table is not task:
                task["params"] = table
            values["task"] = task
        return values

    @field_validator("difficulty", "query_distribution", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("conditions", "difficulty", "query_distribution")
    @classmethod
    def _no_repeats(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each value may appear only once")
        if info.field_name == "query_distribution":
            _shifted_queries(value, info)
        else:
            _in_vocabulary(value, info, info.field_name)
        return value

    @field_validator("instructions")
    @classmethod
    def _page_conditions(cls, pages: list[InstructionPage], info: ValidationInfo
                         ) -> list[InstructionPage]:
        for page in pages:
            _in_vocabulary(page.conditions, info, "conditions")
        return pages

    @model_validator(mode="after")
    def _catch_fits(self) -> ExperimentSpec:
        if self.catch.units and len(self.catch.units) < self.catch_trials_per_task:
            raise ValueError(f"catch.units lists {len(self.catch.units)} units but "
                             f"catch_trials_per_task is {self.catch_trials_per_task}")
        overlap = set(self.catch.units) & set(self.practice.units)
        if overlap:
            raise ValueError(f"units both practice and catch: {', '.join(sorted(overlap))}")
        return self

    @property
    def key(self) -> str:
        """The experiment's identity in storage and exports: `name@version`."""
        return f"{self.name}@{self.version}"


class LoadedSpec(BaseModel):
    """A validated spec with where it came from and its exact text."""

    spec: ExperimentSpec
    path: Path
    text: str
    set_paths: list[Path]
    scores_path: Path | None = None  # [select_units] scores, resolved like the sets
    calibration_path: Path | None = None  # [calibration]'s set, resolved like the sets

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def _location(error: dict) -> str:
    return ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))


def _expected(error: dict) -> str:
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        return "unknown key (check its spelling against experiments/examples/)"
    if error["type"] == "missing":
        return "required key is missing"
    given = error.get("input")
    shown = "" if isinstance(given, dict) else f" (got {given!r})"
    return f"{message[0].lower()}{message[1:]}{shown}"


def format_validation_error(path: Path | str, exc: ValidationError) -> str:
    """One line per problem: `file: key: expectation`."""
    lines = []
    for error in exc.errors():
        where = _location(error) or "(top level)"
        lines.append(f"{path}: {where}: {_expected(error)}")
    return "; ".join(lines)


def parse_spec(text: str, source: str = "<spec>") -> ExperimentSpec:
    """Validate TOML text as an experiment spec."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: not valid TOML: {exc}") from None
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(source, exc)) from None


def load_spec(path: str | Path) -> LoadedSpec:
    """Read and validate a spec file; stimulus set paths resolve against the file's folder."""
    file = Path(path)
    if not file.is_file():
        raise SpecError(f"{file}: no such spec file")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{file}: not UTF-8 text") from None
    spec = parse_spec(text, str(file))
    set_paths = [(file.parent / p).resolve() for p in spec.stimulus_sets]
    scores = (None if spec.select_units is None
              else (file.parent / spec.select_units.scores).resolve())
    calibration = (None if spec.calibration is None
                   else (file.parent / spec.calibration.stimulus_set).resolve())
    return LoadedSpec(spec=spec, path=file.resolve(), text=text, set_paths=set_paths,
                      scores_path=scores, calibration_path=calibration)


