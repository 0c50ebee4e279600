"""Which images a choice trial shows where on the lab's screen (a bundle's `lab.py` says)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Placement:
    """The left and right 3x3 grids (or one large image on the left) and the answer images,
    option -> image id, top to bottom."""

    options: dict[str, str]
    right: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    left_single: str | None = None  # shown over the whole left grid instead of `left`
