"""The stimulus-set format in one place: a folder of `stimuli.json` (the manifest, with the
tables' hashes), `units.csv`, `images.csv` and `images/`. `reader` loads and validates a set,
`integrity` checks its tables against the manifest and each other, `writer` writes one
(`stimuli` renders and mines the images; `experiments` reads them)."""
from experiments.stimulus_set.integrity import sha256_file
from experiments.stimulus_set.reader import (
    CATEGORISATION_COLUMNS,
    CATEGORISATION_KIND,
    CATEGORISATION_ROLES,
    DEFAULT_IMAGE_SIZE,
    IMAGE_COLUMNS,
    IMAGES_CSV,
    KINDS,
    MANIFEST,
    MANIFEST_KEYS,
    OCCLUDER_COLUMNS,
    OCCLUSION_KIND,
    OCCLUSION_ROLES,
    QUERY_ROLES,
    REFERENCE_ROLES,
    ROLES,
    UNIT_COLUMNS,
    UNITS_CSV,
    StimulusSet,
    load_stimulus_set,
    occlusion_split,
    unit_key,
)

__all__ = ["CATEGORISATION_COLUMNS", "CATEGORISATION_KIND", "CATEGORISATION_ROLES", "DEFAULT_IMAGE_SIZE", "IMAGES_CSV", "IMAGE_COLUMNS", "KINDS", "MANIFEST",
           "MANIFEST_KEYS", "OCCLUDER_COLUMNS", "OCCLUSION_KIND", "OCCLUSION_ROLES",
           "QUERY_ROLES", "REFERENCE_ROLES", "ROLES", "UNITS_CSV", "UNIT_COLUMNS", "StimulusSet",
           "load_stimulus_set", "occlusion_split", "sha256_file", "unit_key"]
