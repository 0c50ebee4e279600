"""Errors of the stimuli package: one clear line for users (the root CLI exits with code 2)."""
from __future__ import annotations

from experiments.errors import InterpsyError


class StimuliError(InterpsyError):
    """A user-facing error while sampling, mining, rendering or writing stimuli."""


class ModelError(StimuliError):
    """Unknown model, missing weights, unknown layer or channel out of range."""


class ImageSourceError(StimuliError):
    """An image folder or file list that cannot be used (empty, unreadable or non-image file)."""
