"""Model-vs-human categorisation in the lab (PsychoPy): the fixation square, the image and its
mask each shown for a counted number of flips (durations in frames at the session's measured
frame rate), then the grid of categories, answered by a click or the category's key within the
response window. The flips that start the image, the mask and the grid are timed (callOnFlip);
the answer carries the durations measured between those flips and the frames they span."""
from __future__ import annotations

import math
from typing import Any

from experiments.lab.sequence import Answer
from experiments.tasks.categorisation import category_keys, planned_frames
from experiments.vocabulary import NO_RESPONSE

STAGE_Y, STAGE_SIDE = 0.17, 0.34  # 'height' units: the image's place and side
BUTTON_W, BUTTON_H, GAP = 0.2, 0.055, 0.012
GRID_TOP = STAGE_Y - STAGE_SIDE / 2 - 0.05
WHITE, DIM, BLUE, STAGE_GREY = (1, 1, 1), (-0.3, -0.3, -0.3), (-0.4, -0.1, 0.6), (-0.115,) * 3


class CategorisationScreen:
    """The stage (fixation, image, mask) and the grid of category buttons on one window."""

    def __init__(self, win: Any, categories: list[str]):
        from psychopy import visual

        self.win, self.categories = win, list(categories)
        self.keys = category_keys(self.categories)
        self.stage = visual.Rect(win, STAGE_SIDE, STAGE_SIDE, pos=(0, STAGE_Y),
                                 fillColor=STAGE_GREY, lineColor=None)
        self.fixation = visual.Rect(win, 0.02, 0.02, pos=(0, STAGE_Y), fillColor=None,
                                    lineColor=WHITE, lineWidth=2)
        self.image = visual.ImageStim(win, image=None, pos=(0, STAGE_Y),
                                      size=(STAGE_SIDE, STAGE_SIDE), interpolate=True)
        self.mask = visual.ImageStim(win, image=None, pos=(0, STAGE_Y),
                                     size=(STAGE_SIDE, STAGE_SIDE), interpolate=True)
        columns = math.ceil(math.sqrt(len(self.categories)))
        left = -(columns * BUTTON_W + (columns - 1) * GAP) / 2 + BUTTON_W / 2
        self.buttons, self.labels = {}, {}
        for i, category in enumerate(self.categories):
            x = left + (i % columns) * (BUTTON_W + GAP)
            y = GRID_TOP - (i // columns) * (BUTTON_H + GAP) - BUTTON_H / 2
            self.buttons[category] = visual.Rect(win, BUTTON_W, BUTTON_H, pos=(x, y),
                                                 fillColor=DIM, lineColor=WHITE)
            key = self.keys.get(category)
            self.labels[category] = visual.TextStim(
                win, f"{key}  {category}" if key else category, pos=(x, y),
                height=min(0.024, BUTTON_H * 0.45), color=WHITE, wrapWidth=BUTTON_W)

    def draw_stage(self, part: str) -> None:
        """The grey stage with the fixation square, the image or the mask."""
        self.stage.draw()
        {"fixation": self.fixation, "image": self.image, "mask": self.mask}[part].draw()

    def draw_grid(self, locked: bool, chosen: str | None = None) -> None:
        """The empty stage and the category buttons (dimmed while locked)."""
        self.stage.draw()
        for category, button in self.buttons.items():
            button.fillColor = BLUE if category == chosen else DIM if locked else (0.2, 0.2, 0.2)
            button.opacity = 0.45 if locked and category != chosen else 1.0
            button.draw()
            self.labels[category].draw()

    def category_at(self, pos: tuple[float, float]) -> str | None:
        """The category whose button holds `pos` (window 'height' units), if any."""
        return next((c for c, b in self.buttons.items() if b.contains(pos)), None)


def _screen(runner: Any, categories: list[str]) -> CategorisationScreen:
    """The runner's categorisation screen for these categories (made once per list)."""
    cached = getattr(runner, "_categorisation_screen", None)
    if cached is None or cached.categories != list(categories):
        cached = CategorisationScreen(runner.win, categories)
        runner._categorisation_screen = cached
    return cached


def _show(win: Any, draw, frames: int, stamps: dict[str, float], name: str, clock: Any) -> None:
    """`frames` flips of `draw`, the first one's time kept as stamps[name]."""
    for i in range(frames):
        draw()
        if i == 0:
            win.callOnFlip(lambda: stamps.__setitem__(name, clock.getTime()))
        win.flip()


def run_trial(runner: Any, step: Any) -> Answer:
    """Present one trial frame by frame and take its answer (a click, a key, or 'na' when the
    response window closes first)."""
    win, clock, keys = runner.win, runner.clock, runner.keys
    stimulus = step.trial.stimulus
    screen = _screen(runner, stimulus["categories"])
    screen.image.image = str(runner.task.image_path(stimulus["image"]))
    screen.mask.image = str(runner.task.image_path(stimulus["mask"]))
    frame_ms = 1000.0 / runner.frame_rate if runner.frame_rate else 1000.0 / 60
    counts = planned_frames(stimulus, frame_ms)
    dropped_before = win.nDroppedFrames
    stamps: dict[str, float] = {}
    _show(win, lambda: screen.draw_stage("fixation"), counts["fixation"], stamps, "fixation", clock)
    _show(win, lambda: screen.draw_stage("image"), counts["stimulus"], stamps, "image", clock)
    _show(win, lambda: screen.draw_stage("mask"), counts["mask"], stamps, "mask", clock)
    lock_s = runner.task.button_lock_ms / 1000.0
    window_s = (stimulus.get("response_window_ms") or math.inf) / 1000.0

    def on_grid() -> None:
        stamps["grid"] = clock.getTime()
        keys.clear()
        keys.expect("trial", step)

    screen.draw_grid(locked=lock_s > 0)
    win.callOnFlip(on_grid)
    win.flip()
    runner.screen.clicked()  # a button held from before the grid is no answer
    by_key = {key: category for category, key in screen.keys.items()}
    choice, t_response, how, key_name = None, None, "", ""
    while choice is None:
        now = clock.getTime()
        if now - stamps["grid"] >= window_s:
            choice, t_response, how = NO_RESPONSE, now, "timeout"
            break
        locked = now - stamps["grid"] < lock_s
        screen.draw_grid(locked=locked)
        if runner.screenshot_path and runner.screenshot is None and not locked:
            runner.screenshot = runner.screen.screenshot(runner.screenshot_path)
        win.flip()
        for key in keys.poll():
            runner._check_abort([key.name])
            if key.name in by_key and key.t - stamps["grid"] >= lock_s:
                choice, t_response, how, key_name = by_key[key.name], key.t, "key", key.name
                break
        if choice is None and not locked and runner.screen.clicked():
            clicked = screen.category_at(runner.screen.mouse.getPos())
            if clicked is not None:
                choice, t_response, how = clicked, clock.getTime(), "mouse"
    mask_on = stamps.get("mask", stamps["grid"])  # no mask: the grid followed the image
    durations = {"stimulus": (mask_on - stamps["image"]) * 1000.0,
                 "mask": (stamps["grid"] - mask_on) * 1000.0}
    # the frames each part was actually up (its measured duration in frames: a dropped frame
    # counts), beside the durations measured between the flips
    shown = {**{f"{part}_frames": round(ms / frame_ms) for part, ms in durations.items()},
             **{f"{part}_ms": round(ms, 3) for part, ms in durations.items()},
             "frame_ms": round(frame_ms, 4)}
    return Answer(answer={"choice": choice, **shown},
                  rt_ms=(t_response - stamps["grid"]) * 1000.0,
                  stim_onset_ms=stamps["grid"] * 1000.0, response_ms=t_response * 1000.0,
                  extra={"keyboard_backend": keys.backend, "input": how, "key": key_name,
                         "dropped_frames": int(win.nDroppedFrames - dropped_before),
                         "planned_frames": counts,
                         "frame_rate": runner.frame_rate})


def pilot_key(how: str, step: Any, rng: Any) -> str:
    """The key a pilot presses: the right category's (`correct`), the next one's (`wrong`) or
    a random one's."""
    categories = step.trial.stimulus["categories"]
    keys = category_keys(categories)
    right = step.trial.answer_key
    chosen = {"correct": right,
              "wrong": categories[(categories.index(right) + 1) % len(categories)],
              "random": rng.choice(categories)}[how]
    return keys[chosen]
