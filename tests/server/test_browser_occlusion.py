"""The occlusion task in Debian's Chromium: its screen (base image, references, two occluded
images), the server's feedback on the right image, a reload that resumes, the completion.
Screenshots for the README: test-artifacts/screens/occlusion-*.png."""
from __future__ import annotations

import pytest

from experiments.db import Database
from tests.server.conftest import FAST_TIMING, LiveServer, build, make_app
from tests.server.test_browser import (  # noqa: F401  (fixtures and marks used by name)
    answer,
    begin,
    browser,
    count,
    page,
    practice,
    pytestmark,
    shot,
    wait_count,
)
from tests.stimset import make_stimulus_set

TASK = {"type": "occlusion", "references": 9, "synthetic_in_mixed": 5}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-occlusion")
    set_dir = make_stimulus_set(root / "sets", n_units=8, n_batches=1, synthetic=False,
                                image_size=224, occlusion=True)
    db = Database(f"sqlite:///{root / 'db.sqlite3'}")
    db.upgrade()
    key = build(db, root, set_dir, name="occ-exp", conditions=["natural"],
                responses_per_unit=10, main_trials_per_task=4, catch_trials_per_task=1,
                timing=FAST_TIMING, task=TASK)
    server = LiveServer(make_app(db, root))
    yield {"url": server.url, "db": db, "key": key}
    server.stop()
    db.dispose()


def test_an_occlusion_session_in_the_browser(page, study):
    sid = begin(page, study, "?id=occ1")
    page.wait_for_selector(".trial:not(.hidden-until-ready)")
    assert page.get_attribute(".trial", "data-type") == "occlusion"
    assert page.inner_text(".question") == \
        "Which occluded image does the unit respond to more strongly?"
    assert page.inner_text(".refs-base .refs-label") == "Image without occlusion"
    assert page.locator(".refs-base img").count() == 1
    assert page.locator(".refs-max img").count() == 9
    assert page.locator(".query img").count() == 2
    practice(page, study)
    page.wait_for_selector("#practice-passed")
    page.click("#practice-passed-continue")
    n_main = page.evaluate("() => window.interpsyStudy.state.main.length")
    answer(page, study, screen="occlusion-trial")  # feedback marks the right occluded image
    answer(page, study, right=False)
    wait_count(study["db"], sid, 2 + 2)
    page.reload()  # resumes at the next trial (after the screen check: fullscreen was left)
    page.wait_for_selector("#screen-check")
    page.click("#fullscreen")
    page.wait_for_selector(".trial:not(.hidden-until-ready)")
    assert page.inner_text(".trial-count") == f"Trial 3 of {n_main}"
    assert page.inner_text("#counter") == "Correct answers: 1"
    for _ in range(n_main - 2):
        answer(page, study)
    page.wait_for_selector("#feedback-form")
    page.click("#feedback-submit")
    page.wait_for_selector("#completion-code")
    wait_count(study["db"], sid, 2 + n_main)
    assert count(study["db"], sid) == 2 + n_main
    from experiments.study.export import frames_from_db
    responses = frames_from_db(study["db"], study["key"])["responses"]
    assert {"base", "query_a", "query_b"} <= set(responses.columns)
    assert responses.correct.sum() == len(responses) - 1
    shot(page, "occlusion-end")
