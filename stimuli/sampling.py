"""IMI's two-stage unit sampling (a layer uniformly, then a channel) or an explicit unit list.

Torch-free: it works on the layer widths that `stimuli.layers.layer_widths` measures.
IMI drew 100 units per model with seed 42; this uses numpy's `RandomState(seed)` (documented,
reproducible here, not bit-identical to IMI's own lists, which were not derived this way).
"""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from experiments.stimulus_set import unit_key
from stimuli.errors import ModelError, StimuliError


@dataclass(frozen=True, order=True)
class Unit:
    """One unit: a channel of a layer of a model."""

    model: str
    layer: str
    channel: int

    @property
    def unit_id(self) -> str:
        return unit_key(self.model, self.layer, self.channel)


def sample_units(model: str, widths: dict[str, int], n: int, seed: int = 42) -> list[Unit]:
    """Draw `n` distinct units: a layer uniformly (not by width), then a channel uniformly."""
    layers = list(widths)
    total = sum(widths.values())
    if not layers:
        raise ModelError(f"{model}: no relevant layers to sample from")
    if n < 1 or n > total:
        raise StimuliError(f"{model}: cannot sample {n} units; the relevant layers have {total}")
    rng = np.random.RandomState(seed)
    chosen: dict[tuple[str, int], None] = {}
    while len(chosen) < n:
        layer = layers[rng.randint(len(layers))]
        channel = int(rng.randint(widths[layer]))
        chosen.setdefault((layer, channel), None)
    return [Unit(model, layer, channel) for layer, channel in chosen]


def parse_units(model: str, specs: list[str], widths: dict[str, int],
                all_layers: dict[str, int] | None = None) -> list[Unit]:
    """Units from `layer:channel` strings, checked against the layer widths."""
    widths = {**(all_layers or {}), **widths}
    units: list[Unit] = []
    for text in specs:
        layer, sep, channel = text.rpartition(":")
        if not sep or not channel.strip().lstrip("-").isdigit():
            raise StimuliError(f"unit {text!r}: expected LAYER:CHANNEL, e.g. layer1.0.bn1:12")
        units.append(check_unit(Unit(model, layer.strip(), int(channel)), widths))
    if len({u.unit_id for u in units}) != len(units):
        raise StimuliError("the unit list names a unit more than once")
    return units


def check_unit(unit: Unit, widths: dict[str, int]) -> Unit:
    """Raise ModelError for an unknown layer or a channel out of range."""
    if unit.layer not in widths:
        known = ", ".join(list(widths)[:5])
        raise ModelError(f"{unit.model}: unknown layer {unit.layer!r} (known: {known}, ... "
                         f"{len(widths)} in all)")
    if not 0 <= unit.channel < widths[unit.layer]:
        raise ModelError(f"{unit.model}: channel {unit.channel} out of range for layer "
                         f"{unit.layer} (0..{widths[unit.layer] - 1})")
    return unit


def save_units(path: Path, units: list[Unit], meta: dict) -> None:
    """Write a units file (JSON: the units plus how they were chosen)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**meta, "units": [asdict(u) for u in units]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)


def load_units(path: Path) -> tuple[list[Unit], dict]:
    """Read a units file written by `save_units`, or a CSV with model, layer, channel columns."""
    path = Path(path)
    if not path.is_file():
        raise StimuliError(f"units file {path} does not exist")
    try:
        if path.suffix == ".csv":
            with open(path, newline="") as handle:
                rows = list(csv.DictReader(handle))
            return [Unit(r["model"], r["layer"], int(r["channel"])) for r in rows], {}
        payload = json.loads(path.read_text())
        units = [Unit(u["model"], u["layer"], int(u["channel"])) for u in payload["units"]]
    except (KeyError, ValueError, json.JSONDecodeError) as exc:
        raise StimuliError(f"units file {path} is not readable ({exc})") from exc
    meta = {k: v for k, v in payload.items() if k != "units"}
    return units, meta
