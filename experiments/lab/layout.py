"""Where everything on the lab's trial screen goes, in PsychoPy 'height' units (the screen is 1
high and `aspect` wide, origin at its centre), for any screen shape.

As on the web page: the low examples left, the high examples right (3x3 grids), the answer
images (two, or as many as the task type's options) stacked in the centre at 1.6 times a
reference's size, each with its three confidence buttons beside it (very, fairly, not sure). The reference size fits the
screen's width (4:3 and 5:4 screens get smaller cells than 16:9), or is given (from degrees of
visual angle); a size that does not fit is an error, never an overlap.
"""
from __future__ import annotations

from dataclasses import dataclass

from experiments.errors import InterpsyError

QUERY_SCALE = 1.6  # query image side / reference side, as on the web page
GAP_SCALE = 0.06  # gap between references / reference side
MAX_CELL = 0.17
BUTTON_W, BUTTON_GAP = 0.17, 0.008
IMAGE_TO_BUTTONS = 0.015
QUERY_GAP = 0.04  # between the query rows
TWO = ("a", "b")
COLUMN_MARGIN, OUTER_MARGIN = 0.04, 0.02
CENTRE_Y = -0.01


@dataclass(frozen=True)
class Box:
    """A rectangle by centre and size."""

    x: float
    y: float
    w: float
    h: float

    def overlaps(self, other: Box) -> bool:
        return (abs(self.x - other.x) < (self.w + other.w) / 2
                and abs(self.y - other.y) < (self.h + other.h) / 2)

    def inside(self, half_width: float, half_height: float = 0.5) -> bool:
        return (abs(self.x) + self.w / 2 <= half_width + 1e-9
                and abs(self.y) + self.h / 2 <= half_height + 1e-9)


@dataclass(frozen=True)
class TrialLayout:
    """Every box of the trial screen, and the text positions around them."""

    aspect: float
    cell: float  # reference side
    query: float  # query side
    gap: float  # between references
    refs: dict[str, list[Box]]  # min (left) / max (right), row by row
    queries: dict[str, Box]  # option -> its image, top to bottom (a upper, b lower)
    buttons: dict[tuple[str, int], Box]  # (choice, confidence)
    title_y: float
    side_label_y: float
    feedback_y: float
    footer_y: float
    grid_x: float  # centre of the right grid (the left one at -grid_x)
    options: tuple[str, ...] = TWO

    def boxes(self) -> list[Box]:
        return [*self.refs["min"], *self.refs["max"], *self.queries.values(),
                *self.buttons.values()]


def _needs(cell: float, query: float, gap: float, rows: int = 2) -> tuple[float, float]:
    """(width, height) in height units that a screen needs for these sizes and query rows."""
    grid = 3 * cell + 2 * gap
    group = query + IMAGE_TO_BUTTONS + BUTTON_W
    width = 2 * grid + group + 2 * COLUMN_MARGIN + 2 * OUTER_MARGIN
    return width, max(rows * query + (rows - 1) * QUERY_GAP, grid) + 0.24


def max_cell(aspect: float, rows: int = 2) -> float:
    """The largest reference side (with the web page's proportions) that fits `aspect`."""
    width, _ = _needs(1.0, QUERY_SCALE, GAP_SCALE, rows)
    fixed, _ = _needs(0.0, 0.0, 0.0, rows)
    tall = max(rows * QUERY_SCALE, 3 + 2 * GAP_SCALE)
    return min((aspect - fixed) / (width - fixed),
               (1 - 0.24 - (rows - 1) * QUERY_GAP) / tall)


def trial_layout(aspect: float, cell: float | None = None, query: float | None = None,
                 gap: float | None = None, confidence_order: tuple[int, ...] = (3, 2, 1),
                 options: tuple[str, ...] = TWO) -> TrialLayout:
    """The layout for a screen `aspect` wide with a row per option. Without `cell` (the
    reference side) it fits the screen; `query` and `gap` default to the web page's
    proportions of `cell`."""
    rows = len(options)
    if cell is None:
        cell = min(MAX_CELL, max_cell(aspect, rows))
    query = QUERY_SCALE * cell if query is None else query
    gap = GAP_SCALE * cell if gap is None else gap
    width, height = _needs(cell, query, gap, rows)
    if width > aspect + 1e-9 or height > 1 + 1e-9:
        raise InterpsyError(f"references of {cell:.3f} and queries of {query:.3f} screen heights "
                            f"do not fit a screen of aspect {aspect:.2f} beside the buttons "
                            f"(they need {width:.2f} x {height:.2f}); choose smaller sizes or a "
                            f"shorter viewing distance (sizes in degrees take fewer pixels "
                            f"closer to the screen)")
    grid = 3 * cell + 2 * gap
    group = query + IMAGE_TO_BUTTONS + BUTTON_W
    grid_x = group / 2 + COLUMN_MARGIN + grid / 2
    refs = {}
    for side, sign in (("min", -1), ("max", 1)):
        refs[side] = [Box(sign * grid_x + (col - 1) * (cell + gap),
                          CENTRE_Y + (1 - row) * (cell + gap), cell, cell)
                      for row in range(3) for col in range(3)]
    image_x = -group / 2 + query / 2
    button_x = group / 2 - BUTTON_W / 2
    button_h = (query - 2 * BUTTON_GAP) / 3
    queries, buttons = {}, {}
    for row, choice in enumerate(options):
        y = CENTRE_Y + ((rows - 1) / 2 - row) * (query + QUERY_GAP)
        queries[choice] = Box(image_x, y, query, query)
        for k, confidence in enumerate(confidence_order):
            buttons[(choice, confidence)] = Box(
                button_x, y + (1 - k) * (button_h + BUTTON_GAP), BUTTON_W, button_h)
    column = rows * query + (rows - 1) * QUERY_GAP
    top, bottom = CENTRE_Y + column / 2, CENTRE_Y - column / 2
    return TrialLayout(aspect=aspect, cell=cell, query=query, gap=gap, refs=refs, queries=queries, buttons=buttons,
                       title_y=(top + 0.5) / 2 + 0.02, side_label_y=CENTRE_Y + grid / 2 + 0.03,
                       feedback_y=(bottom - 0.5) / 2 + 0.03, footer_y=-0.46,
                       grid_x=grid_x, options=tuple(options))
