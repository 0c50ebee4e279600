"""Export an experiment to the response dataset (data/SCHEMA.md): responses, participants, units, trials."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pandas as pd
from sqlalchemy import func, select

from experiments.db import Database
from experiments.db.lookup import experiments_named
from experiments.db.models import (
    Event,
    Experiment,
    Participant,
    Response,
    Session,
    StimulusSetRecord,
    Task,
    Trial,
    Unit,
)
from experiments.errors import InterpsyError
from experiments.study.schema import SETTINGS_FILE, TABLES, coerce, tables_for
from experiments.tasks import TaskType, get_task
from experiments.tasks.registry import task_name_of_spec
from experiments.vocabulary import SessionStatus

Format = Literal["parquet", "csv"]
CLIENT_INFO_COLUMNS = ("screen_width", "screen_height", "window_width", "window_height",
                       "device_pixel_ratio", "user_agent", "frame_rate", "monitor",
                       "monitor_width_cm", "viewing_distance_cm", "px_per_deg", "reference_px",
                       "query_px", "reference_deg", "query_deg", "gap_deg", "timing_verdict")


def pseudonym(number: int) -> str:
    """The exported participant id: P0001, P0002, ..."""
    return f"P{number:04d}"


def _response_rows(session, experiment: Experiment) -> list[dict]:
    query = (select(Response, Session, Participant.number, Task.task_key, Trial)
             .join(Session, Session.id == Response.session_id)
             .join(Participant, Participant.id == Session.participant_id)
             .join(Task, Task.id == Session.task_id)
             .join(Trial, Trial.id == Response.trial_id)
             .where(Session.experiment_id == experiment.id)
             .order_by(Participant.number, Session.started_at, Session.id, Response.trial_index))
    rows = []
    task_type = task_of_experiment(experiment)
    for response, sess, number, task_key, trial in session.execute(query):
        rows.append({
            "experiment": experiment.key, "participant_id": pseudonym(number),
            "session_id": sess.id, "task_id": task_key, "client": sess.client,
            "condition": trial.condition, "difficulty": trial.difficulty,
            "query_distribution": trial.query_distribution, "phase": trial.phase,
            "is_catch": trial.is_catch, "is_calibration": trial.is_calibration,
            "trial_index": response.trial_index,
            "model": trial.model, "layer": trial.layer, "channel": trial.channel,
            "unit_id": trial.unit_id, "batch": trial.batch,
            **task_type.response_values(trial.stimulus, trial.answer_key, response.answer,
                                   response.correct),
            "rt_ms": response.rt_ms,
            "stim_onset_ms": response.stim_onset_ms, "response_ms": response.response_ms,
            "server_received_at": response.server_received_at, "attempt": response.attempt,
            "rt_flag": response.rt_flag,
            "client_extra": json.dumps(response.client_extra, sort_keys=True)
            if response.client_extra else None,
            "client_recorded_at": response.client_recorded_at})
    return rows


# Client events counted per participant in the export (the page's kinds, stored as client_*).
ATTENTION_EVENTS = {"focus_losses": "client_focus_lost", "fullscreen_exits": "client_fullscreen_exit",
                    "reloads": "client_page_load", "image_failures": "client_image_failed"}


def _attention(session, experiment: Experiment) -> tuple[dict, dict]:
    """Per session: {column: count} of attention events, and the last screen check's facts."""
    counts: dict[str, dict[str, int]] = {}
    kinds = {kind: column for column, kind in ATTENTION_EVENTS.items()}
    for session_id, kind, n in session.execute(
            select(Event.session_id, Event.kind, func.count())
            .where(Event.experiment_id == experiment.id, Event.kind.in_(list(kinds)))
            .group_by(Event.session_id, Event.kind)):
        counts.setdefault(session_id, {})[kinds[kind]] = n
    screens = {session_id: payload for session_id, payload in session.execute(
        select(Event.session_id, Event.payload).where(
            Event.experiment_id == experiment.id, Event.kind == "client_screen")
        .order_by(Event.id))}
    return counts, screens


def _participant_rows(session, experiment: Experiment) -> list[dict]:
    rows = []
    counts, screens = _attention(session, experiment)
    participants = session.scalars(select(Participant).where(
        Participant.experiment_id == experiment.id).order_by(Participant.number)).all()
    for participant in participants:
        sessions = sorted(participant.sessions, key=lambda s: (s.started_at, s.id))
        if not sessions:
            continue
        latest = sessions[-1]
        reasons = [r for s in sessions for r in s.exclusion_reasons]
        if latest.status == SessionStatus.FAILED_PRACTICE:
            reasons.append(f"practice not passed in {latest.practice_attempts} attempts")
        finished = latest.finished_at
        info = latest.client_info or {}
        row = {
            "experiment": experiment.key, "participant_id": pseudonym(participant.number),
            "source": participant.source, "status": _participant_status(latest.status),
            "client": latest.client, "n_sessions": len(sessions),
            "started_at": sessions[0].started_at, "finished_at": finished,
            "instruction_s": sum(s.instruction_s or 0.0 for s in sessions)
            if any(s.instruction_s is not None for s in sessions) else None,
            "instruction_s_claimed": sum(s.instruction_s_claimed or 0.0 for s in sessions)
            if any(s.instruction_s_claimed is not None for s in sessions) else None,
            "time_flags": "; ".join(f for s in sessions for f in (s.time_flags or [])) or None,
            "total_s": (finished - latest.started_at).total_seconds() if finished else None,
            "practice_attempts": latest.practice_attempts,
            "excluded": any(s.status == SessionStatus.EXCLUDED for s in sessions) or bool(reasons),
            "exclusion_reasons": "; ".join(reasons) or None}
        for column in CLIENT_INFO_COLUMNS:
            row[column] = info.get(column)
        given = next((s.client_info["participant_info"] for s in sessions
                      if (s.client_info or {}).get("participant_info")), None)
        row["participant_info"] = json.dumps(given, sort_keys=True) if given else None
        if row["frame_rate"] is None:  # the web page measures it at the screen check
            row["frame_rate"] = next((screens[s.id].get("frame_rate") for s in reversed(sessions)
                                      if s.id in screens), None)
        for column in ATTENTION_EVENTS:
            row[column] = sum(counts.get(s.id, {}).get(column, 0) for s in sessions)
        row["reloads"] = max(0, row["reloads"] - len(sessions))  # the first load is no reload
        row["feedback"] = "\n".join(s.feedback for s in sessions if s.feedback) or None
        row["late_sync"] = any(s.late_of is not None for s in sessions)
        # The id the experimenter typed in the lab (a lab's own code, not a platform's id).
        row["lab_id"] = participant.platform_id if participant.source == "lab" else None
        rows.append(row)
    return rows


def _participant_status(session_status: str) -> str:
    started = (SessionStatus.ACTIVE, SessionStatus.RESTARTED)
    return "started" if session_status in started else str(session_status)


def unit_rows(session, experiment: Experiment) -> list[dict]:
    names = dict(session.execute(select(StimulusSetRecord.id, StimulusSetRecord.name).where(
        StimulusSetRecord.experiment_id == experiment.id)).all())
    units = session.scalars(select(Unit).where(Unit.experiment_id == experiment.id)
                            .order_by(Unit.unit_id)).all()
    return [{"experiment": experiment.key, "unit_id": u.unit_id, "model": u.model,
             "layer": u.layer, "channel": u.channel, "role": u.role,
             "stimulus_set": names[u.set_id], "layer_position": u.layer_position,
             "fv_activation": u.fv_activation, "top_natural_activation": u.top_natural_activation,
             "target_responses": u.target_responses, "selection_group": u.selection_group,
             "machine_score": u.machine_score} for u in units]


def _trial_rows(session, experiment: Experiment) -> list[dict]:
    query = (select(Task.task_key, Trial).join(Trial, Trial.task_id == Task.id)
             .where(Task.experiment_id == experiment.id).order_by(Task.task_key, Trial.ordinal))
    task_type = task_of_experiment(experiment)
    return [{"experiment": experiment.key, "task_id": key, "condition": t.condition,
             "difficulty": t.difficulty, "query_distribution": t.query_distribution,
             "phase": t.phase, "position": t.position,
             "is_catch": t.is_catch, "is_calibration": t.is_calibration, "model": t.model,
             "layer": t.layer, "channel": t.channel,
             "unit_id": t.unit_id, "batch": t.batch, **task_type.trial_values(t.stimulus, t.answer_key)}
            for key, t in session.execute(query)]


def task_of_experiment(experiment: Experiment) -> TaskType:
    """The task type an experiment was built with (its stored spec's `[task]` type)."""
    return get_task(task_name_of_spec(experiment.spec_json))


BUILDERS = {"responses": _response_rows, "participants": _participant_rows,
            "units": unit_rows, "trials": _trial_rows}


def frames_from_db(db: Database, experiment: str | None = None) -> dict[str, pd.DataFrame]:
    """The dataset tables of one experiment (or all) as DataFrames with the documented dtypes."""
    with db.read() as session:
        chosen = experiments_named(session, experiment)
        tables = tables_for(task_of_experiment(exp).name for exp in chosen)
        frames = {}
        for table, builder in BUILDERS.items():
            rows = [row for exp in chosen for row in builder(session, exp)]
            frame = pd.DataFrame(rows, columns=list(tables[table]))
            frames[table] = coerce(frame, table, tables)
    return frames


def experiment_settings(db: Database, experiment: str | None = None) -> list[dict]:
    """Each experiment's key and validated spec (exclusion thresholds, design) as plain data."""
    with db.read() as session:
        return [{"experiment": exp.key, "seed": exp.seed, "spec_sha256": exp.spec_sha256,
                 "spec": exp.spec_json} for exp in experiments_named(session, experiment)]


def dataset_frames(database_url: str, experiment: str | None = None) -> dict:
    """Like frames_from_db, from a database URL, plus `settings` (what analysis.load calls)."""
    db = Database(database_url)
    try:
        db.require_current()
        frames = frames_from_db(db, experiment)
        frames["settings"] = experiment_settings(db, experiment)
        return frames
    finally:
        db.dispose()


def write_frames(frames: dict[str, pd.DataFrame], out_dir: str | Path, fmt: Format) -> list[Path]:
    """Write each table as `<table>.<fmt>`; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for table, frame in frames.items():
        path = out / f"{table}.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        elif fmt == "csv":
            frame.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
        else:
            raise InterpsyError(f"unknown export format {fmt!r}; use parquet or csv")
        written.append(path)
    return written


def export_experiment(db: Database, experiment: str, out_dir: str | Path,
                      fmt: Format = "parquet") -> list[Path]:
    """`interpsy export`: the dataset tables plus `experiment.json` (the spec) in `out_dir`."""
    written = write_frames(frames_from_db(db, experiment), out_dir, fmt)
    settings = Path(out_dir) / SETTINGS_FILE
    settings.write_text(json.dumps(experiment_settings(db, experiment), indent=2, sort_keys=True))
    return [*written, settings]


def read_table(path: str | Path, table: str | None = None) -> pd.DataFrame:
    """Read one exported table (parquet or CSV) with the documented dtypes."""
    file = Path(path)
    table = table or file.stem
    if table not in TABLES:
        raise InterpsyError(f"{file}: unknown table {table!r} (expected one of {', '.join(TABLES)})")
    if file.suffix == ".parquet":
        frame = pd.read_parquet(file)
    else:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False, na_values=[""])
    return coerce(frame, table)
