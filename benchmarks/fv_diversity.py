"""How varied a set's feature visualizations look beside its natural references, with a contact
sheet.

    .venv/bin/python benchmarks/fv_diversity.py SET [--sheet docs/images/SHEET.png] \
        [--content efficientnet-lite0]

Per unit and side (max, min): the mean pairwise correlation of the 16-bin per-channel colour
histograms among the diverse visualizations and among as many natural references (the most
extreme ones first), then each column's median over units; the target (issue 27) is a median
below 0.9 per side for the visualizations. Colour histograms miss what the images show:
`--content MODEL` adds the mean pairwise cosine similarity of MODEL's penultimate features (the
MIS backbone's embedding) among the same images, a measure of how alike their content is.
`--sheet` writes one row per unit: natural max
references, diverse max visualizations, diverse min visualizations, natural min references
(`--per-group` images each, 64 px).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.stimulus_set import load_stimulus_set
from stimuli.images import histogram_correlation

TARGET = 0.9
THUMB = 64


def side_images(stimulus_set, unit_id: str, side: str, kind: str) -> list[Path]:
    """A unit's references of one side and kind, the most extreme first (batch, then rank)."""
    images = stimulus_set.images
    rows = images[(images.unit_id == unit_id) & (images.role == f"reference_{side}")
                  & (images.kind == kind)]
    if kind == "synthetic":
        rows = rows[rows["rank"] > 0]  # rank 0 is the non-diverse image
    rows = rows.sort_values(["rank", "batch"], kind="stable").drop_duplicates("path")
    return [stimulus_set.path / rel for rel in rows.path]


def load(paths: list[Path]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])


def content_similarity(backbone, images: np.ndarray) -> float:
    """Mean pairwise cosine similarity of the images' embeddings (1: the same content)."""
    import torch

    vectors = backbone.embed(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()).numpy()
    n = len(vectors)
    similarity = vectors @ vectors.T
    return float((similarity.sum() - np.trace(similarity)) / (n * (n - 1)))


def print_table(title: str, rows: list[tuple[str, dict]], columns: list[str]) -> dict:
    """The per-unit table and its medians; the medians."""
    print(title)
    print(f"{'unit':48s} " + " ".join(f"{c:>11s}" for c in columns))
    for unit_id, figures in rows:
        print(f"{unit_id:48s} " + " ".join(f"{figures[c]:11.3f}" for c in columns))
    medians = {c: float(np.nanmedian([f[c] for _, f in rows])) for c in columns}
    print(f"{'median':48s} " + " ".join(f"{medians[c]:11.3f}" for c in columns))
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("set_dir")
    parser.add_argument("--sheet", default=None)
    parser.add_argument("--per-group", type=int, default=4)
    parser.add_argument("--content", default=None, metavar="MODEL",
                        help="Also the content similarity in MODEL's embedding.")
    args = parser.parse_args()
    stimulus_set = load_stimulus_set(args.set_dir)
    backbone = None
    if args.content:
        from stimuli.observers.backbones import ModelBackbone

        backbone = ModelBackbone(args.content)
    rows, content_rows, sheet_rows = [], [], []
    for unit_id in stimulus_set.units.unit_id:
        figures, content, groups = {}, {}, {}
        for side in ("max", "min"):
            synthetic = side_images(stimulus_set, unit_id, side, "synthetic")
            natural = side_images(stimulus_set, unit_id, side, "natural")[:len(synthetic)]
            figures[f"fv_{side}"] = histogram_correlation(load(synthetic))
            figures[f"natural_{side}"] = histogram_correlation(load(natural))
            if backbone is not None:
                content[f"fv_{side}"] = content_similarity(backbone, load(synthetic))
                content[f"natural_{side}"] = content_similarity(backbone, load(natural))
            groups[side] = (natural[:args.per_group], synthetic[:args.per_group])
        rows.append((unit_id, figures))
        content_rows.append((unit_id, content))
        sheet_rows.append(groups["max"][0] + groups["max"][1] + groups["min"][1]
                          + groups["min"][0])
    columns = ["fv_max", "natural_max", "fv_min", "natural_min"]
    medians = print_table(f"{stimulus_set.path}: mean pairwise colour-histogram correlation "
                          f"(16 bins per channel)", rows, columns)
    for side in ("max", "min"):
        verdict = "met" if medians[f"fv_{side}"] < TARGET else "NOT met"
        print(f"{side}: median {medians[f'fv_{side}']:.3f} (target < {TARGET}: {verdict})")
    if backbone is not None:
        print_table(f"mean pairwise cosine similarity of {backbone.name}'s embeddings (content)",
                    content_rows, columns)
    if args.sheet:
        width = max(len(r) for r in sheet_rows)
        sheet = Image.new("RGB", (width * THUMB, len(sheet_rows) * THUMB), "white")
        for y, paths in enumerate(sheet_rows):
            for x, path in enumerate(paths):
                thumb = Image.open(path).convert("RGB").resize((THUMB, THUMB), Image.BICUBIC)
                sheet.paste(thumb, (x * THUMB, y * THUMB))
        Path(args.sheet).parent.mkdir(parents=True, exist_ok=True)
        sheet.save(args.sheet)
        print(f"contact sheet: {args.sheet} (per row: natural max, visualizations max, "
              f"visualizations min, natural min)")


if __name__ == "__main__":
    main()
