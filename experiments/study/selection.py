"""Choosing an experiment's main units by a machine observer's unit scores (`[select_units]`):
read the scores `interpsy observe` wrote, then take each group's easiest, hardest and random
units (torch-free)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from experiments.errors import SpecError
from experiments.study.spec import UnitSelection

GROUPS = ("easiest", "hardest", "random")


def read_machine_scores(folder: Path, selection: UnitSelection) -> pd.Series:
    """unit_id -> the observer's unit score: the mean p_correct of its scored trials in the
    selection's condition."""
    from experiments.study.export import read_table  # storage-side reader; planning stays pure

    files = [folder / f"responses.{fmt}" for fmt in ("parquet", "csv")]
    found = next((f for f in files if f.is_file()), None)
    if found is None:
        raise SpecError(f"select_units.scores: {folder} holds no responses.parquet or "
                        f"responses.csv (write it with `interpsy observe ... --out {folder}`)")
    rows = read_table(found, "responses")
    rows = rows[(rows["client"] == "machine") & (rows["phase"] == "main") & ~rows["is_catch"]]
    observers = sorted(rows["observer"].dropna().unique())
    if selection.observer is not None:
        rows = rows[rows["observer"] == selection.observer]
    elif len(observers) > 1:
        raise SpecError(f"select_units: {found} holds the observers {', '.join(observers)}; "
                        f"name one as select_units.observer")
    rows = rows[rows["condition"] == selection.condition]
    if rows.empty:
        raise SpecError(f"select_units: {found} has no scored machine rows in condition "
                        f"{selection.condition!r}" + (f" from observer {selection.observer!r}"
                                                      if selection.observer else ""))
    return rows.groupby("unit_id")["p_correct"].mean()


def select_units(group: str, candidates: list[str], scores: pd.Series, selection: UnitSelection,
                 rng: np.random.Generator) -> dict[str, tuple[str, float]]:
    """unit_id -> (selection group, its score) for the units chosen from one group's
    candidates: the highest-scoring `easiest`, the lowest-scoring `hardest`, then `random`
    of the rest. Ties are broken by unit_id, so the same scores give the same choice."""
    scored = sorted((u for u in candidates if u in scores.index),
                    key=lambda u: (-float(scores[u]), u))
    wanted = selection.easiest + selection.hardest + selection.random
    if wanted > len(scored):
        missing = len(candidates) - len(scored)
        raise SpecError(f"select_units: unit group {group!r} has {len(scored)} units with a "
                        f"machine score ({missing} without one) but easiest + hardest + random = "
                        f"{wanted}")
    easiest = scored[:selection.easiest]
    hardest = scored[len(scored) - selection.hardest:] if selection.hardest else []
    rest = [u for u in scored if u not in easiest and u not in hardest]
    chosen_random = [rest[i] for i in sorted(rng.choice(len(rest), selection.random,
                                                        replace=False))]
    return {u: (name, float(scores[u]))
            for name, units in zip(GROUPS, (easiest, hardest, chosen_random)) for u in units}
