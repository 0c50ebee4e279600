"""The whole participant flow in Debian's Chromium (Playwright): practice, reload, offline, redirect."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from experiments.db import Database
from experiments.db.models import Event, Response, Session, Trial
from tests.conftest import _PG_REASON, drop_postgres_schema, postgres_schema_url
from tests.server.conftest import FAST_TIMING, LiveServer, build, make_app
from tests.stimset import make_stimulus_set

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
re_public = re.compile(r"/img/[^/]+/[0-9a-f]{32}$")
SCREENS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screens"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason="needs Debian's Chromium at /usr/bin/chromium: apt-get install chromium"),
]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A live server with a small realistic (224 px) experiment on PostgreSQL, the production
    path (SQLite when no PostgreSQL answers). The pages do not depend on the database; the
    session and API tests run every database path on both."""
    root = tmp_path_factory.mktemp("browser")
    set_dir = make_stimulus_set(root / "sets", n_units=12, n_batches=1, synthetic=False,
                                image_size=224)
    schema = None
    if _PG_REASON is None:
        schema, url = postgres_schema_url()
    else:
        url = f"sqlite:///{root / 'db.sqlite3'}"
    db = Database(url)
    db.upgrade()
    key = build(db, root, set_dir, conditions=["natural"], responses_per_unit=20, timing=FAST_TIMING)
    app = make_app(db, root)
    server = LiveServer(app)
    yield {"url": server.url, "db": db, "key": key}
    server.stop()
    db.dispose()
    if schema:
        drop_postgres_schema(schema)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


def shot(page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"))


def count(db: Database, session_id: str | None = None) -> int:
    with db.read() as s:
        query = select(func.count()).select_from(Response)
        if session_id:
            query = query.where(Response.session_id == session_id)
        return s.scalar(query)


def events(db: Database, session_id: str, kind: str) -> list[Event]:
    with db.read() as s:
        return s.scalars(select(Event).where(Event.session_id == session_id,
                                             Event.kind == kind)).all()


def session_row(db: Database, session_id: str) -> Session:
    with db.read() as s:
        return s.get(Session, session_id)


def begin(page, study, query: str, screens: bool = False) -> str:
    """Consent, screen check, instructions; returns the session id."""
    page.goto(f"{study['url']}/x/{study['key']}/{query}")
    if screens:
        shot(page, "01-consent")
    page.check("#consent-box")
    page.click("#start")
    page.wait_for_selector("#screen-check")
    if screens:
        shot(page, "02-screen-check")
    page.click("#fullscreen")
    first = True
    while True:
        page.wait_for_selector("#instructions")
        if screens and first:
            shot(page, "03-instructions")
            first = False
        label = page.inner_text("#instructions-next")
        page.click("#instructions-next")
        if label.startswith("Start"):
            break
    return page.evaluate("() => window.interpsyStudy.sid")


def correct_choice(page, study) -> tuple[str, int]:
    """The right answer to the trial on screen, from the database (the page has no key)."""
    page.wait_for_selector(".trial:not(.hidden-until-ready)")
    trial_id = int(page.get_attribute(".trial", "data-trial-id"))
    with study["db"].read() as s:
        return s.get(Trial, trial_id).answer_key, trial_id


def answer(page, study, right: bool = True, screen: str | None = None) -> None:
    """Answer the trial on screen (after the button lock) and press Continue."""
    choice, trial_id = correct_choice(page, study)
    if not right:
        choice = "b" if choice == "a" else "a"
    if screen:
        shot(page, screen)
        # Feedback shows for FAST_TIMING's 40 ms; hold it long enough to be photographed.
        page.evaluate("() => { window.interpsyStudy.state.timing.feedback_ms = 1500; }")
    page.click(f".choice[data-choice='{choice}'][data-confidence='3']")
    if screen:
        page.wait_for_selector(".feedback.good, .feedback.bad")
        shot(page, f"{screen}-feedback")
        page.evaluate(f"() => {{ window.interpsyStudy.state.timing.feedback_ms = {FAST_TIMING['feedback_ms']}; }}")
    page.click(".continue")
    page.wait_for_function(
        "(id) => !document.querySelector(`.trial[data-trial-id='${id}']`)", arg=trial_id)


def practice(page, study, right: bool = True, screens: bool = False) -> None:
    n = page.evaluate("() => window.interpsyStudy.state.practice.length")
    for i in range(n):
        answer(page, study, right, screen="04-practice-trial" if screens and i == 0 else None)


def wait_count(db: Database, session_id: str, expected: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while count(db, session_id) != expected:
        assert time.monotonic() < deadline, f"{count(db, session_id)} stored, expected {expected}"
        time.sleep(0.1)


def test_prolific_flow_to_the_completion_redirect(page, study):
    redirected: list[str] = []

    def prolific(route):
        redirected.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>Prolific (intercepted)</h1>")

    page.route("https://app.prolific.com/**", prolific)
    sid = begin(page, study, "?PROLIFIC_PID=browser1&STUDY_ID=st&SESSION_ID=se", screens=True)
    practice(page, study, screens=True)
    page.wait_for_selector("#practice-passed")
    shot(page, "05-practice-passed")
    page.click("#practice-passed-continue")
    n_main = page.evaluate("() => window.interpsyStudy.state.main.length")
    for j in range(n_main):
        page.wait_for_selector(".trial:not(.hidden-until-ready)")
        assert page.inner_text("#counter") == f"Correct answers: {j}"
        answer(page, study, screen="06-main-trial" if j == 1 else None)
    page.wait_for_selector("#feedback-form")
    shot(page, "07-feedback-form")
    page.fill("#feedback-text", "all good")
    page.click("#feedback-submit")
    page.wait_for_url("https://app.prolific.com/**")
    shot(page, "08-prolific-redirect")
    query = parse_qs(urlsplit(redirected[0]).query)
    assert query == {"cc": ["COMPLETED"]}
    record = session_row(study["db"], sid)
    assert record.status == "completed" and record.feedback == "all good"
    assert record.instruction_s and record.instruction_s > 0
    assert count(study["db"], sid) == 2 + n_main
    # the export carries the feedback and the frame rate the page measured
    from experiments.study.export import frames_from_db

    people = frames_from_db(study["db"], study["key"])["participants"]
    mine = people[people.feedback == "all good"].iloc[0]
    assert 20 < mine.frame_rate < 500 and mine.status == "completed"


def test_failing_the_practice_repeats_it(page, study):
    sid = begin(page, study, "?id=repeater")
    practice(page, study, right=False)
    page.wait_for_selector("#practice-failed")
    shot(page, "09-practice-failed")
    assert "0 of 2" in page.inner_text("#practice-failed")
    page.click("#practice-failed-continue")
    practice(page, study, right=True)
    page.wait_for_selector("#practice-passed")
    record = session_row(study["db"], sid)
    assert record.practice_attempts == 2 and record.main_offset == 4
    assert count(study["db"], sid) == 4


def test_reload_in_the_main_block_resumes(page, study):
    sid = begin(page, study, "?id=reloader")
    practice(page, study)
    page.click("#practice-passed-continue")
    for _ in range(3):
        answer(page, study)
    wait_count(study["db"], sid, 5)
    page.reload()
    page.wait_for_selector("#screen-check")
    page.click("#fullscreen")
    page.wait_for_selector(".trial:not(.hidden-until-ready)")
    assert page.inner_text(".trial-count").startswith("Trial 4 of")
    assert page.inner_text("#counter") == "Correct answers: 3"
    shot(page, "10-resumed-after-reload")
    n_main = page.evaluate("() => window.interpsyStudy.state.main.length")
    for _ in range(n_main - 3):
        answer(page, study)
    page.click("#feedback-submit")
    page.wait_for_selector("#completion-code")
    shot(page, "11-completion-code")
    assert page.inner_text("#completion-code") == "COMPLETED"
    assert count(study["db"], sid) == 2 + n_main
    with study["db"].read() as s:
        indexes = s.scalars(select(Response.trial_index).where(Response.session_id == sid)
                            .order_by(Response.trial_index)).all()
    assert indexes == list(range(2 + n_main))


def test_offline_answers_are_kept_and_sent_later(page, study):
    sid = begin(page, study, "?id=offline")
    practice(page, study)
    page.click("#practice-passed-continue")
    answer(page, study)
    wait_count(study["db"], sid, 3)
    # Preloading runs ahead; let it finish before the network goes.
    page.wait_for_function("() => [...window.interpsyStudy.loader.cache.keys()].length >= 5 * 20")
    time.sleep(0.5)
    page.context.set_offline(True)
    focus_before = len(events(study["db"], sid, "client_focus_lost"))
    for _ in range(3):
        answer(page, study)
        page.evaluate("() => window.dispatchEvent(new Event('blur'))")  # the participant looks away
    page.wait_for_selector("#status-bar:not([hidden])")
    shot(page, "12-offline-queue")
    assert count(study["db"], sid) == 3
    queued = page.evaluate(f"() => JSON.parse(localStorage.getItem('interpsy:{study['key']}:{sid}:queue')).length")
    assert queued == 3
    outbox = page.evaluate(f"() => JSON.parse(localStorage.getItem('interpsy:{study['key']}:{sid}:outbox'))")
    assert sum(item["body"]["kind"] == "focus_lost" for item in outbox) == 3
    page.context.set_offline(False)
    wait_count(study["db"], sid, 6)
    # The focus losses logged offline arrive too, each once, with the page's timestamps.
    deadline = time.monotonic() + 15
    while len(events(study["db"], sid, "client_focus_lost")) < focus_before + 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    lost = events(study["db"], sid, "client_focus_lost")
    assert len(lost) == focus_before + 3
    assert len({e.client_key for e in lost}) == len(lost) and all(e.client_ms > 0 for e in lost)
    n_main = page.evaluate("() => window.interpsyStudy.state.main.length")
    for _ in range(n_main - 4):
        answer(page, study)
    page.click("#feedback-submit")
    page.wait_for_selector("#completion-code")
    assert count(study["db"], sid) == 2 + n_main
    assert session_row(study["db"], sid).status == "completed"


def test_mturk_submits_the_assignment(page, study):
    posted: list[str] = []

    def mturk(route):
        posted.append(route.request.post_data or "")
        route.fulfill(status=200, content_type="text/html", body="<h1>MTurk (intercepted)</h1>")

    page.route("https://workersandbox.mturk.com/**", mturk)
    page.goto(f"{study['url']}/x/{study['key']}/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1")
    assert page.is_visible("#preview")
    shot(page, "13-mturk-preview")
    begin(page, study, "?assignmentId=A1&hitId=H1&workerId=W1"
                       "&turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com")
    practice(page, study)
    page.click("#practice-passed-continue")
    n_main = page.evaluate("() => window.interpsyStudy.state.main.length")
    for _ in range(n_main):
        answer(page, study)
    page.click("#feedback-submit")
    page.wait_for_url("https://workersandbox.mturk.com/mturk/externalSubmit")
    form = parse_qs(posted[0])
    assert form["assignmentId"] == ["A1"] and form["completion_code"] == ["COMPLETED"]


def test_a_dom_only_cheater_learns_nothing(page, study):
    """Everything a script in the page can read (image URLs, the state) holds no answer key."""
    begin(page, study, "?id=dom-cheater")
    page.wait_for_selector(".trial:not(.hidden-until-ready)")
    sources = page.eval_on_selector_all(".trial img", "(imgs) => imgs.map((i) => i.src)")
    assert len(sources) == 2 + 2 * 9
    assert all(re_public.search(src) for src in sources), sources[:3]
    state = page.evaluate("() => JSON.stringify(window.interpsyStudy.state)")
    assert "correct_choice" not in state
    assert not re.search(r"query_m(ax|in)|reference_m(ax|in)|[qr]m(ax|in)", state)
    # The feedback still marks the right query: the server tells it with the stored answer.
    choice, _trial_id = correct_choice(page, study)
    page.evaluate("() => { window.interpsyStudy.state.timing.feedback_ms = 1500; }")
    page.click(f".choice[data-choice='{choice}'][data-confidence='2']")
    page.wait_for_selector(f".query-{choice}.is-correct")
    assert page.inner_text(".feedback") == "Correct!"


def test_a_second_tab_does_not_end_the_first(page, study):
    sid = begin(page, study, "?PROLIFIC_PID=two-tabs")
    answer(page, study)
    wait_count(study["db"], sid, 1)
    second = page.context.new_page()
    second.goto(f"{study['url']}/x/{study['key']}/?PROLIFIC_PID=two-tabs")
    second.check("#consent-box")
    second.click("#start")
    second.click("#fullscreen")
    second.wait_for_selector(".trial:not(.hidden-until-ready)")  # the same session, resumed
    assert second.evaluate("() => window.interpsyStudy.sid") == sid
    second.close()
    answer(page, study)  # the first tab goes on
    wait_count(study["db"], sid, 2)
    assert not page.query_selector("#no-session")


def test_two_people_in_one_browser_each_keep_their_own_tab(page, study):
    """Person A mid-session, person B opens their own link in a tab of the same browser: after
    reloads each tab still runs its own person's session (credentials were kept per study, so A's
    tab took up B's session)."""
    first = begin(page, study, "?PROLIFIC_PID=shared-a")
    answer(page, study)
    wait_count(study["db"], first, 1)
    other = page.context.new_page()
    second = begin(other, study, "?PROLIFIC_PID=shared-b")
    assert second != first
    for tab, sid in ((page, first), (other, second)):
        tab.reload()
        tab.wait_for_selector("#screen-check")
        tab.click("#fullscreen")
        tab.wait_for_selector(".trial:not(.hidden-until-ready)")
        assert tab.evaluate("() => window.interpsyStudy.sid") == sid
    answer(page, study)  # A's answer lands in A's session
    wait_count(study["db"], first, 2)
    assert count(study["db"], second) == 0
    # A's study link in a third tab offers A (not B) the way back
    third = page.context.new_page()
    third.goto(f"{study['url']}/x/{study['key']}/?PROLIFIC_PID=shared-a")
    third.wait_for_selector("#consent")
    assert third.is_visible("#resume")
    third.click("#resume-link")
    third.wait_for_selector("#screen-check")
    assert third.evaluate("() => window.interpsyStudy.sid") == first
    for tab in (other, third):
        tab.close()


def test_a_lost_session_link_keeps_the_platform_ids(page, study):
    sid = begin(page, study, "?PROLIFIC_PID=lost-one")
    answer(page, study)
    wait_count(study["db"], sid, 1)
    # the credentials go bad (e.g. storage copied from elsewhere): the page offers the link
    page.evaluate(f"""() => {{
        const k = 'interpsy:{study['key']}:credentials';
        const c = JSON.parse(sessionStorage.getItem(k)); c.token = 'wrong'; sessionStorage.setItem(k, JSON.stringify(c)); }}""")
    page.goto(f"{study['url']}/x/{study['key']}/run")
    page.wait_for_selector("#no-session")
    assert "?e=" in page.get_attribute("#reopen-link", "href")
    page.click("#reopen-link")
    page.wait_for_selector("#consent")
    assert page.is_visible("#returning")  # the same participant, not a new anonymous one


def test_a_shared_browser_offers_continue_only_to_the_same_person(page, study):
    begin(page, study, "?PROLIFIC_PID=first-person")
    answer(page, study)
    page.goto(f"{study['url']}/x/{study['key']}/?PROLIFIC_PID=second-person")
    page.wait_for_selector("#consent")
    assert page.is_hidden("#resume")
    page.goto(f"{study['url']}/x/{study['key']}/?PROLIFIC_PID=first-person")
    page.wait_for_selector("#consent")
    assert page.is_visible("#resume") and page.is_visible("#returning")


def test_an_idle_session_back_after_its_task_went_to_someone_else_is_told_so(page, study):
    from datetime import timedelta

    from experiments.db.models import Participant

    sid = begin(page, study, "?PROLIFIC_PID=idle-one")
    answer(page, study)
    wait_count(study["db"], sid, 1)
    with study["db"].write() as s:  # 2 hours idle, and a newcomer holds the task now
        record = s.get(Session, sid)
        record.last_activity_at -= timedelta(hours=2)
        other = Participant(experiment_id=record.experiment_id, number=9999,
                            platform_id="newcomer", source="prolific", platform_info={})
        s.add(other)
        s.flush()
        s.add(Session(id="f" * 32, experiment_id=record.experiment_id, participant_id=other.id,
                      task_id=record.task_id, token_sha256="x", client="web",
                      status="in_progress", n_responses=1))
    choice, _ = correct_choice(page, study)
    page.click(f".choice[data-choice='{choice}'][data-confidence='1']")
    page.wait_for_selector("#timed-out")
    shot(page, "14-timed-out")
    told = page.inner_text("#timed-out")
    assert "went to someone else" in told and "The 1 of " in told
    assert "return the study on Prolific" in told and page.inner_text("#completion-code") == "TIMED_OUT"
    assert session_row(study["db"], sid).status == "timed_out"


def test_failing_the_practice_says_so_and_sends_the_failed_code(page, study, tmp_path):
    key = build(study["db"], tmp_path, make_stimulus_set(tmp_path / "sets", n_units=12,
                                                          n_batches=1, synthetic=False),
                name="practice-fails", conditions=["natural"], responses_per_unit=2,
                timing=FAST_TIMING, practice={"trials": 2, "max_attempts": 1})
    redirected: list[str] = []
    page.route("https://app.prolific.com/**", lambda route: (
        redirected.append(route.request.url),
        route.fulfill(status=200, content_type="text/html", body="<h1>Prolific</h1>")))
    failing = {**study, "key": key}
    begin(page, failing, "?PROLIFIC_PID=cannot-pass")
    practice(page, failing, right=False)
    page.wait_for_url("https://app.prolific.com/**")
    assert parse_qs(urlsplit(redirected[0]).query) == {"cc": ["FAILED_CHECKS"]}
    page.goto(f"{study['url']}/x/{key}/?PROLIFIC_PID=cannot-pass")
    page.wait_for_selector("#finished")
    assert page.get_attribute("#finished", "data-status") == "failed_practice"
    assert "FAILED_CHECKS" in page.inner_text("#completion-code")


def test_a_completed_participant_opening_the_link_again_gets_the_code(page, study):
    begin(page, study, "?PROLIFIC_PID=done-before")
    practice(page, study)
    page.click("#practice-passed-continue")
    for _ in range(page.evaluate("() => window.interpsyStudy.state.main.length")):
        answer(page, study)
    page.route("https://app.prolific.com/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<h1>Prolific</h1>"))
    page.click("#feedback-submit")
    page.wait_for_url("https://app.prolific.com/**")
    page.goto(f"{study['url']}/x/{study['key']}/?PROLIFIC_PID=done-before")
    page.wait_for_selector("#finished")
    shot(page, "15-completed-again")
    assert "cc=COMPLETED" in page.get_attribute("#prolific-link", "href")


CONTRAST = """(selector) => {
    const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
        .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
    const node = document.querySelector(selector);
    const fg = parse(getComputedStyle(node).color);
    let bg = null;
    for (let n = node; n; n = n.parentElement) {
        const c = parse(getComputedStyle(n).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] > 0)) { bg = c; break; }
    }
    bg = bg || [255, 255, 255];
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    return (a + 0.05) / (b + 0.05);
}"""


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_trial_screen_fills_the_screen_and_its_text_meets_wcag_aa(browser, study, size):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        begin(page, study, f"?id=screen-{size[0]}")
        page.wait_for_selector(".trial:not(.hidden-until-ready)")
        shot(page, f"16-trial-{size[0]}x{size[1]}")
        ref = page.eval_on_selector(".refs-max img", "(i) => i.getBoundingClientRect().width")
        assert ref >= (110 if size[0] == 1280 else 170), ref  # it was 86 px at 1280x720
        bottom = page.eval_on_selector(".trial", "(t) => t.getBoundingClientRect().bottom")
        assert bottom <= size[1], "the trial screen must fit without scrolling"
        for selector in (".question", ".trial-count"):
            assert page.evaluate(CONTRAST, selector) >= 4.5, selector
        choice, _ = correct_choice(page, study)
        page.evaluate("() => { window.interpsyStudy.state.timing.feedback_ms = 3000; }")
        page.click(f".choice[data-choice='{'b' if choice == 'a' else 'a'}'][data-confidence='1']")
        page.wait_for_selector(".feedback.bad")
        assert page.evaluate(CONTRAST, ".feedback") >= 4.5
        shot(page, f"17-feedback-{size[0]}x{size[1]}")
    finally:
        context.close()


def test_the_screen_guards_window_size_fullscreen_banner_and_keys(page, study):
    sid = begin(page, study, "?id=guards")
    page.wait_for_selector(".trial:not(.hidden-until-ready)")
    page.set_viewport_size({"width": 800, "height": 500})  # shrunk below 940 x 600
    page.wait_for_selector("#too-small:not([hidden])")
    shot(page, "18-window-too-small")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.wait_for_selector("#too-small", state="hidden")
    # leaving fullscreen shows the banner above the study, never over the question
    page.evaluate("""() => document.fullscreenElement ? document.exitFullscreen()
                     : document.dispatchEvent(new Event('fullscreenchange'))""")
    page.wait_for_selector("#fs-banner:not([hidden])")
    banner = page.eval_on_selector("#fs-banner", "(b) => b.getBoundingClientRect().bottom")
    question = page.eval_on_selector(".question", "(q) => q.getBoundingClientRect().top")
    assert banner <= question
    shot(page, "19-fullscreen-banner")
    # keys answer: 8 = lower image, very sure; Enter continues
    page.wait_for_selector(".choice:not([disabled])")
    page.keyboard.press("8")
    page.wait_for_selector(".continue:not([hidden])")
    page.keyboard.press("Enter")
    wait_count(study["db"], sid, 1)
    with study["db"].read() as s:
        stored = s.scalars(select(Response).where(Response.session_id == sid)).one()
    assert stored.answer == {"choice": "b", "confidence": 3}
    assert events(study["db"], sid, "client_window_too_small")


def test_consent_and_instructions_come_from_the_spec(page, study, tmp_path):
    key = build(study["db"], tmp_path, make_stimulus_set(tmp_path / "sets", n_units=12,
                                                          n_batches=1, synthetic=False),
                name="consent-spec", conditions=["natural"], responses_per_unit=2,
                timing=FAST_TIMING, consent={
                    "text": "We study how people read neural networks.\n\nSecond paragraph.",
                    "duration": "about 12 minutes", "payment": "GBP 2.40",
                    "researcher": "Vision Lab, Example University", "contact": "lab@example.org",
                    "ethics": "Example IRB 2026-117"},
                instructions=[{"title": "About the images", "text": "Our own page."}])
    own = {**study, "key": key}
    page.goto(f"{study['url']}/x/{key}/?id=consenter")
    facts = page.inner_text("#study-facts")
    for text in ("about 12 minutes", "GBP 2.40", "Example University", "lab@example.org",
                 "Example IRB 2026-117"):
        assert text in facts
    assert "Second paragraph." in page.inner_text("#consent")
    shot(page, "20-consent-from-spec")
    page.check("#consent-box")
    page.click("#start")
    page.click("#fullscreen")
    titles = []
    while True:
        page.wait_for_selector("#instructions")
        titles.append(page.inner_text("#instructions h1"))
        label = page.inner_text("#instructions-next")
        if titles[-1] == "How to answer":
            text = page.inner_text("#instructions")
            assert "unlock after 0.1 seconds" in text and "8 9 0" in text
        page.click("#instructions-next")
        if label.startswith("Start"):
            break
    # the study's page first, then the built-in ones (buttons, lock, practice criterion)
    assert titles == ["About the images", "How to answer", "Practice first"]
    assert own["key"] == key
