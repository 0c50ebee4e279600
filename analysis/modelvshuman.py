"""The model-vs-human benchmark's released raw data (Geirhos et al., NeurIPS 2021;
github.com/bethgelab/model-vs-human, raw-data/<dataset>/): one CSV per observer and session per
dataset, people's as `<dataset>_subject-NN_session_1.csv`, models' as
`<dataset>_<model>_session-1.csv`, with the columns subj, session (people's files spell it
Session), trial, rt (seconds; NaN without an answer), object_response (one of the 16 categories
or `na`: no answer in the response window, an error), category (the right one; the shape's for
cue-conflict images), condition (the distortion level as the experiment wrote it) and imagename.

Read through `read_trials` onto the responses schema: `experiment` is the dataset (the CSV's
folder), `participant_id` and `observer` the `subj` value (a person when it starts with
`subject-`, else a machine), `condition` the level as written (read as text: `0.90` stays
`0.90`) and `unit_id` the image's own name (the item every observer saw, `image_name`).
A dataset whose rows name at most one condition (people's files write 0, models' nothing) is
that one condition.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.load import DataError, read_trials
from experiments.vocabulary import NO_RESPONSE, SIXTEEN_CLASSES

FORMAT = "model-vs-human"
COLUMNS = ("subj", "session", "trial", "rt", "object_response", "category", "condition",
           "imagename")
PERSON_PREFIX = "subject-"
# The benchmark's summary leaves out the conditions that are not out of distribution or where
# people were below 20 % (modelvshuman's EXCLUDE_CONDITIONS), per dataset folder name.
BENCHMARK_EXCLUDED: dict[str, set[str]] = {
    "colour": {"cr"}, "contrast": {"c100", "c03", "c01"},
    "high-pass": {"inf", "0.55", "0.45", "0.4"}, "low-pass": {"0", "15", "40"},
    "phase-scrambling": {"0", "150", "180"}, "power-equalisation": {"0"},
    "false-colour": {"True"}, "rotation": {"0"},
    "eidolonI": {"1-10-10", "64-10-10", "128-10-10"},
    "eidolonII": {"1-3-10", "32-3-10", "64-3-10", "128-3-10"},
    "eidolonIII": {"1-0-10", "16-0-10", "32-0-10", "64-0-10", "128-0-10"},
    "uniform-noise": {"0.0", "0.6", "0.9"}}


def image_name(imagename: str) -> str:
    """The image's own name without the trial, experiment, subject, condition and category
    prefix: `<wnid>_<number>.<ext>` for ImageNet images, else the last `_` field."""
    parts = str(imagename).split("_")
    if len(parts) >= 2 and parts[-2].startswith("n0"):
        return f"{parts[-2]}_{parts[-1]}"
    return parts[-1]


def _read_csv(path: Path) -> pd.DataFrame:
    """One released CSV with its columns checked and everything read as text."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a model-vs-human CSV: {exc}") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"{path}: missing columns {', '.join(missing)} (a model-vs-human raw "
                        f"data file has {', '.join(COLUMNS)}; the file has "
                        f"{', '.join(raw.columns)})")
    for column in ("object_response", "category"):
        allowed = set(SIXTEEN_CLASSES) | ({NO_RESPONSE} if column == "object_response" else set())
        values = raw[column].str.strip()
        bad = raw.index[~values.isin(allowed)]
        if len(bad):
            row = bad[0]
            raise DataError(f"{path}, row {row + 2}: {column} {raw.at[row, column]!r} is not one "
                            f"of the 16 categories ({', '.join(SIXTEEN_CLASSES)})"
                            + (f" or {NO_RESPONSE!r} (no answer)" if column == "object_response"
                               else "") + f"; {len(bad)} such rows")
        raw[column] = values
    raw["dataset"] = path.parent.name
    return raw


def read_model_vs_human(folder: str | Path) -> pd.DataFrame:
    """Every released CSV under `folder` (one dataset's folder or raw-data/ with one folder per
    dataset) as response rows."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: --format {FORMAT} reads a folder of the released CSVs "
                        f"(raw-data/<dataset>/ or raw-data/)")
    paths = sorted(folder.rglob("*.csv"))
    if not paths:
        raise DataError(f"{folder}: no CSV files (the released raw data are "
                        f"raw-data/<dataset>/<dataset>_subject-NN_session_1.csv)")
    raw = pd.concat([_read_csv(path) for path in paths], ignore_index=True)
    raw["condition"] = _one_condition_datasets(raw)
    raw["unit_id"] = raw["imagename"].map(image_name)
    person = raw["subj"].str.startswith(PERSON_PREFIX)
    raw["client"] = person.map({True: "lab", False: "machine"})
    raw["observer"] = raw["subj"].where(~person, "")
    raw["rt"] = pd.to_numeric(raw["rt"].replace({"": "nan", "NaN": "nan"}), errors="coerce")
    raw["trial"] = pd.to_numeric(raw["trial"], errors="coerce") - 1  # the schema counts from 0
    if raw["trial"].isna().any():
        row = raw.index[raw["trial"].isna()][0]
        raise DataError(f"{folder}: trial {raw.at[row, 'trial']!r} is not a number "
                        f"(subj {raw.at[row, 'subj']}, dataset {raw.at[row, 'dataset']})")
    frames = []
    for dataset, rows in raw.groupby("dataset", sort=True):
        frames.append(read_trials(
            rows.drop(columns="dataset"), rt_unit="s", experiment=str(dataset),
            columns={"subj": "participant_id", "trial": "trial_index",
                     "object_response": "choice", "category": "correct_choice"},
            combine={"session_id": ("subj", "session")},
            defaults={"model": FORMAT, "phase": "main", "difficulty": "easy"}))
    out = pd.concat(frames, ignore_index=True)
    out.attrs["notes"] = [f"{len(paths)} files, {out['participant_id'].nunique()} observers, "
                          f"{out['experiment'].nunique()} datasets read from {folder}"]
    return out


def _one_condition_datasets(raw: pd.DataFrame) -> pd.Series:
    """The condition column, with blank and NaN conditions of a one-condition dataset filled
    with its one condition (the people's 0 where models wrote nothing)."""
    condition = raw["condition"].str.strip()
    blank = condition.isin(["", "NaN", "nan"])
    for dataset, rows in raw.groupby("dataset"):
        named = set(condition[rows.index][~blank[rows.index]])
        if len(named) <= 1:
            condition[rows.index[blank[rows.index]]] = next(iter(named), "0")
        elif blank[rows.index].any():
            raise DataError(f"dataset {dataset}: {int(blank[rows.index].sum())} rows without a "
                            f"condition beside the conditions {sorted(named)}")
    return condition
