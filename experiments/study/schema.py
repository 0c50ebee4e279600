"""Column names and pandas dtypes of the exported dataset (documented in data/SCHEMA.md)."""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from experiments import vocabulary
from experiments.tasks.registry import DEFAULT_TASK, get_task

# One row per trial shown. Order is the export's column order: the head, the task type's own
# columns (IMI's 2-AFC: query_a, query_b, correct_choice, choice, correct, confidence), the tail.
RESPONSE_HEAD: dict[str, str] = {
    "experiment": "string",
    "participant_id": "string",
    "session_id": "string",
    "task_id": "string",
    "client": "string",
    "condition": "string",
    "difficulty": "string",
    "query_distribution": "string",
    "phase": "string",
    "is_catch": "bool",
    "is_calibration": "bool",
    "trial_index": "Int64",
    "model": "string",
    "layer": "string",
    "channel": "Int64",
    "unit_id": "string",
    "batch": "Int64",
}
RESPONSE_TAIL: dict[str, str] = {
    "rt_ms": "float64",
    "stim_onset_ms": "float64",
    "response_ms": "float64",
    "server_received_at": "datetime64[us, UTC]",
    "attempt": "Int64",
    "rt_flag": "string",
    "client_extra": "string",
    "client_recorded_at": "datetime64[us, UTC]",
    "observer": "string",
    "backbone": "string",
    "p_correct": "float64",
}
MACHINE_COLUMNS = ("observer", "backbone", "p_correct")  # machine observers' rows only

PARTICIPANT_COLUMNS: dict[str, str] = {
    "experiment": "string",
    "participant_id": "string",
    "source": "string",
    "status": "string",
    "client": "string",
    "n_sessions": "Int64",
    "started_at": "datetime64[us, UTC]",
    "finished_at": "datetime64[us, UTC]",
    "instruction_s": "float64",
    "instruction_s_claimed": "float64",
    "time_flags": "string",
    "total_s": "float64",
    "practice_attempts": "Int64",
    "excluded": "bool",
    "exclusion_reasons": "string",
    "screen_width": "Int64",
    "screen_height": "Int64",
    "window_width": "Int64",
    "window_height": "Int64",
    "device_pixel_ratio": "float64",
    "user_agent": "string",
    "frame_rate": "float64",
    "focus_losses": "Int64",
    "fullscreen_exits": "Int64",
    "reloads": "Int64",
    "image_failures": "Int64",
    "feedback": "string",
    "late_sync": "boolean",
    "lab_id": "string",
    "monitor": "string",
    "monitor_width_cm": "float64",
    "viewing_distance_cm": "float64",
    "px_per_deg": "float64",
    "reference_px": "float64",
    "query_px": "float64",
    "reference_deg": "float64",
    "query_deg": "float64",
    "gap_deg": "float64",
    "timing_verdict": "string",
    "participant_info": "string",
}

UNIT_COLUMNS: dict[str, str] = {
    "experiment": "string",
    "unit_id": "string",
    "model": "string",
    "layer": "string",
    "channel": "Int64",
    "role": "string",
    "stimulus_set": "string",
    "layer_position": "float64",
    "fv_activation": "float64",
    "top_natural_activation": "float64",
    "target_responses": "Int64",
    "selection_group": "string",
    "machine_score": "float64",
}

TRIAL_HEAD: dict[str, str] = {
    "experiment": "string",
    "task_id": "string",
    "condition": "string",
    "difficulty": "string",
    "query_distribution": "string",
    "phase": "string",
    "position": "Int64",
    "is_catch": "bool",
    "is_calibration": "bool",
    "model": "string",
    "layer": "string",
    "channel": "Int64",
    "unit_id": "string",
    "batch": "Int64",
}


def tables_for(task_names: str | Iterable[str] = (DEFAULT_TASK,)) -> dict[str, dict[str, str]]:
    """Each table's columns for a dataset of these task types (their own columns merged in
    order between the generic head and tail)."""
    names = [task_names] if isinstance(task_names, str) else list(task_names)
    tasks = [get_task(name) for name in dict.fromkeys(names)] or [get_task(DEFAULT_TASK)]
    responses, trials = dict(RESPONSE_HEAD), dict(TRIAL_HEAD)
    for task in tasks:
        responses.update(task.response_columns)
        trials.update(task.trial_columns)
    return {"responses": {**responses, **RESPONSE_TAIL}, "participants": PARTICIPANT_COLUMNS,
            "units": UNIT_COLUMNS, "trials": trials}


TABLES = tables_for()  # IMI's 2-AFC, the default task type
RESPONSE_COLUMNS, TRIAL_COLUMNS = TABLES["responses"], TABLES["trials"]

# Columns added after the first exports: a file without them reads with them empty.
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "responses": ("query_distribution", "is_calibration", "rt_flag", "client_extra", "client_recorded_at",
                  *MACHINE_COLUMNS),
    "trials": ("query_distribution", "is_calibration"),
    "units": ("selection_group", "machine_score"),
    "participants": ("instruction_s_claimed", "time_flags", "focus_losses", "fullscreen_exits",
                     "reloads", "image_failures", "feedback", "late_sync", "lab_id",
                     "monitor", "monitor_width_cm", "viewing_distance_cm", "px_per_deg",
                     "reference_px", "query_px", "reference_deg", "query_deg", "gap_deg",
                     "timing_verdict", "participant_info"),
}

SETTINGS_FILE = "experiment.json"  # beside the tables: each experiment's key and spec

CONDITIONS, DIFFICULTIES, PHASES, CLIENTS = vocabulary.CONDITIONS, vocabulary.DIFFICULTIES, \
    vocabulary.PHASES, vocabulary.CLIENTS  # re-exported for the dataset's readers


def coerce(frame: pd.DataFrame, table: str,
           tables: dict[str, dict[str, str]] | None = None) -> pd.DataFrame:
    """Return `frame` with exactly the documented columns of `table`, in order, with their
    dtypes (`tables`: those of the dataset's task types; default IMI's 2-AFC)."""
    columns = (tables or TABLES)[table]
    missing = required_missing(frame.columns, table, tables)
    if missing:
        raise ValueError(f"{table}: missing columns {', '.join(missing)}")
    out = frame.reindex(columns=list(columns))
    for name, dtype in columns.items():
        if dtype.startswith("datetime64"):
            out[name] = pd.to_datetime(out[name], utc=True, format="ISO8601").astype(dtype)
        elif dtype == "bool":  # empty (a column added later, absent from the file) = false
            out[name] = pd.Series([False if pd.isna(v) else _to_bool(v) for v in out[name]],
                                  index=out.index, dtype="bool")
        elif dtype == "boolean":  # nullable: empty in data written before the column existed
            out[name] = out[name].map(_to_bool, na_action="ignore").astype("boolean")
        elif dtype in ("Int64", "float64"):
            out[name] = pd.to_numeric(out[name], errors="raise").astype(dtype)
        else:
            out[name] = out[name].astype(dtype)
    if "query_distribution" in out:  # data from before shifted queries: the set's own queries
        out["query_distribution"] = out["query_distribution"].replace("", pd.NA).fillna(
            vocabulary.IN_DISTRIBUTION)
    return out


def required_missing(present, table: str,
                     tables: dict[str, dict[str, str]] | None = None) -> list[str]:
    """The columns `table` needs that are not in `present` (optional ones never count)."""
    optional = OPTIONAL_COLUMNS.get(table, ())
    return [c for c in (tables or TABLES)[table] if c not in present and c not in optional]


def _to_bool(value: object) -> bool:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no", ""):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return bool(value)
