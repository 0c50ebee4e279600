"""Load response datasets: interpsy exports, database URLs, foreign trial CSVs and the IMI release."""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.scores import main_trials
from experiments.errors import InterpsyError
from experiments.study.schema import (
    PARTICIPANT_COLUMNS,
    RESPONSE_COLUMNS,
    SETTINGS_FILE,
    TABLES,
    TRIAL_COLUMNS,
    UNIT_COLUMNS,
    coerce,
    required_missing,
    tables_for,
)
from experiments.tasks import TaskType, get_task
from experiments.tasks.registry import DEFAULT_TASK, task_name_of_spec

TABLE_NAMES = ("responses", "participants", "units", "trials")
MODEL_COLUMNS = ("model", "display_name", "parameters", "train_images", "top1", "top1_kind",
                 "certain", "note")

# Columns a foreign trial CSV must provide (after renaming); everything else has a default.
REQUIRED_TRIAL_COLUMNS = ("participant_id", "model", "condition", "correct")


class DataError(InterpsyError):
    """A dataset that cannot be read or does not follow the schema."""


@dataclass
class Dataset:
    """The tables of one response dataset; tables that were not supplied are None."""

    responses: pd.DataFrame
    participants: pd.DataFrame | None = None
    units: pd.DataFrame | None = None
    trials: pd.DataFrame | None = None
    models: pd.DataFrame = field(default_factory=lambda: imi_models())
    source: str = ""
    truth: dict[str, Any] = field(default_factory=dict)
    settings: list[dict[str, Any]] = field(default_factory=list)  # experiment.json: key + spec
    # What loading did that the report must show: rows removed per column (read_trials drop=)
    # and one line per such fact (rows removed, query positions unknown, units file used).
    dropped_rows: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Carry what a loader recorded in the responses' attrs (dropped_rows, notes)."""
        attrs = self.responses.attrs
        if not self.dropped_rows:
            self.dropped_rows = {str(k): int(v) for k, v in attrs.get("dropped_rows", {}).items()}
        if not self.notes:
            self.notes = [str(n) for n in attrs.get("notes", [])]

    def save(self, folder: str | Path, fmt: str = "parquet") -> Path:
        """Write the tables as an interpsy export folder (parquet or csv)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in TABLE_NAMES:
            frame = getattr(self, name)
            if frame is None:
                continue
            if fmt == "parquet":
                frame.to_parquet(folder / f"{name}.parquet", index=False)
            else:
                frame.to_csv(folder / f"{name}.csv", index=False)
        return folder


def is_database_url(text: str) -> bool:
    """Whether `text` looks like an SQLAlchemy database URL."""
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+]*://", str(text)))


def load(path: str | Path, experiment: str | None = None, table: str = "responses"
         ) -> pd.DataFrame:
    """One table of an export folder, file or database URL in the documented columns and
    dtypes: the responses, or `table` "participants", "units" or "trials"."""
    if table not in TABLE_NAMES:
        raise DataError(f"table must be one of {', '.join(TABLE_NAMES)}, got {table!r}")
    frame = getattr(load_dataset(path, experiment=experiment), table)
    if frame is None:
        raise DataError(f"{path}: no {table} table")
    return frame


def load_dataset(path: str | Path, experiment: str | None = None,
                 models: str | Path | pd.DataFrame | None = None) -> Dataset:
    """Load every table of a dataset from an export folder, a responses file or a database URL."""
    text = str(path)
    settings: list[dict[str, Any]] = []
    if is_database_url(text):
        frames = _from_database(text, experiment)
        settings = frames.pop("settings", [])
    else:
        p = Path(path)
        if p.is_dir():
            settings = _read_settings(p / SETTINGS_FILE)
            tables = tables_for([task_of(settings).name])  # the task type's own columns
            frames = {}
            for name in TABLE_NAMES:
                found = _find_table(p, name)
                if found is not None:
                    frames[name] = _read_table(found, name, tables)
            if "responses" not in frames:
                raise DataError(f"{p}: no responses.parquet or responses.csv in this folder")
        elif p.is_file():
            frames = {"responses": _read_table(p, "responses")}
        else:
            raise DataError(f"{p}: no such file, folder or database URL")
        if experiment is not None:
            frames = {name: _filter_experiment(f, experiment) for name, f in frames.items()}
            if frames["responses"].empty:
                raise DataError(f"{p}: no responses for experiment {experiment!r}")
    return Dataset(responses=frames["responses"], participants=frames.get("participants"),
                   units=frames.get("units"), trials=frames.get("trials"),
                   models=read_models(models), source=text,
                   settings=[x for x in settings if experiment is None
                             or x.get("experiment", "").split("@")[0] == experiment.split("@")[0]])


def task_of(settings: Sequence[Mapping[str, Any]]) -> TaskType:
    """The task type of the exported experiments (IMI's 2-AFC when no spec says otherwise)."""
    names = {task_name_of_spec(s.get("spec")) for s in settings} or {DEFAULT_TASK}
    if len(names) > 1:
        raise DataError(f"the dataset mixes task types {', '.join(sorted(names))}; analyse each "
                        f"type's experiments on their own")
    try:
        return get_task(names.pop())
    except InterpsyError as exc:
        raise DataError(f"experiment.json: {exc} (install the package that defines it)") from None


def _read_settings(path: Path) -> list[dict[str, Any]]:
    """The exported experiment.json (each experiment's spec), or [] when absent."""
    if not path.is_file():
        return []
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(value, list):
        raise DataError(f"{path}: expected a list of experiments")
    return value


def _from_database(url: str, experiment: str | None) -> dict[str, pd.DataFrame]:
    """Read the tables through experiments.study.export (imported here so the base stays light)."""
    try:
        from experiments.study.export import dataset_frames
    except ImportError as exc:  # pragma: no cover - depends on the installed experiments package
        raise DataError(f"reading a database needs experiments.study.export ({exc})") from exc
    try:
        frames = dataset_frames(url, experiment)
    except InterpsyError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read the database {url!r}: {exc}") from exc
    if "responses" not in frames or frames["responses"] is None:
        raise DataError(f"{url}: the database returned no responses table")
    return {k: v for k, v in frames.items() if v is not None}


def _find_table(folder: Path, name: str) -> Path | None:
    """The parquet or CSV file of a table in an export folder, if any."""
    for suffix in (".parquet", ".csv", ".csv.gz"):
        candidate = folder / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    return None


def _source_name(source: str | Path | pd.DataFrame) -> str:
    """How errors name a source: its path, or 'data frame'."""
    return "data frame" if isinstance(source, pd.DataFrame) else str(source)


def _raw_table(source: str | Path | pd.DataFrame, string_columns: tuple[str, ...] = ()
               ) -> pd.DataFrame:
    """A copy of a given frame, or the file read without coercion."""
    if isinstance(source, pd.DataFrame):
        return source.copy()
    return _read_raw(Path(source), string_columns)


def _read_raw(path: Path, string_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a parquet or CSV file without coercion."""
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith(".parquet"):
            return pd.read_parquet(path)
        if ".csv" in suffixes or ".tsv" in suffixes or suffixes.endswith(".txt"):
            sep = "\t" if ".tsv" in suffixes else ","
            head = pd.read_csv(path, sep=sep, nrows=0)
            dtype = {c: "string" for c in head.columns if c in string_columns}
            return pd.read_csv(path, sep=sep, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    raise DataError(f"{path}: unknown file type (expected .parquet or .csv)")


def _read_table(path: Path, table: str, tables: dict[str, dict[str, str]] | None = None
                ) -> pd.DataFrame:
    """Read one exported table and coerce it to the schema (`tables`: the task type's, default
    IMI's 2-AFC), naming missing columns."""
    tables = tables or TABLES
    columns = tables[table]
    strings = tuple(c for c, d in columns.items() if d == "string")
    frame = _read_raw(path, strings)
    missing = required_missing(frame.columns, table, tables)
    if missing:
        hint = (" (for another lab's format use analysis.read_trials or analysis.read_imi)"
                if table == "responses" else "")
        raise DataError(f"{path}: missing columns {', '.join(missing)}{hint}")
    try:
        return coerce(frame, table, tables)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: {exc}") from exc


def _filter_experiment(frame: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """Rows of one experiment (tables without an experiment column are kept whole)."""
    if "experiment" not in frame.columns:
        return frame
    return frame[frame["experiment"] == experiment].reset_index(drop=True)


def _normalise_name(name: str) -> str:
    """Lower-case alphanumerics only, for matching model names across sources."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def imi_models() -> pd.DataFrame:
    """The shipped scale metadata of IMI's nine models (parameters, train_images, top1)."""
    raw = json.loads(resources.files("analysis").joinpath("models.json").read_text("utf-8"))
    frame = pd.DataFrame(raw["models"])
    frame["aliases"] = frame["aliases"].map(lambda a: ";".join(a))
    return frame


def read_models(models: str | Path | pd.DataFrame | None = None) -> pd.DataFrame:
    """Model metadata (model, parameters, train_images, top1) from a file, a frame or the IMI default."""
    if models is None:
        return imi_models()
    frame = models.copy() if isinstance(models, pd.DataFrame) else _read_raw(Path(models))
    if "model" not in frame.columns:
        raise DataError("model metadata needs a 'model' column "
                        "(and any of parameters, train_images, top1)")
    for column in ("parameters", "train_images", "top1"):
        if column not in frame.columns:
            frame[column] = np.nan
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


_UNITS_HINT = "give it as a number"


def read_units(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """A units table (unit_id or model+layer+channel, layer_position in [0, 1]) in the schema."""
    name = _source_name(source)
    raw = _raw_table(source, tuple(c for c, d in UNIT_COLUMNS.items() if d == "string"))
    missing = [] if "layer_position" in raw.columns else ["layer_position"]
    if "unit_id" not in raw.columns and not {"model", "layer", "channel"} <= set(raw.columns):
        missing.append("unit_id (or model, layer and channel)")
    if missing:
        raise DataError(f"{name}: the units table lacks columns {', '.join(missing)} "
                        f"(the file has: {', '.join(map(str, raw.columns)) or 'none'})")
    frame = raw.copy()
    frame["layer_position"] = _layer_positions(frame["layer_position"], name)
    if "channel" in frame.columns:
        frame["channel"] = _whole(_numeric(frame["channel"], "channel", name, _UNITS_HINT),
                                  "channel", name)
    if "unit_id" not in frame.columns:
        frame["unit_id"] = _unit_ids(frame["model"], frame["layer"], frame["channel"])
    clash = frame.drop_duplicates(["unit_id", "layer_position"])["unit_id"]
    if clash.duplicated().any():
        shown = ", ".join(map(repr, clash[clash.duplicated()].unique()[:5]))
        raise DataError(f"{name}: units listed twice with different layer_position: {shown}")
    for column in UNIT_COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.NA
    try:
        return coerce(frame, "units")
    except (ValueError, TypeError) as exc:
        raise DataError(f"{name}: {exc}") from exc


def _layer_positions(series: pd.Series, name: str) -> pd.Series:
    """layer_position parsed (empty = depth unknown); values outside [0, 1] are an error."""
    position = _numeric(series, "layer_position", name, _UNITS_HINT)
    if position.isna().all():
        raise DataError(f"{name}: layer_position is empty in every row")
    bad = (position < 0) | (position > 1)
    if bad.any():
        rows = ", ".join(map(str, series.index[bad.to_numpy()][:5]))
        shown = ", ".join(map(repr, series[bad].astype(object).head(5)))
        raise DataError(f"{name}: layer_position must be a relative depth in [0, 1]; "
                        f"{int(bad.sum())} rows are not (rows {rows}: {shown})")
    return position.astype(float)


def attach_units(dataset: Dataset, source: str | Path | pd.DataFrame) -> Dataset:
    """The dataset with the units table read from `source` (must match its scored units)."""
    units = read_units(source)
    scored = pd.Index(main_trials(dataset.responses, include_excluded=True)["unit_id"]
                      .dropna().unique())
    known = units.loc[units["layer_position"].notna(), "unit_id"]
    matched = scored.isin(known)
    name = _source_name(source)
    if len(scored) and not matched.any():
        raise DataError(f"{name}: no unit with a layer_position matches the responses' unit_id "
                        f"(units file: {', '.join(known.astype(str).head(3))}; responses: "
                        f"{', '.join(scored.astype(str)[:3])}); unit_id is model/layer/channel")
    note = (f"{name}: units table with layer_position for {int(matched.sum())} of "
            f"{len(scored)} scored units")
    if not matched.all():
        absent = scored[~matched].astype(str)
        note += f" (no depth for {', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''})"
    return replace(dataset, units=units, notes=[*dataset.notes, note])


def attach_model_metadata(frame: pd.DataFrame, models: pd.DataFrame,
                          columns: tuple[str, ...] = ("parameters", "train_images", "top1")
                          ) -> pd.DataFrame:
    """Add scale columns to a frame with a `model` column, matching names and aliases loosely."""
    lookup: dict[str, int] = {}
    for i, row in models.reset_index(drop=True).iterrows():
        names = [row["model"]] + str(row.get("aliases", "") or "").split(";")
        for name in names:
            if name and name != "nan":
                lookup.setdefault(_normalise_name(name), i)
    meta = models.reset_index(drop=True)
    out = frame.copy()
    index = out["model"].astype(str).map(lambda m: lookup.get(_normalise_name(m), -1))
    for column in columns:
        values = meta[column].to_numpy(dtype=float) if column in meta else np.full(len(meta), np.nan)
        out[column] = np.where(index >= 0, values[index.clip(lower=0)], np.nan)
    return out


def model_order(names: Iterable[str], models: pd.DataFrame | None = None) -> list[str]:
    """Models as IMI orders them ('ordered by scale': its figures' order, `imi_order`), the
    others after them by parameter count, then by name."""
    names = list(dict.fromkeys(str(n) for n in names))
    meta = attach_model_metadata(pd.DataFrame({"model": names}),
                                 imi_models() if models is None else models,
                                 ("imi_order", "parameters"))
    if models is not None and meta["imi_order"].isna().all():
        meta["imi_order"] = attach_model_metadata(meta[["model"]], imi_models(),
                                                  ("imi_order",))["imi_order"]
    key = meta.assign(o=meta["imi_order"].fillna(np.inf), p=meta["parameters"].fillna(np.inf))
    return key.sort_values(["o", "p", "model"], kind="stable")["model"].tolist()


def sort_by_model(frame: pd.DataFrame, models: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows ordered by `model_order` (model "all" first), the order within a model kept."""
    if frame is None or frame.empty or "model" not in frame.columns:
        return frame
    names = [m for m in frame["model"].astype(str).unique() if m != "all"]
    rank = {m: i for i, m in enumerate(["all", *model_order(names, models)])}
    position = frame["model"].astype(str).map(rank)
    return frame.iloc[np.argsort(position.to_numpy(), kind="stable")].reset_index(drop=True)


# ----------------------------------------------------------------------------- foreign formats

_TRUE = {"true", "1", "yes", "y", "t", "correct"}
_FALSE = {"false", "0", "no", "n", "f", "incorrect", ""}


def _parse_bool(series: pd.Series, name: str, source: str) -> pd.Series:
    """Parse booleans written as bool, 0/1 or 'True'/'False' strings; name bad values."""
    if series.dtype == bool:
        return series
    text = series.astype("string").str.strip().str.lower()
    text = text.str.replace(r"\.0$", "", regex=True)
    out = pd.Series(pd.NA, index=series.index, dtype="boolean")
    out[text.isin(_TRUE).fillna(False)] = True
    out[text.isin(_FALSE).fillna(False)] = False
    bad = series[out.isna()]
    if len(bad):
        shown = ", ".join(map(repr, pd.unique(bad.astype(object))[:5]))
        raise DataError(f"{source}: column {name!r} has values that are not booleans: {shown}")
    return out.astype(bool)


# read_trials works in this order (each step is optional):
#   combine  {new: (their_a, their_b, ...)}: build a column by joining the file's own columns with
#            "/" before anything is renamed, e.g. {"unit_id": ("layer", "branch", "feature")};
#   columns  {theirs: ours}: rename; a foreign column whose values do not fit the schema (say a
#            text "channel") can be renamed to any other name and is then left out;
#   defaults {ours: constant}: columns the file lacks (e.g. {"model": "googlenet"});
#   values   {ours: {theirs: ours}}: recode values, unlisted values are kept as they are;
#   drop     {ours: [values]}: remove rows whose (recoded) value is listed, e.g. re-shown
#            test-retest trials {"phase": ["repeated"]}; the count is in out.attrs["dropped_rows"]
#            and a line in out.attrs["notes"] (a Dataset built from the frame carries both);
#   rt_unit  "ms" or "s": the unit of the reaction-time column (seconds are scaled to ms).
def read_trials(source: str | Path | pd.DataFrame, columns: Mapping[str, str] | None = None,
                values: Mapping[str, Mapping[Any, Any]] | None = None,
                defaults: Mapping[str, Any] | None = None, rt_unit: str = "ms",
                experiment: str | None = None,
                combine: Mapping[str, Sequence[str]] | None = None,
                drop: Mapping[str, Iterable[Any]] | None = None) -> pd.DataFrame:
    """Map a foreign trial-level table onto the responses schema (see the steps above)."""
    name = _source_name(source)
    combine = {k: tuple(v) for k, v in (combine or {}).items()}
    text_columns = tuple(columns or {}) + tuple(c for parts in combine.values() for c in parts)
    raw = _raw_table(source, text_columns)
    columns = dict(columns or {})
    unknown = [c for c in columns if c not in raw.columns]
    if unknown:
        raise DataError(f"{name}: columns to rename not found: {', '.join(unknown)} "
                        f"(the file has: {', '.join(map(str, raw.columns))})")
    frame = _combine_columns(raw, combine, name).rename(columns=columns)
    if "rt" in frame.columns and "rt_ms" not in frame.columns:
        frame = frame.rename(columns={"rt": "rt_ms"})
    for column, value in (defaults or {}).items():
        if column not in frame.columns:
            frame[column] = value
    for column, mapping in (values or {}).items():
        if column not in frame.columns:
            raise DataError(f"{name}: cannot recode values of missing column {column!r}")
        frame[column] = frame[column].map(lambda v, m=mapping: m.get(v, m.get(str(v), v)))
    frame, dropped = _drop_rows(frame, drop or {}, name)

    missing = [c for c in REQUIRED_TRIAL_COLUMNS if c not in frame.columns]
    if "correct" in missing and {"choice", "correct_choice"} <= set(frame.columns):
        missing.remove("correct")
    if "unit_id" not in frame.columns and not {"layer", "channel"} <= set(frame.columns):
        missing.append("unit_id (or layer and channel)")
    if missing:
        raise DataError(
            f"{name}: missing columns {', '.join(missing)}; map them with columns={{'theirs': "
            f"'ours'}}, build them with combine={{'ours': ('theirs', ...)}} or give a constant "
            f"with defaults={{...}} (the file has: {', '.join(map(str, raw.columns))})")
    out = _complete_responses(frame, name, rt_unit=rt_unit, experiment=experiment)
    out.attrs["dropped_rows"] = dropped
    out.attrs["notes"] = [f"{name}: {n} rows removed while loading ({column} in "
                          f"{sorted(map(str, drop[column]))})" for column, n in dropped.items()]
    return out


def _combine_columns(raw: pd.DataFrame, combine: Mapping[str, tuple[str, ...]],
                     name: str) -> pd.DataFrame:
    """Add each `combine` column: the listed source columns as text joined with '/'."""
    frame = raw.copy()
    for target, parts in combine.items():
        absent = [c for c in parts if c not in raw.columns]
        if absent or not parts:
            raise DataError(f"{name}: combine={{{target!r}: {parts!r}}} names columns the file "
                            f"lacks: {', '.join(absent) or '(none given)'} "
                            f"(the file has: {', '.join(map(str, raw.columns))})")
        joined = raw[parts[0]].astype("string")
        for part in parts[1:]:
            joined = joined + "/" + raw[part].astype("string")
        frame[target] = joined
    return frame


def _drop_rows(frame: pd.DataFrame, drop: Mapping[str, Iterable[Any]],
               name: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Remove rows whose column holds a listed value; return the frame and counts per column."""
    dropped: dict[str, int] = {}
    for column, listed in drop.items():
        if column not in frame.columns:
            raise DataError(f"{name}: cannot drop rows by missing column {column!r} "
                            f"(drop= names columns after renaming)")
        listed = list(listed)
        mask = frame[column].isin(listed) | frame[column].astype("string").isin(
            [str(v) for v in listed]).fillna(False)
        dropped[column] = int(mask.sum())
        frame = frame[~mask.astype(bool)]
    if frame.empty:
        raise DataError(f"{name}: no rows left after drop={dict(drop)!r}")
    return frame.reset_index(drop=True), dropped


_RECODE_HINT = ("recode it with values={{{column!r}: {{...}}}} or rename the foreign column to "
                "another name with columns={{...}} (it is then left out)")


def _numeric(series: pd.Series, column: str, name: str, hint: str = _RECODE_HINT) -> pd.Series:
    """Parse a numeric column; text that is not a number is an error naming the column."""
    numeric = pd.to_numeric(series, errors="coerce")
    text = series.astype("string").str.strip()
    bad = series[numeric.isna() & series.notna() & (text != "").fillna(False)]
    if len(bad):
        shown = ", ".join(map(repr, pd.unique(bad.astype(object))[:5]))
        raise DataError(f"{name}: column {column!r} must hold numbers, found {shown}; "
                        + hint.format(column=column))
    return numeric


def _whole(numeric: pd.Series, column: str, name: str) -> pd.Series:
    """A parsed numeric column as Int64; fractions are an error naming the column."""
    if (numeric.dropna() % 1 != 0).any():
        raise DataError(f"{name}: column {column!r} must hold whole numbers")
    return numeric.round().astype("Int64")


def _unit_ids(model: pd.Series, layer: pd.Series, channel: pd.Series) -> pd.Series:
    """`model/layer/channel` (data/SCHEMA.md's unit_id) from the three columns; channel is
    Int64."""
    return model.astype(str) + "/" + layer.astype(str) + "/" + channel.astype(str)


def _complete_responses(frame: pd.DataFrame, name: str, rt_unit: str = "ms",
                        experiment: str | None = None) -> pd.DataFrame:
    """Fill optional response columns with defaults, parse types and coerce to the schema."""
    out = frame.copy()
    n = len(out)
    if "correct" not in out.columns:
        out["correct"] = out["choice"].astype("string") == out["correct_choice"].astype("string")
    out["correct"] = _parse_bool(out["correct"], "correct", name)
    out["is_catch"] = (_parse_bool(out["is_catch"], "is_catch", name) if "is_catch" in out
                       else False)
    if "layer" not in out.columns:
        out["layer"] = pd.NA
    if "channel" not in out.columns:
        out["channel"] = pd.NA
    if "unit_id" not in out.columns:
        out["unit_id"] = (out["model"].astype(str) + "/" + out["layer"].astype(str) + "/"
                          + out["channel"].astype(str))
    if "session_id" not in out.columns:
        out["session_id"] = out["participant_id"]
    if "task_id" not in out.columns:
        out["task_id"] = out["session_id"]
    if "trial_index" not in out.columns:
        out["trial_index"] = out.groupby("session_id", sort=False).cumcount()
    if "phase" not in out.columns:
        out["phase"] = "main"
    defaults: dict[str, Any] = {
        "experiment": experiment or Path(name).stem, "client": "web", "difficulty": "easy",
        "batch": pd.NA, "query_a": pd.NA, "query_b": pd.NA, "correct_choice": pd.NA,
        "choice": pd.NA, "confidence": pd.NA, "rt_ms": np.nan, "stim_onset_ms": np.nan,
        "response_ms": np.nan, "server_received_at": pd.NaT, "attempt": 0}
    for column, value in defaults.items():
        if column not in out.columns:
            out[column] = value
    # a blank difficulty is the default one (no query-difficulty manipulation), not a group of its own
    out["difficulty"] = out["difficulty"].astype("string").str.strip().replace("", pd.NA).fillna(
        "easy")
    if experiment is not None:
        out["experiment"] = experiment
    if rt_unit not in ("ms", "s"):
        raise DataError(f"rt_unit must be 'ms' or 's', not {rt_unit!r}")
    out["rt_ms"] = _numeric(out["rt_ms"], "rt_ms", name) * (1000.0 if rt_unit == "s" else 1.0)
    for column in ("confidence", "channel", "batch", "trial_index", "attempt"):
        out[column] = _whole(_numeric(out[column], column, name), column, name)
    for column in ("participant_id", "session_id", "task_id", "model", "layer", "unit_id",
                   "condition", "phase", "choice", "correct_choice"):
        out[column] = out[column].astype("string")
    bad_phase = set(out["phase"].dropna().unique()) - {"practice", "main"}
    if bad_phase:
        raise DataError(f"{name}: phase must be 'practice' or 'main', found {sorted(bad_phase)}; "
                        f"recode with values={{'phase': {{...}}}} or remove those rows with "
                        f"drop={{'phase': [...]}}")
    if n == 0:
        raise DataError(f"{name}: no rows")
    try:
        return coerce(out, "responses")
    except (ValueError, TypeError) as exc:
        raise DataError(f"{name}: {exc}") from exc


# IMI release (Zenodo 8131197): mode natural|optimized|catch_trial; `choice` is semantic
# (a = the min query, b = the max query), so it says which query was chosen, not where it was
# shown. The schema's choice/correct_choice are displayed positions (a = upper, b = lower): they
# are left empty unless the file also gives the max query's position (IMI_POSITION_COLUMN).
IMI_MODES = {"natural": "natural", "optimized": "synthetic", "catch_trial": "natural",
             "none": "none", "mixed": "mixed"}
IMI_POSITION_COLUMN = "correct_choice"
IMI_POSITIONS_NOTE = ("query positions not in the data: IMI's choice says which query was "
                      "chosen (a = min, b = max), not where it was shown, so choice and "
                      "correct_choice are empty and the response-rows rule does not apply")
_IMI_NUMERIC_HINT = "IMI's {column} is a number (an index), check the file's columns"


def read_imi(path: str | Path | pd.DataFrame, experiment: str = "imi",
             position_column: str = IMI_POSITION_COLUMN) -> pd.DataFrame:
    """Load an IMI release file (responses_main.csv style) as a responses table.

    `position_column` ('a' upper / 'b' lower: where the max query was shown), when the file has
    it, turns IMI's semantic choice into the displayed position; without it positions are empty.
    """
    name = _source_name(path)
    raw = _raw_table(path, ("participant_id", "model", "layer", "task_id", "mode", "choice",
                               position_column))
    needed = ["model", "layer", "channel", "mode", "correct", "participant_id"]
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise DataError(f"{name}: not an IMI responses file, missing columns "
                        f"{', '.join(missing)} (the file has: {', '.join(map(str, raw.columns))})")
    frame = _imi_conditions(raw.copy(), name)
    if "is_demo" in frame.columns:
        demo = _parse_bool(frame["is_demo"], "is_demo", name)
        frame["phase"] = np.where(demo, "practice", "main")
    if "rt" in frame.columns:
        frame = frame.rename(columns={"rt": "rt_ms"})
    if "task_id" not in frame.columns and "task_number" in frame.columns:
        frame["task_id"] = frame["task_number"].astype(str)
    if "attempt" not in frame.columns and "phase" in frame.columns:
        # the release has no practice repetition counter: unknown for practice rows
        frame["attempt"] = pd.Series(0, index=frame.index, dtype="Int64").where(
            frame["phase"] == "main")
    frame, known = _imi_positions(frame, name, position_column)
    frame["channel"] = _whole(_numeric(frame["channel"], "channel", name, _IMI_NUMERIC_HINT),
                              "channel", name)
    if "batch" in frame.columns:  # -1: no exemplar batch (practice and catch trials)
        batch = _numeric(frame["batch"], "batch", name, _IMI_NUMERIC_HINT)
        frame["batch"] = batch.where(batch >= 0)
    frame["unit_id"] = _unit_ids(frame["model"], frame["layer"], frame["channel"])
    keep = [c for c in frame.columns if c in RESPONSE_COLUMNS]
    out = _complete_responses(frame[keep], name, rt_unit="ms", experiment=experiment)
    out.attrs["notes"] = [] if known else [f"{name}: {IMI_POSITIONS_NOTE}"]
    return out


def _imi_conditions(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """is_catch and condition from IMI's mode (catch trials get the participant's condition)."""
    mode = frame["mode"].astype("string")
    unknown = set(mode.dropna().unique()) - set(IMI_MODES)
    if unknown:
        raise DataError(f"{name}: unknown IMI mode values {sorted(unknown)}")
    is_catch = mode == "catch_trial"
    if "catch_trial" in frame.columns:
        is_catch = is_catch | _parse_bool(frame["catch_trial"], "catch_trial", name)
    frame["is_catch"] = is_catch.astype(bool)
    frame["condition"] = mode.map(IMI_MODES)
    main_condition = (frame.loc[~frame["is_catch"]].groupby("participant_id")["condition"]
                      .agg(lambda s: s.mode().iat[0] if len(s.mode()) else "natural"))
    frame.loc[frame["is_catch"], "condition"] = (
        frame.loc[frame["is_catch"], "participant_id"].map(main_condition).fillna("natural"))
    return frame


def _ab(series: pd.Series, column: str, name: str, meaning: str) -> pd.Series:
    """A column of 'a'/'b' (case and spaces ignored, empty allowed); other values are an error."""
    text = series.astype("string").str.strip().str.lower()
    bad = series[text.notna() & ~text.isin(["a", "b"]).fillna(False) & (text != "").fillna(False)]
    if len(bad):
        shown = ", ".join(map(repr, pd.unique(bad.astype(object))[:5]))
        raise DataError(f"{name}: column {column!r} ({meaning}) must be 'a' or 'b', found {shown}")
    return text.where(text.isin(["a", "b"]).fillna(False))


def _imi_positions(frame: pd.DataFrame, name: str,
                   position_column: str) -> tuple[pd.DataFrame, bool]:
    """Displayed choice/correct_choice from the max query's position; empty when unknown."""
    correct = _parse_bool(frame["correct"], "correct", name)
    chose_max = correct
    if "choice" in frame.columns:
        semantic = _ab(frame["choice"], "choice", name, "IMI: a = min query, b = max query")
        disagree = semantic.notna() & ((semantic == "b") != correct)
        if disagree.any():
            rows = ", ".join(map(str, frame.index[disagree.to_numpy()][:5]))
            raise DataError(f"{name}: columns 'choice' and 'correct' disagree in "
                            f"{int(disagree.sum())} rows (e.g. rows {rows}); in IMI's release "
                            f"choice 'b' is the max query, i.e. the correct answer")
    known = position_column in frame.columns and frame[position_column].notna().any()
    if not known:
        frame["choice"], frame["correct_choice"] = pd.NA, pd.NA
        return frame, False
    position = _ab(frame[position_column], position_column, name,
                   "where the max query was shown: a = upper, b = lower")
    other = position.map({"a": "b", "b": "a"}, na_action="ignore")
    frame["correct_choice"] = position
    frame["choice"] = position.where(chose_max.to_numpy(), other)
    return frame, True


__all__ = [
    "PARTICIPANT_COLUMNS",
    "TRIAL_COLUMNS",
    "UNIT_COLUMNS",
    "DataError",
    "Dataset",
    "attach_model_metadata",
    "attach_units",
    "imi_models",
    "is_database_url",
    "load",
    "load_dataset",
    "read_imi",
    "read_models",
    "read_trials",
    "read_units",
]
