"""A task type from another package runs in Debian's Chromium: the runner loads the page module
the type ships (`page_script`), shows its screen, saves its answers and finishes the session."""
from __future__ import annotations

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
        from experiments.export import frames_from_db

        responses = frames_from_db(db, key)["responses"]
        wait_count(db, sid, len(responses))
        assert responses.correct.all() and set(responses.says_yes) == {True, False}
        assert (responses.says_yes == (responses.truth == "yes")).all()
    finally:
        server.stop()
        db.dispose()
