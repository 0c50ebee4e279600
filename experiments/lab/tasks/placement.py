"""Which images a trial shows where on the lab's two-choice screen."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Placement:
    """The left and right 3x3 grids (or one large image on the left), the two answer images."""

    a: str
    b: str
    right: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    left_single: str | None = None  # shown over the whole left grid instead of `left`
