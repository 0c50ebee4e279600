"""Drawing with PsychoPy: the two-choice trial screen, text screens, buttons, mouse, screenshots.

Layout (units 'height', see experiments.lab.layout): a 3x3 grid (or one large image) left, a
3x3 grid right, and the answer images in the centre, one row per option (a upper, b lower),
each with its three confidence buttons beside it (very, fairly, not sure; the type's keys).
Which images go where is the task type's (its `lab_screen` module), and so are the words.
"""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
from psychopy import core, event, logging, visual  # noqa: F401  (core keeps psychopy's clocks)

from experiments.lab.display import geometry_facts, layout_for
from experiments.lab.keys import key_for
from experiments.lab.layout import TWO, Box, TrialLayout, trial_layout
from experiments.lab.task import LabTask, PlannedTrial
from experiments.study.instructions import plain_text
from experiments.tasks import get_task
from experiments.tasks.choice import CONFIDENCE_LABELS
from experiments.tasks.imi_2afc import ImiTwoAfc

GREY, WHITE, DIM = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (-0.3, -0.3, -0.3)
GREEN, RED, BLUE = (-0.6, 0.6, -0.6), (0.7, -0.6, -0.6), (-0.4, -0.1, 0.6)
AMBER = (1.0, 0.5, -0.8)
LABEL = dict(CONFIDENCE_LABELS)
EXAMPLE_CELL, EXAMPLE_GAP, EXAMPLE_TOP = 0.09, 0.008, 0.02  # the instructions' example grids
TEXT_TOP = 0.38  # an example page's text starts here


class LabScreen:
    """One PsychoPy window and every stimulus the lab task draws."""

    def __init__(self, fullscreen: bool = False, screen: int = 0, size: tuple[int, int] = (1024, 768),
                 win: Any = None, monitor: Any = None):
        logging.console.setLevel(logging.ERROR)
        # A monitor profile gives PsychoPy the screen's measures and gamma calibration.
        self.monitor = monitor
        extra = {"monitor": monitor} if monitor is not None else {}
        self.win = win or visual.Window(size=size, fullscr=fullscreen, screen=screen, units="height",
                                        color=GREY, allowGUI=not fullscreen, waitBlanking=True,
                                        checkTiming=False, **extra)
        self.win.mouseVisible = True
        self.mouse = event.Mouse(win=self.win)
        self._was_pressed = False
        width, height = self.win.size
        wrap = min(1.2, 0.95 * width / height)
        self.text = visual.TextStim(self.win, "", pos=(0, 0.05), height=0.032,
                                    wrapWidth=min(1.15, 0.9 * width / height), color=WHITE)
        self.title = visual.TextStim(self.win, "", pos=(0, 0.44), height=0.035, color=WHITE,
                                     wrapWidth=wrap)
        self.question = visual.TextStim(self.win, ImiTwoAfc.question, pos=(0, 0.4), height=0.032,
                                        color=WHITE, wrapWidth=wrap)
        self.feedback = visual.TextStim(self.win, "", height=0.04, color=WHITE)
        self.footer = visual.TextStim(self.win, "", pos=(0, -0.46), height=0.026, color=WHITE)
        self.counter = visual.TextStim(self.win, "", height=0.026, color=WHITE)
        self.note = visual.TextStim(self.win, "", pos=(0, -0.425), height=0.022, color=AMBER,
                                    wrapWidth=wrap, anchorVert="bottom")  # grows upwards
        self.example: list[Any] = []
        self.use_layout(trial_layout(width / height))

    def use_layout(self, layout: TrialLayout) -> None:
        """Place the trial screen's stimuli as `layout` says."""
        self.layout = layout
        self.refs = {side: [self._image(box) for box in boxes]
                     for side, boxes in layout.refs.items()}
        self.queries = {c: self._image(box) for c, box in layout.queries.items()}
        self.frames = {c: visual.Rect(self.win, box.w + 0.02, box.h + 0.02, pos=(box.x, box.y),
                                      lineColor=GREEN, fillColor=None, lineWidth=6)
                       for c, box in layout.queries.items()}
        self.buttons: dict[tuple[str, int], Any] = {}
        self.labels: dict[tuple[str, int], Any] = {}
        for key, box in layout.buttons.items():
            self.buttons[key] = visual.Rect(self.win, box.w, box.h, pos=(box.x, box.y),
                                            fillColor=DIM, lineColor=WHITE)
            keys = key_for() if layout.options == ImiTwoAfc.options else {}
            self.labels[key] = visual.TextStim(
                self.win, f"{keys.get(key, '')}  {LABEL[key[1]]}", pos=(box.x, box.y),
                height=min(0.022, box.h * 0.45), color=WHITE, wrapWidth=box.w)
        self.question.pos = (0, layout.title_y)
        self.side_labels = {side: visual.TextStim(self.win, ImiTwoAfc.labels[side],
                                                  pos=(sign * layout.grid_x, layout.side_label_y),
                                                  height=0.026, color=WHITE)
                            for side, sign in (("left", -1), ("right", 1))}
        left = layout.refs["min"]
        span = left[-1].x - left[0].x + left[0].w  # the whole left grid
        self.base = visual.ImageStim(self.win, image=None, pos=(-layout.grid_x, left[4].y),
                                     size=(span, span), interpolate=True)
        self.base_shown = False
        self.feedback.pos = (0, layout.feedback_y)
        self.footer.pos = (0, layout.footer_y)
        self.counter.pos = (layout.grid_x, layout.footer_y)

    def show_noise(self, seed: int = 0) -> None:
        """Fill the 20 image places with seeded noise (the timing test needs no experiment)."""
        rng = np.random.default_rng(seed)
        for stim in [*self.refs["min"], *self.refs["max"], *self.queries.values()]:
            stim.image = rng.uniform(-1, 1, (128, 128, 3))
            stim.setOpacity(1.0)

    def use_display(self, display: dict[str, Any], options: tuple[str, ...] = TWO
                    ) -> dict[str, Any]:
        """Lay the trial screen out for the spec's sizes (degrees need the monitor profile) and
        a row per answer option; returns the geometry facts to record with the session."""
        facts = self.facts()
        screen = (facts["screen_width"], facts["screen_height"])
        if self.monitor is not None:  # the profile's pixels are the screen's, not the window's
            self.monitor.setSizePix(list(screen))
        self.use_layout(layout_for(display, self.monitor, tuple(self.win.size), options))
        return geometry_facts(self.layout, self.monitor, tuple(self.win.size), screen)

    # ---- construction helpers ----------------------------------------------------------
    def _image(self, box: Box) -> Any:
        return visual.ImageStim(self.win, image=None, pos=(box.x, box.y), size=(box.w, box.h),
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
    def set_trial(self, trial: PlannedTrial, task: LabTask) -> None:
        """Load a trial's images (empty cells when a condition shows fewer references)."""
        words = get_task(task.task_type)
        placed = words.lab_module().place(trial.stimulus)
        if tuple(placed.options) != self.layout.options:  # a screen not laid out for the task
            self.use_layout(trial_layout(self.layout.aspect, options=tuple(placed.options)))
        self.question.text = words.question
        keys = key_for(task.task_type)
        for key, label in self.labels.items():
            text = f"{keys[key]}  {LABEL[key[1]]}"
            if label.text != text:  # a new text is drawn anew: only when the type's keys differ
                label.text = text
        for side, label in self.side_labels.items():
            label.text = words.labels[side]
        for side, ids in (("min", placed.left), ("max", placed.right)):
            for k, stim in enumerate(self.refs[side]):
                stim.image = str(task.image_path(ids[k])) if k < len(ids) else None
                stim.setOpacity(1.0 if k < len(ids) else 0.0)
        self.base_shown = placed.left_single is not None
        if self.base_shown:
            self.base.image = str(task.image_path(placed.left_single))
        for option, image in placed.options.items():
            self.queries[option].image = str(task.image_path(image))

    def draw_trial(self, locked: bool, chosen: tuple[str, int] | None = None,
                   correct_choice: str | None = None, feedback: str = "", counter: str = "",
                   footer: str = "") -> None:
        """Draw the trial screen into the back buffer (call win.flip to show it)."""
        self.question.draw()
        for label in self.side_labels.values():
            label.draw()
        for stims in self.refs.values():
            for stim in stims:
                if stim.opacity:
                    stim.draw()
        if self.base_shown:
            self.base.draw()
        for choice, stim in self.queries.items():
            stim.draw()
            if correct_choice == choice:
                self.frames[choice].draw()
        for key, button in self.buttons.items():
            button.fillColor = (BLUE if key == chosen else DIM if locked else (0.2, 0.2, 0.2))
            button.opacity = 0.45 if locked and key != chosen else 1.0
            button.draw()
            self.labels[key].draw()
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

    def set_example(self, trial: PlannedTrial, task: LabTask) -> None:
        """The instructions' example, as on the web page: a trial's reference grids (or its
        large image) small, each under its side's label, without the answer images."""
        words = get_task(task.task_type)
        if not hasattr(words.lab_module(), "place"):  # a type that draws its own trial screen
            self.example = []
            return
        placed = words.lab_module().place(trial.stimulus)
        step = EXAMPLE_CELL + EXAMPLE_GAP
        span = 3 * EXAMPLE_CELL + 2 * EXAMPLE_GAP
        self.example = []  # (stimulus, x, y below the example's top)
        for sign, side, ids, single in ((-1, "left", placed.left, placed.left_single),
                                        (1, "right", placed.right, None)):
            x = sign * (span / 2 + 0.06)
            self.example.append((visual.TextStim(self.win, words.labels[side], height=0.024,
                                                 color=WHITE), x, 0.0))
            if single is not None:
                self.example.append((visual.ImageStim(
                    self.win, image=str(task.image_path(single)), size=(span, span),
                    interpolate=True), x, -0.03 - span / 2))
                continue
            for k, image in enumerate(ids[:9]):
                row, col = divmod(k, 3)
                self.example.append((visual.ImageStim(
                    self.win, image=str(task.image_path(image)), interpolate=True,
                    size=(EXAMPLE_CELL, EXAMPLE_CELL)),
                    x + (col - 1) * step, -0.03 - EXAMPLE_CELL / 2 - row * step))

    def draw_message(self, title: str, body: str, footer: str = "Press space to continue",
                     example: bool = False, note: str = "") -> None:
        """A text screen (instructions, breaks, end); `example` adds set_example's grids below
        the text, `note` a line for the experimenter above the footer."""
        self.title.text = title
        self.title.draw()
        self.text.text = plain_text(body)
        shown = example and bool(self.example)
        self.text.anchorVert = "top" if shown else "center"
        self.text.pos = (0, TEXT_TOP) if shown else (0, 0.05)
        self.text.draw()
        if shown:
            text_height = self.text.boundingBox[1] / self.win.size[1]
            lowest = -0.42 + 0.03 + 3 * EXAMPLE_CELL + 2 * EXAMPLE_GAP  # above the footer
            top = max(lowest, min(EXAMPLE_TOP, TEXT_TOP - text_height - 0.05))
            for stim, x, y in self.example:
                stim.pos = (x, top + y)
                stim.draw()
        if note:
            self.note.text = note
            self.note.draw()
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
