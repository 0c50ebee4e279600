"""Checks that a stimulus set's tables agree with its manifest and with themselves: the tables'
hashes, the unit list, the activations' order and signs, the records the writer derived from
them (top/bottom natural activation, fv_activation, fv_beats_natural), complete visualizations
and no query that is also a reference of its batch."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.vocabulary import IN_DISTRIBUTION

TABLES_KEY = "tables"  # manifest: {"units.csv": sha256, "images.csv": sha256}
TOLERANCE = 1e-6


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def table_hashes(where: Path, names: tuple[str, ...]) -> dict[str, str]:
    """sha256 of each table file, for the manifest."""
    return {name: sha256_file(where / name) for name in names}


def check_table_hashes(where: Path, manifest: dict, problems: list[str]) -> None:
    """Tables edited after the set was written no longer match the manifest's hashes."""
    recorded = manifest.get(TABLES_KEY) or {}
    present = tuple(name for name in recorded if (where / name).is_file())
    for name, digest in table_hashes(where, present).items():
        if digest != recorded[name]:
            problems.append(f"{name} does not match its sha256 in the manifest (edited after the "
                            f"set was written?)")


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TOLERANCE * (1 + abs(a) + abs(b))


def _number(value: object) -> float | None:
    return None if value is None or pd.isna(value) or value == "" else float(value)


def check_units_match_manifest(units: pd.DataFrame, manifest: dict, problems: list[str]) -> None:
    """The manifest's model and unit list are the units table's."""
    listed = manifest.get("units")
    if isinstance(listed, list) and sorted(map(str, listed)) != sorted(units.unit_id):
        missing = sorted(set(map(str, listed)) - set(units.unit_id))
        extra = sorted(set(units.unit_id) - set(map(str, listed)))
        problems.append(f"the manifest lists {len(listed)} units, units.csv has {len(units)}"
                        + (f" (not in units.csv: {', '.join(missing[:3])})" if missing else "")
                        + (f" (not in the manifest: {', '.join(extra[:3])})" if extra else ""))
    model = manifest.get("model")
    if model and (units.model != model).any():
        other = units.model[units.model != model].iloc[0]
        problems.append(f"units.csv names model {other!r} but the manifest's model is {model!r}")


def check_activations(units: pd.DataFrame, images: pd.DataFrame, problems: list[str]) -> None:
    """Max references above min references in every batch, the easy max query above the min
    one, and the units table's derived values equal to what its images say."""
    known = images[images.activation.notna()]
    # shifted queries come from other pools: their activations are not bounded by these
    natural = known[(known.kind == "natural") & (known.distribution == IN_DISTRIBUTION)]
    by_batch = natural.groupby(["unit_id", "batch", "role"]).activation.agg(["min", "max"]) \
        .unstack("role")
    if ("min", "reference_max") in by_batch and ("max", "reference_min") in by_batch:
        wrong = by_batch[by_batch[("min", "reference_max")] < by_batch[("max", "reference_min")]]
        if not wrong.empty:
            unit_id, batch = wrong.index[0]
            problems.append(f"unit {unit_id} batch {batch}: a max reference is less activating "
                            f"than a min reference (activation signs or roles swapped?)")
    easy = natural[natural.difficulty == "easy"].pivot_table(
        index=["unit_id", "batch"], columns="role", values="activation", aggfunc="first")
    if {"query_max", "query_min"} <= set(easy.columns):
        wrong = easy[easy.query_max < easy.query_min]
        if not wrong.empty:
            unit_id, batch = wrong.index[0]
            problems.append(f"unit {unit_id} batch {batch}: the easy max query is less "
                            f"activating than the min query")
    derived = {"top_natural_activation": natural.groupby("unit_id").activation.max(),
               "bottom_natural_activation": natural.groupby("unit_id").activation.min()}
    synthetic = known[known.kind == "synthetic"]
    plain = synthetic[(synthetic.role == "reference_max") & (synthetic["rank"] == 0)] \
        .groupby("unit_id").activation.first()
    diverse = synthetic[synthetic["rank"] > 0]
    weakest = {"reference_max": diverse[diverse.role == "reference_max"]
               .groupby("unit_id").activation.min(),
               "reference_min": diverse[diverse.role == "reference_min"]
               .groupby("unit_id").activation.max()}
    for row in units.itertuples(index=False):
        for column, found in derived.items():
            stated = _number(getattr(row, column, None))
            if stated is not None and row.unit_id in found and \
                    not _close(stated, float(found[row.unit_id])):
                problems.append(f"unit {row.unit_id}: units.csv {column} {stated:g} differs from "
                                f"what its natural images say ({float(found[row.unit_id]):g})")
        stated = _number(getattr(row, "fv_activation", None))
        if stated is not None and row.unit_id in plain and \
                not _close(stated, float(plain[row.unit_id])):
            problems.append(f"unit {row.unit_id}: units.csv fv_activation {stated:g} differs from "
                            f"its visualization's {float(plain[row.unit_id]):g}")
        _check_beats(row, weakest, problems)


def _check_beats(row, weakest: dict[str, pd.Series], problems: list[str]) -> None:
    """fv_beats_natural must say whether the diverse visualizations beat the exemplars."""
    flag = str(getattr(row, "fv_beats_natural", "") or "").strip().lower()
    top = _number(getattr(row, "top_natural_activation", None))
    bottom = _number(getattr(row, "bottom_natural_activation", None))
    if flag not in ("true", "false") or top is None or bottom is None or \
            not all(row.unit_id in side for side in weakest.values()):
        return
    beats = (weakest["reference_max"][row.unit_id] > top
             and weakest["reference_min"][row.unit_id] < bottom)
    if beats != (flag == "true"):
        problems.append(f"unit {row.unit_id}: units.csv says fv_beats_natural = {flag} but its "
                        f"diverse visualizations {'do' if beats else 'do not'} beat the natural "
                        f"exemplars")


def check_complete_visualizations(units: pd.DataFrame, images: pd.DataFrame,
                                  problems: list[str]) -> None:
    """A set with visualizations has them for every unit, as many per side."""
    synthetic = images[images.kind == "synthetic"]
    if synthetic.empty:
        return
    counts = synthetic.groupby(["unit_id", "role"]).size().unstack(fill_value=0)
    counts = counts.reindex(units.unit_id, fill_value=0)
    expected = int(np.max(counts.to_numpy()))
    short = counts[(counts < expected).any(axis=1)]
    if not short.empty:
        problems.append(f"unit {short.index[0]}: {int(short.iloc[0].min())} synthetic references "
                        f"on a side where the set has {expected} (visualizations removed?)")


def check_queries_are_not_references(images: pd.DataFrame, problems: list[str]) -> None:
    """No natural query is the same image (sha256) as a reference of its unit, in its own batch
    or another (a duplicate in the mined pool shows the answer's image twice)."""
    natural = images[(images.kind == "natural") & (images.sha256 != "")]
    keys = ["unit_id", "sha256"]
    references = (natural[natural.role.str.startswith("reference")][[*keys, "batch"]]
                  .drop_duplicates().rename(columns={"batch": "reference_batch"}))
    queries = natural[natural.role.str.startswith("query")]
    clash = queries.merge(references, on=keys)
    if not clash.empty:
        clash = clash.assign(own=clash.batch == clash.reference_batch).sort_values(
            "own", ascending=False)
        row = clash.iloc[0]
        where = ("its batch" if row.own else
                 f"batch {row.reference_batch} (the same photograph mined twice?)")
        problems.append(f"unit {row.unit_id} batch {row.batch}: query {row.image_id} is the same "
                        f"image as a reference of {where}")
