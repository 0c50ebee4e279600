"""The 16 entry-level categories of Geirhos et al.'s model-vs-human benchmark as sets of
ImageNet-1k classes (WordNet hyponyms of each category, some removed by hand, as "Generalisation
in humans and deep neural networks", NeurIPS 2018, describes; 207 classes, each in one
category), interpsy's few additions for the demo's photos, and a classifier's 1,000
probabilities mapped onto them by the mean over each category's classes
(docs/categorisation.md)."""
from __future__ import annotations

import numpy as np

from experiments.vocabulary import SIXTEEN_CLASSES


def _spans(*spans: int | tuple[int, int]) -> tuple[int, ...]:
    """Class indices from single indices and inclusive (first, last) spans."""
    out: list[int] = []
    for span in spans:
        out += [span] if isinstance(span, int) else list(range(span[0], span[1] + 1))
    return tuple(out)


CATEGORY_CLASSES: dict[str, tuple[int, ...]] = {
    "airplane": _spans(404),  # airliner
    "bear": _spans((294, 297)),
    "bicycle": _spans(444, 671),  # bicycle-built-for-two, mountain bike
    "bird": _spans(8, (10, 16), (18, 20), (22, 24), (80, 83), (87, 96), (98, 100), (127, 133),
                   (135, 145)),
    "boat": _spans(472, 554, 625, 814, 914),
    "bottle": _spans(440, 720, 737, 898, 899, 901, 907),
    "car": _spans(436, 511, 817),  # beach wagon, convertible, sports car
    "cat": _spans((281, 286)),
    "chair": _spans(423, 559, 765, 857),
    "clock": _spans(409, 530, 892),
    "dog": _spans((152, 191), (193, 203), (205, 226), (228, 241), (243, 250), (252, 257), 259,
                  (261, 263), (265, 268)),
    "elephant": _spans(385, 386),
    "keyboard": _spans(508, 878),
    "knife": _spans(499),  # cleaver
    "oven": _spans(766),  # rotisserie
    "truck": _spans(555, 569, 656, 675, 717, 734, 864, 867),
}

# interpsy's own additions, not the benchmark's: categories of the demo's photos outside the 16
# (scikit-image's coffee cup and rocket), as ImageNet classes of what they show.
ADDED_CATEGORY_CLASSES: dict[str, tuple[int, ...]] = {
    "cup": _spans(504, 967, 968),  # coffee mug, espresso, cup
    "rocket": _spans(657, 744, 812),  # missile, projectile, space shuttle
}


def classes_of(category: str) -> tuple[int, ...] | None:
    """The ImageNet classes of a category: the benchmark's 16, then interpsy's additions."""
    return CATEGORY_CLASSES.get(category) or ADDED_CATEGORY_CLASSES.get(category)


def category_probabilities(probabilities: np.ndarray,
                           categories: tuple[str, ...] = SIXTEEN_CLASSES) -> np.ndarray:
    """(n, 1000) class probabilities -> (n, len(categories)): each category's mean."""
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.ndim != 2 or probabilities.shape[1] != 1000:
        raise ValueError(f"expected (n, 1000) ImageNet class probabilities, got "
                         f"{probabilities.shape}")
    unknown = [c for c in categories if classes_of(c) is None]
    if unknown:
        raise ValueError(f"no ImageNet classes for {', '.join(unknown)} (the 16 categories: "
                         f"{', '.join(SIXTEEN_CLASSES)}; interpsy's additions: "
                         f"{', '.join(ADDED_CATEGORY_CLASSES)})")
    return np.stack([probabilities[:, list(classes_of(c))].mean(axis=1) for c in categories],
                    axis=1)
