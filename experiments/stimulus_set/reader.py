"""The stimulus set folder (stimuli.json, units.csv, images.csv, images/): its column contract,
reading and validation, no torch."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

import pandas as pd
from PIL import Image, UnidentifiedImageError

from experiments.errors import StimulusSetError
from experiments.stimulus_set.integrity import (
    check_activations,
    check_complete_visualizations,
    check_queries_are_not_references,
    check_table_hashes,
    check_units_match_manifest,
    sha256_file,
)
from experiments.vocabulary import DIFFICULTIES, IN_DISTRIBUTION

MANIFEST = "stimuli.json"
UNITS_CSV = "units.csv"
IMAGES_CSV = "images.csv"

MANIFEST_KEYS = ("model", "weights", "layers", "units", "dataset", "parameters", "versions",
                 "seed", "created_at")
UNIT_COLUMNS = ("unit_id", "model", "layer", "channel", "reduction", "layer_position",
                "fv_activation", "top_natural_activation")
IMAGE_COLUMNS = ("image_id", "unit_id", "kind", "role", "batch", "rank", "activation", "path",
                 "sha256", "difficulty", "distribution")
REFERENCE_ROLES = ("reference_max", "reference_min")
QUERY_ROLES = ("query_max", "query_min")
# `interpsy stimuli occlusion` writes kind `occlusion`: the occlusions that keep the unit's
# activation highest and lower it most, and the blurred references; each occluded image's
# occluder (corner, side, and the variance of the base image's pixels it covers: grey levels,
# mean over channels, for the paper's variance baseline) in images.csv's occluder columns.
OCCLUSION_KIND = "occlusion"
OCCLUSION_ROLES = ("occluded_max", "occluded_min", "reference_blurred")
OCCLUDER_COLUMNS = ("occluder_y", "occluder_x", "occluder_size", "occluder_variance")
# `interpsy stimuli categories` writes kind `categorisation`: a unit is one labelled image
# (model = the set's name, layer = its category, channel = its number), shown as `stimulus` at
# each distortion level (images.csv's category, distortion and level columns) and followed by
# its `mask` (1/f noise).
CATEGORISATION_KIND = "categorisation"
CATEGORISATION_ROLES = ("stimulus", "mask")
CATEGORISATION_COLUMNS = ("category", "distortion", "level")
KINDS = ("natural", "synthetic", OCCLUSION_KIND, CATEGORISATION_KIND)
ROLES = REFERENCE_ROLES + QUERY_ROLES + OCCLUSION_ROLES + CATEGORISATION_ROLES
DEFAULT_IMAGE_SIZE = 224
MAX_LISTED_PROBLEMS = 5


def unit_key(model: str, layer: str, channel: int) -> str:
    """The `unit_id` of a unit: `model/layer/channel`."""
    return f"{model}/{layer}/{int(channel)}"


@dataclass(frozen=True)
class StimulusSet:
    """A validated stimulus set: its folder, manifest, units and images tables."""

    path: Path
    manifest: dict
    units: pd.DataFrame
    images: pd.DataFrame

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or self.path.name)

    @property
    def image_size(self) -> int:
        return int(self.manifest.get("image_size", DEFAULT_IMAGE_SIZE))

    def units_fv_not_beating_natural(self) -> list[str]:
        """Units whose feature visualizations do not beat their natural exemplars (IMI left
        them out); from units.csv's fv_beats_natural, empty when the set has no renders."""
        if "fv_beats_natural" not in self.units:
            return []
        flags = self.units.fv_beats_natural.astype(str).str.strip().str.lower()
        return sorted(self.units.unit_id[flags == "false"])

    @property
    def categories(self) -> list[str]:
        """A categorisation set's categories in the manifest's order (empty for other sets)."""
        return list(self.manifest.get("categories") or [])

    def distortion_levels(self) -> dict[str, list[str]]:
        """A categorisation set's distortions and their levels, in the manifest's order."""
        return {name: list(levels) for name, levels in
                (self.manifest.get("distortions") or {}).items()}

    def natural_batches(self, unit_id: str) -> list[int]:
        """Batches of a unit that have natural references and easy queries on both sides."""
        rows = self.images[(self.images.unit_id == unit_id) & (self.images.kind == "natural")]
        return sorted(int(b) for b in rows.batch.unique())

    def image_path(self, image_id: str) -> Path:
        row = self.images.loc[self.images.image_id == image_id]
        if row.empty:
            raise StimulusSetError(f"{self.path}: no image {image_id!r} in {IMAGES_CSV}")
        return self.path / row.iloc[0].path


def _fail(where: Path, problems: list[str]) -> None:
    shown = "; ".join(problems[:MAX_LISTED_PROBLEMS])
    more = len(problems) - MAX_LISTED_PROBLEMS
    suffix = f"; and {more} more" if more > 0 else ""
    raise StimulusSetError(f"stimulus set {where}: {shown}{suffix}")


def _read_csv(where: Path, name: str, columns: tuple[str, ...], optional: tuple[str, ...] = ()
              ) -> pd.DataFrame:
    path = where / name
    if not path.is_file():
        _fail(where, [f"{name} is missing"])
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        _fail(where, [f"{name} is not a readable CSV ({exc})"])
    missing = [c for c in columns if c not in frame.columns and c not in optional]
    if missing:
        _fail(where, [f"{name} lacks column(s) {', '.join(missing)}"])
    for column in optional:
        if column not in frame.columns:
            frame[column] = ""
    return frame


def _numeric(frame: pd.DataFrame, name: str, column: str, kind: str, problems: list[str],
             allow_empty: bool = False) -> None:
    values = frame[column].replace("", pd.NA) if allow_empty else frame[column]
    parsed = pd.to_numeric(values, errors="coerce")
    bad = parsed.isna() & (values.notna() if allow_empty else True)
    if kind == "int":
        bad |= parsed.notna() & (parsed % 1 != 0)
    if bad.any():
        first = int(bad.to_numpy().nonzero()[0][0])
        problems.append(f"{name} row {first + 2}: {column} must be {'an integer' if kind == 'int' else 'a number'}, "
                        f"got {frame[column].iloc[first]!r}")
        return
    frame[column] = parsed.astype("Int64" if kind == "int" else "float64")


def load_stimulus_set(path: str | Path, verify_images: bool = True,
                      verify_hashes: bool = False, decode_images: bool = False) -> StimulusSet:
    """Read and validate a stimulus set folder; raise StimulusSetError naming the first problems.

    `decode_images` decodes every image in full (a truncated file opens but does not decode)."""
    where = Path(path)
    if not where.is_dir():
        raise StimulusSetError(f"stimulus set {where}: not a folder")
    manifest = _read_manifest(where)
    units = _read_csv(where, UNITS_CSV, UNIT_COLUMNS,
                      optional=("reduction", "layer_position", "fv_activation",
                                "top_natural_activation"))
    images = _read_csv(where, IMAGES_CSV, IMAGE_COLUMNS, optional=("difficulty", "sha256",
                                                                    "activation", "distribution"))
    problems: list[str] = []
    _check_units(units, problems)
    _check_images(images, set(units.unit_id), problems)
    _check_distributions(images, manifest, problems)
    if problems:
        _fail(where, problems)
    _check_structure(units, images, problems, manifest)
    check_table_hashes(where, manifest, problems)
    check_units_match_manifest(units, manifest, problems)
    check_activations(units, images, problems)
    check_complete_visualizations(units, images, problems)
    check_queries_are_not_references(images, problems)
    if verify_images:
        _check_files(where, images, int(manifest.get("image_size", DEFAULT_IMAGE_SIZE)),
                     verify_hashes, problems, decode_images)
    if problems:
        _fail(where, problems)
    return StimulusSet(where.resolve(), manifest, units.reset_index(drop=True),
                       images.reset_index(drop=True))


def _read_manifest(where: Path) -> dict:
    path = where / MANIFEST
    if not path.is_file():
        _fail(where, [f"{MANIFEST} is missing"])
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        _fail(where, [f"{MANIFEST} is not valid JSON ({exc})"])
    if not isinstance(manifest, dict):
        _fail(where, [f"{MANIFEST} must hold a JSON object"])
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    if missing:
        _fail(where, [f"{MANIFEST} lacks key(s) {', '.join(missing)}"])
    return manifest


def _check_units(units: pd.DataFrame, problems: list[str]) -> None:
    _numeric(units, UNITS_CSV, "channel", "int", problems)
    for column in ("layer_position", "fv_activation", "top_natural_activation"):
        _numeric(units, UNITS_CSV, column, "float", problems, allow_empty=True)
    if problems:
        return
    if (units.channel < 0).any():
        problems.append(f"{UNITS_CSV}: channel must be >= 0")
    expected = [unit_key(m, layer, c) for m, layer, c in zip(units.model, units.layer, units.channel)]
    wrong = units.unit_id != expected
    if wrong.any():
        row = units[wrong].iloc[0]
        problems.append(f"{UNITS_CSV}: unit_id {row.unit_id!r} is not model/layer/channel "
                        f"({unit_key(row.model, row.layer, row.channel)!r})")
    duplicated = units.unit_id[units.unit_id.duplicated()]
    if not duplicated.empty:
        problems.append(f"{UNITS_CSV}: unit_id {duplicated.iloc[0]!r} appears more than once")
    if units.empty:
        problems.append(f"{UNITS_CSV}: no units")


def _check_images(images: pd.DataFrame, unit_ids: set[str], problems: list[str]) -> None:
    for column in ("batch", "rank"):
        _numeric(images, IMAGES_CSV, column, "int", problems)
    _numeric(images, IMAGES_CSV, "activation", "float", problems, allow_empty=True)
    for column, allowed in (("kind", KINDS), ("role", ROLES)):
        bad = ~images[column].isin(allowed)
        if bad.any():
            problems.append(f"{IMAGES_CSV}: {column} {images[column][bad].iloc[0]!r} is not one of "
                            f"{', '.join(allowed)}")
    queries = images.role.isin(QUERY_ROLES)
    images.loc[queries & (images.difficulty == ""), "difficulty"] = "easy"
    bad = queries & ~images.difficulty.isin(DIFFICULTIES)
    if bad.any():
        problems.append(f"{IMAGES_CSV}: difficulty {images.difficulty[bad].iloc[0]!r} is not one of "
                        f"{', '.join(DIFFICULTIES)}")
    duplicated = images.image_id[images.image_id.duplicated()]
    if not duplicated.empty:
        problems.append(f"{IMAGES_CSV}: image_id {duplicated.iloc[0]!r} appears more than once")
    unknown = ~images.unit_id.isin(unit_ids)
    if unknown.any():
        problems.append(f"{IMAGES_CSV}: unit_id {images.unit_id[unknown].iloc[0]!r} is not in "
                        f"{UNITS_CSV}")
    for value in images.path:
        pure = PurePosixPath(value)
        if not value or pure.is_absolute() or ".." in pure.parts:
            problems.append(f"{IMAGES_CSV}: path {value!r} must be relative inside the set folder")
            break


def _check_distributions(images: pd.DataFrame, manifest: dict, problems: list[str]) -> None:
    """`distribution` is `in` (empty reads as `in`) except on natural queries of a pool the
    manifest's `query_distributions` describes (`interpsy stimuli shift`)."""
    images.loc[images.distribution == "", "distribution"] = IN_DISTRIBUTION
    shifted = images.distribution != IN_DISTRIBUTION
    wrong = shifted & ~(images.role.isin(QUERY_ROLES) & (images.kind == "natural"))
    if wrong.any():
        row = images[wrong].iloc[0]
        problems.append(f"image {row.image_id}: distribution {row.distribution!r} on a "
                        f"{row.kind} {row.role}; only natural queries leave the distribution")
    known = set(manifest.get("query_distributions") or {})
    unknown = shifted & ~images.distribution.isin(known)
    if unknown.any():
        problems.append(f"{IMAGES_CSV}: distribution {images.distribution[unknown].iloc[0]!r} "
                        f"is not described in {MANIFEST}'s query_distributions")


T = TypeVar("T")


def occlusion_split(max_references: Sequence[T], easy_max_queries: Sequence[T]
                    ) -> tuple[T | None, list[T]]:
    """The occlusion task's base (the top image of IMI's fair batch: the max reference of rank
    0) and the batch's other images, its natural references (the max references 1-8, then the
    easy max query); both in rank order."""
    ordered = [*max_references, *easy_max_queries]
    return (ordered[0] if max_references else None), ordered[1:]


def _check_occlusion(images: pd.DataFrame, problems: list[str]) -> None:
    """Occlusion images (if any) on their own kind, and for each occluded batch one image of
    each occlusion and as many blurred references as natural ones (max references 1-8 and the
    easy max query: as many as max references)."""
    kinds = images.role.isin(OCCLUSION_ROLES) != (images.kind == OCCLUSION_KIND)
    if kinds.any():
        row = images[kinds].iloc[0]
        problems.append(f"image {row.image_id}: role {row.role} and kind {row.kind} do not go "
                        f"together (the occlusion roles are kind occlusion)")
        return
    occluded = images[images.kind == OCCLUSION_KIND]
    if occluded.empty:
        return
    natural_max = images[(images.kind == "natural") & (images.role == "reference_max")] \
        .groupby(["unit_id", "batch"]).size()
    counts = occluded.groupby(["unit_id", "batch"]).role.value_counts().unstack(fill_value=0) \
        .reindex(columns=list(OCCLUSION_ROLES), fill_value=0)
    for (unit_id, batch), row in counts.iterrows():
        single = [role for role in OCCLUSION_ROLES[:2] if row[role] != 1]
        if single:
            problems.append(f"unit {unit_id} batch {batch}: needs exactly one {single[0]} image")
        if row.reference_blurred not in (0, natural_max.get((unit_id, batch), 0)):
            problems.append(f"unit {unit_id} batch {batch}: {row.reference_blurred} blurred "
                            f"references for {natural_max.get((unit_id, batch), 0)} max ones")


def _check_categorisation(units: pd.DataFrame, images: pd.DataFrame, manifest: dict,
                          problems: list[str]) -> set[str]:
    """Categorisation images (if any) on their own kind; each such unit one mask and a stimulus
    at every distortion level the manifest lists, of the unit's category. Returns their units."""
    mixed = images.role.isin(CATEGORISATION_ROLES) != (images.kind == CATEGORISATION_KIND)
    if mixed.any():
        row = images[mixed].iloc[0]
        problems.append(f"image {row.image_id}: role {row.role} and kind {row.kind} do not go "
                        f"together (the categorisation roles are kind {CATEGORISATION_KIND})")
        return set()
    rows = images[images.kind == CATEGORISATION_KIND]
    if rows.empty:
        return set()
    missing = [c for c in CATEGORISATION_COLUMNS if c not in rows.columns]
    if missing:
        problems.append(f"{IMAGES_CSV}: categorisation images need column(s) "
                        f"{', '.join(missing)}")
        return set()
    expected = {(d, str(level)) for d, levels in (manifest.get("distortions") or {}).items()
                for level in levels}
    category = units.set_index("unit_id").layer
    for unit_id, group in rows.groupby("unit_id"):
        stimuli = group[group.role == "stimulus"]
        shown = set(zip(stimuli.distortion, stimuli.level))
        if (group.role == "mask").sum() != 1:
            problems.append(f"unit {unit_id}: needs exactly one mask image")
        if shown != expected or len(stimuli) != len(expected):
            problems.append(f"unit {unit_id}: stimuli at {sorted(shown)}, but {MANIFEST} lists "
                            f"the distortion levels {sorted(expected)} (each once)")
        wrong = stimuli.category != category.get(unit_id)
        if wrong.any():
            problems.append(f"unit {unit_id}: image {stimuli[wrong].image_id.iloc[0]} has "
                            f"category {stimuli[wrong].category.iloc[0]!r}, the unit's is "
                            f"{category.get(unit_id)!r}")
        if len(problems) > MAX_LISTED_PROBLEMS:
            break
    return set(rows.unit_id)


def _check_structure(units: pd.DataFrame, images: pd.DataFrame, problems: list[str],
                     manifest: dict | None = None) -> None:
    _check_occlusion(images, problems)
    categorised = _check_categorisation(units, images, manifest or {}, problems)
    natural = images[(images.kind == "natural") & (images.distribution == IN_DISTRIBUTION)]
    for unit_id in units.unit_id:
        if unit_id in categorised:
            continue
        rows = natural[natural.unit_id == unit_id]
        if rows.empty:
            problems.append(f"unit {unit_id}: no natural images")
            continue
        for batch, group in rows.groupby("batch"):
            counts = group.role.value_counts()
            n_max, n_min = counts.get("reference_max", 0), counts.get("reference_min", 0)
            if n_max == 0 or n_max != n_min:
                problems.append(f"unit {unit_id} batch {batch}: {n_max} max and {n_min} min "
                                f"natural references (need the same number, at least 1)")
            easy = group[group.difficulty == "easy"].role.value_counts()
            if easy.get("query_max", 0) != 1 or easy.get("query_min", 0) != 1:
                problems.append(f"unit {unit_id} batch {batch}: needs exactly one easy query_max "
                                f"and one easy query_min")
        synthetic = images[(images.kind == "synthetic") & (images.unit_id == unit_id)]
        if not synthetic.empty:
            counts = synthetic.role.value_counts()
            if counts.get("reference_max", 0) != counts.get("reference_min", 0):
                problems.append(f"unit {unit_id}: synthetic max and min references differ in number")


def _check_files(where: Path, images: pd.DataFrame, size: int, verify_hashes: bool,
                 problems: list[str], decode: bool = False) -> None:
    for row in images.itertuples(index=False):
        path = where / row.path
        if not path.is_file():
            problems.append(f"image {row.image_id}: file {row.path} is missing")
            continue
        try:
            with Image.open(path) as image:
                if image.size != (size, size):
                    problems.append(f"image {row.image_id}: {row.path} is {image.size[0]}x"
                                    f"{image.size[1]}, expected {size}x{size}")
                if decode:
                    image.load()
        except (UnidentifiedImageError, OSError) as exc:
            problems.append(f"image {row.image_id}: {row.path} is not a readable image ({exc})")
            continue
        if verify_hashes and row.sha256 and sha256_file(path) != row.sha256:
            problems.append(f"image {row.image_id}: {row.path} does not match its sha256")
        if len(problems) > MAX_LISTED_PROBLEMS:
            return
