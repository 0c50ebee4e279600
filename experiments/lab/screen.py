"""Drawing with PsychoPy: the IMI trial screen, text screens, buttons, mouse and screenshots.

Layout (units 'height'): left a 3x3 grid of the minimally activating references, right a 3x3
grid of the maximally activating ones; centre the two queries, a upper and b lower, each with a
row of three confidence buttons under it (keys 1 2 3 for a, 8 9 0 for b).
"""
from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import Any

from psychopy import core, event, logging, visual  # noqa: F401  (core keeps psychopy's clocks)

from experiments.lab.keys import KEY_FOR
from experiments.lab.task import LabTask, LabTrial

CELL, GAP = 0.17, 0.012
QUERY = 0.17
BUTTON_W, BUTTON_H = 0.075, 0.055
GREY, WHITE, DIM = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (-0.3, -0.3, -0.3)
GREEN, RED, BLUE = (-0.6, 0.6, -0.6), (0.7, -0.6, -0.6), (-0.4, -0.1, 0.6)
QUERY_Y = {"a": 0.25, "b": -0.09}
ROW_Y = {c: y - QUERY / 2 - BUTTON_H / 2 - 0.015 for c, y in QUERY_Y.items()}


def plain(text: str) -> str:
    """Instruction text with HTML tags removed (pages are written for the web too)."""
    text = re.sub(r"<\s*br\s*/?>|</p>", "\n", text, flags=re.IGNORECASE)
    return re.sub(r"<[^>]+>", "", text).strip()


class LabScreen:
    """One PsychoPy window and every stimulus the lab task draws."""

    def __init__(self, fullscreen: bool = False, screen: int = 0, size: tuple[int, int] = (1024, 768),
                 win: Any = None):
        logging.console.setLevel(logging.ERROR)
        self.win = win or visual.Window(size=size, fullscr=fullscreen, screen=screen, units="height",
                                        color=GREY, allowGUI=not fullscreen, waitBlanking=True,
                                        checkTiming=False)
        self.win.mouseVisible = True
        self.mouse = event.Mouse(win=self.win)
        self._was_pressed = False
        half = self.win.size[0] / self.win.size[1] / 2
        self.grid_x = min(0.42, half - 1.5 * CELL - GAP - 0.02)
        self.refs = {side: [self._image(self._cell(side, k)) for k in range(9)]
                     for side in ("min", "max")}
        self.queries = {c: self._image((0, y), QUERY) for c, y in QUERY_Y.items()}
        self.frames = {c: visual.Rect(self.win, QUERY + 0.02, QUERY + 0.02, pos=(0, y),
                                      lineColor=GREEN, fillColor=None, lineWidth=6)
                       for c, y in QUERY_Y.items()}
        self.buttons: dict[tuple[str, int], Any] = {}
        self.labels: dict[tuple[str, int], Any] = {}
        for choice in ("a", "b"):
            for confidence in (1, 2, 3):
                pos = ((confidence - 2) * (BUTTON_W + 0.008), ROW_Y[choice])
                self.buttons[(choice, confidence)] = visual.Rect(
                    self.win, BUTTON_W, BUTTON_H, pos=pos, fillColor=DIM, lineColor=WHITE)
                self.labels[(choice, confidence)] = visual.TextStim(
                    self.win, KEY_FOR[(choice, confidence)], pos=pos, height=0.03, color=WHITE)
        self.text = visual.TextStim(self.win, "", pos=(0, 0.05), height=0.032, wrapWidth=1.15,
                                    color=WHITE)
        self.title = visual.TextStim(self.win, "", pos=(0, 0.44), height=0.035, color=WHITE,
                                     wrapWidth=1.2)
        self.side_labels = [visual.TextStim(self.win, label, pos=(x, 3 * CELL / 2 + 0.07),
                                            height=0.028, color=WHITE)
                            for label, x in (("weak (min)", -self.grid_x),
                                             ("strong (max)", self.grid_x))]
        self.confidence_hint = visual.TextStim(
            self.win, "unsure  <  sure", pos=(0, ROW_Y["b"] - 0.06), height=0.022, color=WHITE)
        self.feedback = visual.TextStim(self.win, "", pos=(0, -0.37), height=0.04, color=WHITE)
        self.footer = visual.TextStim(self.win, "", pos=(0, -0.45), height=0.026, color=WHITE)
        self.counter = visual.TextStim(self.win, "", pos=(self.grid_x, -0.44), height=0.026,
                                       color=WHITE)

    # ---- construction helpers ----------------------------------------------------------
    def _cell(self, side: str, k: int) -> tuple[float, float]:
        row, col = divmod(k, 3)
        x0 = -self.grid_x if side == "min" else self.grid_x
        return x0 + (col - 1) * (CELL + GAP), (1 - row) * (CELL + GAP) + 0.02

    def _image(self, pos: tuple[float, float], size: float = CELL) -> Any:
        return visual.ImageStim(self.win, image=None, pos=pos, size=(size, size),
                                interpolate=True)

    # ---- facts -------------------------------------------------------------------------
    def facts(self) -> dict[str, Any]:
        """Screen facts for the participants table (client_info)."""
        width, height = (int(v) for v in self.win.size)
        screen = getattr(getattr(self.win, "winHandle", None), "screen", None)
        return {"window_width": width, "window_height": height,
                "screen_width": int(getattr(screen, "width", width)),
                "screen_height": int(getattr(screen, "height", height)),
                "device_pixel_ratio": 1.0, "fullscreen": bool(self.win._isFullScr),
                "user_agent": f"PsychoPy/{_psychopy_version()} ({platform.platform()})"}

    # ---- trial screen ------------------------------------------------------------------
    def set_trial(self, trial: LabTrial, task: LabTask) -> None:
        """Load a trial's 20 images (empty cells when a condition shows fewer references)."""
        for side, ids in (("min", trial.references_min), ("max", trial.references_max)):
            for k, stim in enumerate(self.refs[side]):
                stim.image = str(task.image_path(ids[k])) if k < len(ids) else None
                stim.setOpacity(1.0 if k < len(ids) else 0.0)
        self.queries["a"].image = str(task.image_path(trial.query_a))
        self.queries["b"].image = str(task.image_path(trial.query_b))

    def draw_trial(self, locked: bool, chosen: tuple[str, int] | None = None,
                   correct_choice: str | None = None, feedback: str = "", counter: str = "",
                   footer: str = "") -> None:
        """Draw the trial screen into the back buffer (call win.flip to show it)."""
        self.title.text = "Which centre image matches the right examples better?"
        self.title.draw()
        for label in self.side_labels:
            label.draw()
        for stims in self.refs.values():
            for stim in stims:
                if stim.opacity:
                    stim.draw()
        for choice, stim in self.queries.items():
            stim.draw()
            if correct_choice == choice:
                self.frames[choice].draw()
        for key, button in self.buttons.items():
            button.fillColor = (BLUE if key == chosen else DIM if locked else (0.2, 0.2, 0.2))
            button.opacity = 0.45 if locked and key != chosen else 1.0
            button.draw()
            self.labels[key].draw()
        self.confidence_hint.draw()
        if feedback:
            self.feedback.text = feedback
            self.feedback.color = GREEN if feedback.startswith("Correct") else RED
            self.feedback.draw()
        if counter:
            self.counter.text = counter
            self.counter.draw()
        if footer:
            self.footer.text = footer
            self.footer.draw()

    def draw_message(self, title: str, body: str, footer: str = "Press space to continue") -> None:
        """A text screen (instructions, breaks, end)."""
        self.title.text = title
        self.title.draw()
        self.text.text = plain(body)
        self.text.draw()
        if footer:
            self.footer.text = footer
            self.footer.draw()

    # ---- mouse ---------------------------------------------------------------------------
    def clicked(self) -> bool:
        """True once per left-button press (edge-triggered)."""
        pressed = bool(self.mouse.getPressed()[0])
        edge = pressed and not self._was_pressed
        self._was_pressed = pressed
        return edge

    def button_at(self, pos: tuple[float, float]) -> tuple[str, int] | None:
        """The response button under a position, if any."""
        for key, button in self.buttons.items():
            if button.contains(pos):
                return key
        return None

    def clicked_button(self) -> tuple[str, int] | None:
        """The button just clicked, if any."""
        return self.button_at(tuple(self.mouse.getPos())) if self.clicked() else None

    # ---- misc ----------------------------------------------------------------------------
    def screenshot(self, path: str | Path) -> Path:
        """Save the frame drawn so far (call before its flip) as an image file."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        # The back buffer holds the finished frame before the flip; the front buffer read
        # after a flip is undefined on some drivers (black under Xvfb).
        self.win.getMovieFrame(buffer="back")
        self.win.saveMovieFrames(str(out))
        return out

    def close(self) -> None:
        self.win.close()


def _psychopy_version() -> str:
    import psychopy
    return psychopy.__version__
