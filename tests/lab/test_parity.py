"""The lab screen says and does what the web page does: keys, words, sizes, feedback, pages."""
from __future__ import annotations

import re
from itertools import combinations
from pathlib import Path

import pytest

from experiments.lab.keys import decode, response_keys
from experiments.lab.layout import QUERY_SCALE, trial_layout
from experiments.study.instructions import plain_text, session_pages
from experiments.tasks import get_task
from experiments.tasks.choice import CONFIDENCE_LABELS
from experiments.tasks.imi_2afc import ImiTwoAfc

ROOT = Path(__file__).resolve().parents[2]
SCREENS = [(1024, 768), (1280, 1024), (1920, 1080)]


def test_the_keys_are_defined_once_by_the_task_type_for_page_and_lab():
    """The page's keys and confidence levels and the lab's came from two definitions (JS
    constants and Python ones); now the task type's words are sent to the page and read by the
    lab."""
    pages = "".join(p.read_text() for p in [*(ROOT / "server/static/js").rglob("*.js"),
                                            *(ROOT / "experiments/tasks").rglob("*.js")])
    assert "KEYS" not in pages and not re.search(r"\['1', '2', '3'\]", pages)
    assert "Very sure" not in pages and "CONFIDENCE" not in pages
    web_levels = [tuple(level) for level in get_task("imi_2afc").words()["confidence"]]
    assert tuple(web_levels) == CONFIDENCE_LABELS
    for name in ("imi_2afc", "occlusion"):
        for choice, keys in get_task(name).response_keys.items():
            for key, (level, _) in zip(keys, web_levels, strict=True):
                assert response_keys(name)[key] == (choice, level)
                assert response_keys(name)[f"num_{key}"] == (choice, level)


def test_a_task_types_own_keys_reach_the_instructions_and_the_lab(registered):
    registered("tests.lab.test_parity:LetterKeys")
    answer = plain_text(session_pages([], "natural", 1500, 2, 2, 3, "lab",
                                      "letter_keys")[1]["text"])
    assert "q w e" in answer and "i o p" in answer and "1 2 3" not in answer
    assert response_keys("letter_keys")["q"] == ("a", 3)
    assert decode("p", "letter_keys") == ("b", 1) and decode("1", "letter_keys") is None


class LetterKeys(ImiTwoAfc):
    """IMI's task answered with letters (a lab whose keyboard lacks a number row)."""

    name = "letter_keys"
    response_keys = {"a": ("q", "w", "e"), "b": ("i", "o", "p")}


@pytest.mark.parametrize("size", SCREENS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_trial_screen_fits_without_overlap(size):
    aspect = size[0] / size[1]
    layout = trial_layout(aspect)
    boxes = layout.boxes()
    assert all(box.inside(aspect / 2) for box in boxes)
    assert not [(a, b) for a, b in combinations(boxes, 2) if a.overlaps(b)]
    assert layout.queries["a"].w == pytest.approx(QUERY_SCALE * layout.cell)  # as on the web
    assert layout.cell >= 0.11  # references stay large enough to see on a 5:4 screen


def test_too_large_a_size_is_an_error_not_an_overlap():
    from experiments.errors import InterpsyError
    with pytest.raises(InterpsyError, match="do not fit"):
        trial_layout(1280 / 1024, cell=0.2)


def test_instruction_text_is_reflowed_and_paragraphs_kept():
    text = "Each screen shows what one unit\nresponds to. On the right are\nimages.\n\nSecond one."
    assert plain_text(text) == ("Each screen shows what one unit responds to. On the right are "
                                "images.\n\nSecond one.")
    assert plain_text("<p>First <b>bold</b></p><p>Second</p>") == "First bold\n\nSecond"


def test_a_study_with_its_own_pages_still_tells_the_keys_in_the_lab():
    own = [{"title": "About the images", "text": "Our study.", "conditions": []},
           {"title": "Synthetic only", "text": "x", "conditions": ["synthetic"]}]
    pages = session_pages(own, "natural", 1500, 4, 4, 3, "lab")
    assert [p["title"] for p in pages] == ["About the images", "How to answer", "Practice first"]
    answer = plain_text(pages[1]["text"])
    assert "1 2 3" in answer and "8 9 0" in answer and "1.5 seconds" in answer
    assert "space bar" in answer  # the lab's way to continue, not the web's button
    assert "at most 3 attempts" in plain_text(pages[2]["text"])


@pytest.fixture
def lab_db_task(toy_set, tmp_path):
    """A started lab session (SQLite) for drawing."""
    from experiments.db import Database
    from experiments.lab.source import start_lab_session
    from experiments.study.build import build_experiment
    from tests.lab.conftest import lab_spec
    db = Database(f"sqlite:///{tmp_path / 'lab.sqlite3'}")
    db.upgrade()
    key = build_experiment(lab_spec(tmp_path, toy_set), db).key
    yield db, start_lab_session(db, key, "P09")
    db.dispose()


@pytest.mark.lab
@pytest.mark.parametrize("size", SCREENS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_screenshots_of_the_trial_screen(xvfb_display, lab_db_task, size):
    from PIL import Image

    from experiments.lab.screen import LabScreen
    _, task = lab_db_task
    screen = LabScreen(size=size)
    try:
        assert tuple(screen.win.size) == size
        screen.set_trial(task.main[0], task)
        screen.draw_trial(locked=False, counter="correct: 0")
        shot = screen.screenshot(ROOT / "test-artifacts" / "lab" / f"trial_{size[0]}x{size[1]}.png")
    finally:
        screen.close()
    with Image.open(shot) as image:
        assert image.size == size
        grey = image.convert("L")
        # the outermost reference cells reach into the screen's left and right fifths
        width = size[0]
        left = grey.crop((0, 0, width // 5, size[1])).getextrema()
        right = grey.crop((4 * width // 5, 0, width, size[1])).getextrema()
        assert left[1] - left[0] > 60 and right[1] - right[0] > 60


@pytest.mark.lab
def test_a_key_pressed_before_a_screen_does_not_dismiss_it(xvfb_display, lab_db_task, tmp_path):
    from psychopy import event

    from experiments.lab.keys import EventKeys
    from experiments.lab.runner import LabRunner
    from experiments.lab.screen import LabScreen
    from experiments.lab.sequence import Sequencer
    from experiments.lab.store import LocalRecorder, LocalStore
    _, task = lab_db_task
    screen = LabScreen(size=(1024, 768))
    try:
        recorder = LocalRecorder(LocalStore(tmp_path / "unused.jsonl"), task)
        runner = LabRunner(screen, EventKeys(), Sequencer(task, recorder), None)
        event._onPygletKey("space", 0, emulated=True)  # pressed while the last screen was up
        waited = runner.message("Break", "Take a short break.", "break", max_s=0.4)
        assert waited >= 0.4  # still waiting: the early space did not count
    finally:
        screen.close()


@pytest.mark.lab
def test_feedback_shows_as_long_as_on_the_web_then_continue_without_it(xvfb_display,
                                                                       lab_db_task, tmp_path):
    from experiments.lab.keys import EmulatedKeys
    from experiments.lab.runner import LabRunner
    from experiments.lab.screen import LabScreen
    from experiments.lab.sequence import Answer, Sequencer
    from experiments.lab.store import LocalRecorder, LocalStore

    class Recording(LabScreen):
        drawn: list[tuple[float, str]] = []

        def draw_trial(self, *args, feedback: str = "", **kwargs) -> None:
            from psychopy import logging
            self.drawn.append((logging.defaultClock.getTime(), feedback))
            super().draw_trial(*args, feedback=feedback, **kwargs)

    _, task = lab_db_task
    task.feedback_delay_ms, task.feedback_ms = 100, 300
    screen = Recording(size=(1024, 768))
    try:
        keys = EmulatedKeys(lambda context, payload: "space", delay_s=0.3)
        sequencer = Sequencer(task, LocalRecorder(LocalStore(tmp_path / "j.jsonl"), task))
        runner = LabRunner(screen, keys, sequencer, None)
        step = sequencer.current()
        outcome = sequencer.answer(Answer(answer={"choice": step.trial.answer_key, "confidence": 3},
                                          rt_ms=2000.0))
        start = len(screen.drawn)
        runner._feedback(step, outcome, (step.trial.answer_key, 3), "")
    finally:
        screen.close()
    frames = screen.drawn[start:]
    t0 = frames[0][0]
    shown = [t - t0 for t, text in frames if text]
    assert shown and all(text in ("", "Correct!") for _, text in frames)
    assert shown[0] >= 0.08 and shown[-1] <= 0.45  # from the delay for feedback_ms, then gone
    assert frames[-1][1] == ""  # the Continue prompt shows no feedback
