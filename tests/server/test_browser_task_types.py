"""A task type from another package runs in Debian's Chromium: the runner loads the page module
the type ships (`page_script`), shows its screen, saves its answers and finishes the session."""
from __future__ import annotations

from pathlib import Path

from experiments.db import Database
from experiments.db.models import Trial
from tests.server.conftest import FAST_TIMING, LiveServer, build, make_app
from tests.server.test_browser import (  # noqa: F401  (fixtures and marks used by name)
    begin,
    browser,
    count,
    page,
    pytestmark,
    wait_count,
)

SCREENS = Path("test-artifacts/screens")


def _answer(page, db: Database) -> None:
    """Answer the trial on screen with the right button (the key from the database)."""
    page.wait_for_selector(".trial:not(.hidden-until-ready)")
    trial_id = int(page.get_attribute(".trial", "data-trial-id"))
    with db.read() as s:
        truth = s.get(Trial, trial_id).answer_key
    page.click(f"button[data-says='{truth}']")
    page.click(".continue")
    page.wait_for_function(
        "(id) => !document.querySelector(`.trial[data-trial-id='${id}']`)", arg=trial_id)


def test_a_yes_no_session_from_a_types_own_page_module(page, registered, small_set, tmp_path):
    registered("tests.experiments.test_tasks:YesNo")
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    db.upgrade()
    key = build(db, tmp_path, small_set, name="yes-exp", conditions=["natural"],
                catch_trials_per_task=0, timing=FAST_TIMING, task={"type": "yes_no"})
    server = LiveServer(make_app(db, tmp_path))
    try:
        sid = begin(page, {"url": server.url, "key": key}, "?id=yes1")
        page.wait_for_selector(".trial:not(.hidden-until-ready)")
        assert page.get_attribute(".trial", "data-type") == "yes_no"
        assert page.inner_text(".question") == "Does the unit respond strongly to this image?"
        assert page.locator(".yes-no img").count() == 1
        for _ in range(page.evaluate("() => window.interpsyStudy.state.practice.length")):
            _answer(page, db)
        page.wait_for_selector("#practice-passed")
        page.click("#practice-passed-continue")
        for _ in range(page.evaluate("() => window.interpsyStudy.state.main.length")):
            _answer(page, db)
        page.wait_for_selector("#feedback-form")
        page.click("#feedback-submit")
        page.wait_for_selector("#completion-code")
        from experiments.study.export import frames_from_db

        responses = frames_from_db(db, key)["responses"]
        wait_count(db, sid, len(responses))
        assert responses.correct.all() and set(responses.says_yes) == {True, False}
        assert (responses.says_yes == (responses.truth == "yes")).all()
    finally:
        server.stop()
        db.dispose()


def test_a_3afc_session_shows_three_rows_and_takes_their_keys(page, small_set, tmp_path):
    """The built-in 3-AFC in Chromium: three query rows with the keys the server sends (1 2 3,
    4 5 6, 7 8 9), its own instructions, answers by key saved and scored, the session done."""
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    db.upgrade()
    key = build(db, tmp_path, small_set, name="three-exp", conditions=["natural"],
                catch_trials_per_task=0, timing=FAST_TIMING, task={"type": "imi_3afc"})
    server = LiveServer(make_app(db, tmp_path))
    keys = {"a": "1", "b": "4", "c": "7"}  # very sure, per option

    def answer() -> None:
        page.wait_for_selector(".trial:not(.hidden-until-ready)")
        trial_id = int(page.get_attribute(".trial", "data-trial-id"))
        with db.read() as s:
            truth = s.get(Trial, trial_id).answer_key
        page.wait_for_selector(f"button[data-key='{keys[truth]}']:not([disabled])")
        page.keyboard.press(keys[truth])
        page.wait_for_selector(".feedback.good")
        page.click(".continue")
        page.wait_for_function(
            "(id) => !document.querySelector(`.trial[data-trial-id='${id}']`)", arg=trial_id)

    try:
        page.goto(f"{server.url}/x/{key}/?id=three1")
        page.check("#consent-box")
        page.click("#start")
        page.wait_for_selector("#screen-check")
        page.click("#fullscreen")
        shown, label = [], ""
        while not label.startswith("Start"):
            page.wait_for_selector("#instructions")
            shown.append(page.inner_text("#instructions"))
            label = page.inner_text("#instructions-next")
            page.click("#instructions-next")
        sid = page.evaluate("() => window.interpsyStudy.sid")
        assert "three new images" in shown[0] and "7 8 9 (bottom image" in shown[1]
        assert page.locator(".example img").count() == 0  # the example pages are past
        page.wait_for_selector(".trial:not(.hidden-until-ready)")
        assert page.locator(".query").count() == 3
        assert page.locator(".query-c kbd").all_inner_texts() == ["7", "8", "9"]
        bottom = page.locator(".query-c").bounding_box()
        assert bottom["y"] + bottom["height"] <= page.viewport_size["height"]  # all in view
        assert page.inner_text(".question") == ("Which image in the centre fits the examples on "
                                                "the right best?")
        for _ in range(page.evaluate("() => window.interpsyStudy.state.practice.length")):
            answer()
        page.wait_for_selector("#practice-passed")
        page.click("#practice-passed-continue")
        for _ in range(page.evaluate("() => window.interpsyStudy.state.main.length")):
            answer()
        page.wait_for_selector("#feedback-form")
        page.click("#feedback-submit")
        page.wait_for_selector("#completion-code")
        from experiments.study.export import frames_from_db

        responses = frames_from_db(db, key)["responses"]
        wait_count(db, sid, len(responses))
        assert responses.correct.all() and set(responses.choice) == {"a", "b", "c"}
    finally:
        server.stop()
        db.dispose()


def test_a_categorisation_session_counts_frames_and_times_out_without_an_answer(page, tmp_path):
    """Fixation, image and mask frame-counted on requestAnimationFrame; the measured frames and
    durations stored with each answer; a trial left unanswered through the response window is
    recorded as 'na' (wrong); the screen of a trial's grid is kept as an artifact."""
    from tests.stimset import check_presentation, make_categorisation_set

    set_dir = make_categorisation_set(tmp_path / "categories", per_category=3, size=64)
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    db.upgrade()
    key = build(db, tmp_path, set_dir, name="cat-exp", conditions=["contrast"],
                main_trials_per_task=4, catch_trials_per_task=0, responses_per_unit=1,
                timing=FAST_TIMING, practice={"trials": 2, "min_correct": 0},
                task={"type": "categorisation", "fixation_ms": 100, "stimulus_ms": 100,
                      "mask_ms": 100, "response_window_ms": 2500})
    server = LiveServer(make_app(db, tmp_path))
    try:
        begin(page, {"url": server.url, "key": key}, "?id=cat1")
        try:
            _run_categorisation_session(page, db)
        except Exception:
            SCREENS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENS / "categorisation_failed.png"))
            raise
        from experiments.study.export import frames_from_db

        responses = frames_from_db(db, key)["responses"].sort_values("trial_index")
        assert len(responses) == 6
        assert responses.choice.iloc[1] == "na" and not responses.correct.iloc[1]
        assert responses.drop(responses.index[1]).correct.all()
        # the frames each part was up: its measured duration in frames of the measured period
        check_presentation(responses, stimulus_ms=100, mask_ms=100)
        assert responses.frame_ms.between(4, 50).all()
        # measured, not assumed (a loaded machine may hold a frame longer: then it is flagged)
        assert responses.stimulus_ms.between(60, 1500).all(), responses.stimulus_ms
    finally:
        server.stop()
        db.dispose()


def _trials(page):
    """Each trial of the session as it shows: (index, trial id), past the practice-passed
    screen."""
    n_practice = page.evaluate("() => window.interpsyStudy.state.practice.length")
    n_main = page.evaluate("() => window.interpsyStudy.state.main.length")
    for index in range(n_practice + n_main):
        if index == n_practice:
            page.wait_for_selector("#practice-passed")
            page.click("#practice-passed-continue")
        page.wait_for_selector(".trial:not(.hidden-until-ready)")
        yield index, int(page.get_attribute(".trial", "data-trial-id"))


def _run_categorisation_session(page, db: Database) -> None:
    """Answer every trial with the right category's key or button, but leave the second one
    to its response window."""
    for index, trial_id in _trials(page):
        if index == 1:  # left unanswered: the response window closes it
            page.wait_for_selector(".continue:not([hidden])", timeout=10_000)
        else:
            with db.read() as s:
                truth = s.get(Trial, trial_id).answer_key
            page.wait_for_selector(".cat-grid:not(.waiting)")
            if index == 0:
                assert page.locator(".cat-choice").count() == 4
                assert page.locator(".cat-image").is_hidden()
                SCREENS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENS / "categorisation_grid.png"))
            button = f".cat-choice[data-choice='{truth}']:not([disabled])"
            if index % 2:  # by its key
                page.wait_for_selector(button)
                page.keyboard.press(page.get_attribute(button, "data-key"))
            else:
                page.click(button)
        page.click(".continue")
        page.wait_for_function(
            "(id) => !document.querySelector(`.trial[data-trial-id='${id}']`)", arg=trial_id)
    page.wait_for_selector("#feedback-form")


def test_a_main_block_without_feedback_goes_on_by_itself(page, tmp_path):
    """`[timing] main_feedback = false, auto_continue = true` (the benchmark's main block): the
    practice shows right or wrong, the main block neither, and no trial waits for Continue."""
    from tests.stimset import make_categorisation_set

    set_dir = make_categorisation_set(tmp_path / "categories", per_category=3, size=32)
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    db.upgrade()
    key = build(db, tmp_path, set_dir, name="auto-exp", conditions=["contrast"],
                main_trials_per_task=3, catch_trials_per_task=0, responses_per_unit=1,
                timing={**FAST_TIMING, "feedback_ms": 400, "main_feedback": False,
                        "auto_continue": True},
                practice={"trials": 2, "min_correct": 0},
                task={"type": "categorisation", "fixation_ms": 50, "stimulus_ms": 50,
                      "mask_ms": 50})
    server = LiveServer(make_app(db, tmp_path))
    try:
        begin(page, {"url": server.url, "key": key}, "?id=auto1")
        page.evaluate("() => { window.said = []; new MutationObserver(() => { const f ="
                      " document.querySelector('.feedback'); if (f && f.textContent) "
                      "window.said.push([document.querySelector('.trial').dataset.trialId,"
                      " f.textContent]); }).observe(document.body, {subtree: true, "
                      "childList: true, characterData: true}); }")
        for _, trial_id in _trials(page):
            page.wait_for_selector(".cat-grid:not(.waiting) .cat-choice:not([disabled])")
            page.click(".cat-choice >> nth=0")
            page.wait_for_function(
                "(id) => !document.querySelector(`.trial[data-trial-id='${id}']`)", arg=trial_id)
            assert not page.locator(".continue:not([hidden])").count()
        page.wait_for_selector("#feedback-form")
        said = page.evaluate("() => window.said")
        with db.read() as s:
            phases = {t.id: t.phase for t in s.query(Trial)}
        shown = {phases[int(trial)] for trial, text in said if text in ("Correct!", "Wrong.")}
        assert shown == {"practice"}, said
    finally:
        server.stop()
        db.dispose()
