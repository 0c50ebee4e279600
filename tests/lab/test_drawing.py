"""The drawing path under Xvfb: emulated keys through whole sessions, abort + resume, screenshot."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import ClassVar

import pytest

from experiments.db import Database
from experiments.lab.keys import key_for
from experiments.lab.session import LabOptions, run_lab
from experiments.lab.taskfile import export_task, sync_task
from experiments.study.build import build_experiment
from experiments.study.export import frames_from_db
from experiments.study.schema import RESPONSE_COLUMNS
from tests.lab.conftest import FAST_TIMING, lab_spec

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "lab"


@pytest.fixture(scope="module")
def screen(xvfb_display):
    from experiments.lab.screen import LabScreen
    lab_screen = LabScreen(size=(1024, 768))
    yield lab_screen
    lab_screen.close()


def script(abort_at: int | None = None, wrong_practice_once: bool = True):
    """Keys a participant would press: Space to continue, a response key per trial."""
    def press(context: str, payload: object) -> str | None:
        if context == "continue":
            return "space"
        step = payload
        if abort_at is not None and step.trial_index == abort_at:
            return "escape"
        choice = step.trial.answer_key
        if wrong_practice_once and step.phase == "practice" and step.attempt == 0 \
                and step.position == 0:
            choice = "b" if choice == "a" else "a"
        return key_for()[(choice, 1 + step.trial_index % 3)]
    return press


def _keys(press):
    from experiments.lab.keys import EmulatedKeys
    return EmulatedKeys(press, delay_s=FAST_TIMING["button_lock_ms"] / 1000 + 0.03)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_session_with_keys_aborted_and_resumed(screen, toy_set, tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'lab.sqlite3'}")
    key = build_experiment(lab_spec(tmp_path, toy_set), db).key
    options = LabOptions(experiment=key, participant="P01", database_url=db.url,
                         data_dir=str(tmp_path / "data"), break_every=3, end_wait_s=0.2,
                         screenshot=str(ARTIFACTS / "trial_screen.png"))
    first = run_lab(options, keys=_keys(script(abort_at=5)), screen=screen)
    assert first.status == "aborted" and first.next_index == 5
    assert first.screenshot is not None
    from PIL import Image, ImageStat
    with Image.open(first.screenshot) as shot:
        spread = ImageStat.Stat(shot.convert("L")).stddev[0]
        colours = len(shot.convert("RGB").getcolors(1 << 20) or [])
    assert spread > 10 and colours > 50, "the screenshot does not show a trial screen"
    second = run_lab(LabOptions(**{**options.__dict__, "screenshot": None}),
                     keys=_keys(script()), screen=screen)
    assert second.status == "completed" and second.next_index == 10
    rows = _rows(first.data_file)
    assert second.data_file == first.data_file
    assert [int(r["trial_index"]) for r in rows] == list(range(10))
    assert [r["phase"] for r in rows] == ["practice"] * 4 + ["main"] * 6
    assert rows[0]["correct"] == "False" and all(r["correct"] == "True" for r in rows[1:])
    lock = FAST_TIMING["button_lock_ms"]
    for row in rows:
        assert row["client"] == "lab" and row["keyboard_backend"] == "pyglet-emulated"
        assert float(row["rt_ms"]) >= lock
        assert abs(float(row["response_ms"]) - float(row["stim_onset_ms"])
                   - float(row["rt_ms"])) < 1e-6
        assert int(row["dropped_frames"]) >= 0 and int(row["n_frames"]) >= 1
        assert row["psychopyVersion"] and row["expName"] == key
        # PsychoPy measures no rate on a screen too busy to flip steadily (Xvfb under load)
        assert row["frameRate"] == "" or float(row["frameRate"]) > 0
    frame = frames_from_db(db, key)
    responses = frame["responses"]
    assert list(responses.columns) == list(RESPONSE_COLUMNS)
    assert list(responses.trial_index) == list(range(10)) and set(responses.client) == {"lab"}
    assert [str(c) for c in responses.choice] == [r["choice"] for r in rows]
    participant = frame["participants"].iloc[0]
    assert participant.status == "completed" and participant.client == "lab"
    assert not participant.frame_rate <= 0 and participant.instruction_s > 0  # NaN: unmeasured
    db.dispose()


def test_offline_task_file_run_and_sync(screen, toy_set, tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'lab.sqlite3'}")
    key = build_experiment(lab_spec(tmp_path, toy_set, name="offline"), db).key
    task_file = export_task(db, key, "L01", tmp_path / "L01.json")
    options = LabOptions(task_file=str(task_file), participant="L01", session="002",
                         data_dir=str(tmp_path / "data"), end_wait_s=0.1)
    result = run_lab(options, keys=_keys(script(wrong_practice_once=False)), screen=screen)
    assert result.status == "completed" and result.next_index == 8
    report = sync_task(db, task_file)
    assert (report.new, report.completed) == (8, True)
    assert set(frames_from_db(db, key)["responses"].client) == {"lab"}
    db.dispose()


def test_buttons_and_timing_test(screen):
    from experiments.lab.timing import timing_test
    for (choice, confidence), button in screen.buttons.items():
        assert screen.button_at(tuple(button.pos)) == (choice, confidence)
    assert screen.button_at((0.0, 0.45)) is None
    stats = timing_test(screen.win, n_frames=30)
    assert stats.n == 30 and stats.rate_hz > 0 and stats.dropped >= 0


def test_lab_rows_match_a_web_session_of_the_same_experiment(screen, toy_set, tmp_path):
    """Same columns, dtypes and meanings as a web session; only `client` differs."""
    from experiments.sessions import SessionService
    from tests.participants import run_session

    db = Database(f"sqlite:///{tmp_path / 'both.sqlite3'}")
    key = build_experiment(lab_spec(tmp_path, toy_set, name="both"), db).key
    service = SessionService(db)
    run_session(service, service.start(key, "WEB1", "prolific", client="web"))
    options = LabOptions(experiment=key, participant="LAB1", database_url=db.url,
                         data_dir=str(tmp_path / "data"), end_wait_s=0.1)
    assert run_lab(options, keys=_keys(script(wrong_practice_once=False)), screen=screen).status \
        == "completed"
    responses = frames_from_db(db, key)["responses"]
    web, lab = (responses[responses.client == c] for c in ("web", "lab"))
    assert len(web) == len(lab) == 8
    assert list(web.phase) == list(lab.phase) and list(web.trial_index) == list(lab.trial_index)
    for frame in (web, lab):
        assert (frame.correct == (frame.choice == frame.correct_choice)).all()
        assert ((frame.response_ms - frame.stim_onset_ms - frame.rt_ms).abs() < 1e-6).all()
        assert frame.confidence.between(1, 3).all() and frame.attempt.eq(0).all()
        assert frame.is_catch.sum() == 2
    participants = frames_from_db(db, key)["participants"].set_index("client")
    assert participants.loc["web", "source"] == "prolific" and participants.loc["lab", "source"] == "lab"
    db.dispose()


def test_instructions_come_back_after_a_restart_until_they_are_done(screen, toy_set, tmp_path):
    """Killed (here: Escape) on the instructions, the session came back with "Welcome back"
    and went straight to practice: the instructions are shown until they are done."""
    db = Database(f"sqlite:///{tmp_path / 'lab.sqlite3'}")
    key = build_experiment(lab_spec(tmp_path, toy_set), db).key
    options = LabOptions(experiment=key, participant="P05", database_url=db.url,
                         data_dir=str(tmp_path / "data"), end_wait_s=0.1)
    seen: list[str] = []

    def quits_on_the_second_page(context: str, payload: object) -> str | None:
        if context == "continue":
            seen.append(str(payload))
            return "escape" if payload == "instructions-1" else "space"
        return script()(context, payload)

    first = run_lab(options, keys=_keys(quits_on_the_second_page), screen=screen)
    assert first.status == "aborted" and first.next_index == 0
    seen.clear()

    def watches(context: str, payload: object) -> str | None:
        if context == "continue":
            seen.append(str(payload))
        return script()(context, payload)

    second = run_lab(options, keys=_keys(watches), screen=screen)
    assert second.status == "completed"
    assert seen[0] == "instructions-0" and "resume" not in seen
    assert frames_from_db(db, key)["participants"].iloc[0].instruction_s > 0
    db.dispose()


def test_a_full_disk_at_the_end_still_shows_the_completion_code(screen, toy_set, tmp_path,
                                                                monkeypatch):
    """PsychoPy's log hit a full disk (ENOSPC) after all answers were stored, and the error
    hid the completion code: the log is short, the session ends as completed."""
    import errno

    from psychopy import logging as plog

    db = Database(f"sqlite:///{tmp_path / 'lab.sqlite3'}")
    key = build_experiment(lab_spec(tmp_path, toy_set), db).key
    options = LabOptions(experiment=key, participant="P14", database_url=db.url,
                         data_dir=str(tmp_path / "data"), end_wait_s=0.1)

    def disk_full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(plog, "flush", disk_full)
    result = run_lab(options, keys=_keys(script(wrong_practice_once=False)), screen=screen)
    assert result.status == "completed" and result.completion_code
    assert frames_from_db(db, key)["participants"].status.tolist() == ["completed"]
    db.dispose()


def test_the_lab_says_between_blocks_what_the_web_page_says(screen, toy_set, tmp_path):
    """The practice messages were worded differently in the lab ("Main block", "Practice
    again"): both now come from one definition, the page's through its state."""
    from experiments.study.instructions import block_messages

    db = Database(f"sqlite:///{tmp_path / 'lab.sqlite3'}")
    key = build_experiment(lab_spec(tmp_path, toy_set), db).key
    options = LabOptions(experiment=key, participant="P15", database_url=db.url,
                         data_dir=str(tmp_path / "data"), end_wait_s=0.1)
    drawn: list[tuple[str, str]] = []
    original = screen.draw_message

    def record(title: str, body: str, **kwargs):
        drawn.append((title, body))
        return original(title, body, **kwargs)

    screen.draw_message = record
    try:
        result = run_lab(options, keys=_keys(script(wrong_practice_once=True)), screen=screen)
    finally:
        screen.draw_message = original
    assert result.status == "completed"
    words = block_messages(n_practice=2, pass_mark=2)
    failed = words["practice-failed"]
    assert (failed["title"], failed["text"].replace("{correct}", "1")) in drawn
    passed = words["practice-passed"]
    assert (passed["title"], passed["text"]) in drawn
    db.dispose()


def _coloured_share(path: Path) -> float:
    """The share of a screenshot's pixels in colour (text is grey and white; images are not)."""
    import numpy as np
    from PIL import Image
    with Image.open(path) as shot:
        pixels = np.asarray(shot.convert("RGB")).astype(int)
    return float(((pixels.max(axis=2) - pixels.min(axis=2)) > 40).mean())


def test_the_instructions_show_the_practice_examples_as_on_the_web(screen, toy_set, tmp_path):
    """The web page's 'Your task' page shows a practice trial's reference grids; the lab's
    showed text only. Each instruction page is saved beside the trial screen's screenshot."""
    db = Database(f"sqlite:///{tmp_path / 'lab.sqlite3'}")
    key = build_experiment(lab_spec(tmp_path, toy_set), db).key
    shot = tmp_path / "shots" / "trial.png"
    result = run_lab(LabOptions(experiment=key, participant="P31", database_url=db.url,
                                data_dir=str(tmp_path / "data"), end_wait_s=0.1,
                                screenshot=str(shot)),
                     keys=_keys(script(wrong_practice_once=False)), screen=screen)
    assert result.status == "completed"
    with_example = shot.with_name("trial_instructions-0.png")  # "Your task": example pages
    text_only = shot.with_name("trial_instructions-2.png")  # "Practice first"
    assert _coloured_share(with_example) > 0.005, "no example images under the explanation"
    assert _coloured_share(text_only) < 0.001, "a page without example shows images"


def test_the_experimenter_sees_the_warnings_on_the_screens_between_blocks(toy_set, tmp_path,
                                                                          xvfb_display):
    """Outage, recovery and timing warnings reached only the log and the terminal; the screens
    between blocks now carry them on a line for the experimenter, each warning once."""
    from experiments.lab.screen import LabScreen

    class Recording(LabScreen):
        notes: ClassVar[list[tuple[str, str]]] = []

        def draw_message(self, title: str, body: str, *args, note: str = "", **kwargs) -> None:
            if not self.notes or self.notes[-1][0] != title:
                self.notes.append((title, note))
            super().draw_message(title, body, *args, note=note, **kwargs)

    db = Database(f"sqlite:///{tmp_path / 'lab.sqlite3'}")
    key = build_experiment(lab_spec(tmp_path, toy_set), db).key
    recording = Recording(size=(1024, 768))
    try:
        # Xvfb runs at about 60 Hz: a 200 Hz expectation gives the unstable-timing warning
        result = run_lab(LabOptions(experiment=key, participant="P32", database_url=db.url,
                                    data_dir=str(tmp_path / "data"), end_wait_s=0.1,
                                    break_every=3, expected_hz=200.0),
                         keys=_keys(script(wrong_practice_once=False)), screen=recording)
    finally:
        recording.close()
    assert result.status == "completed"
    notes = dict(recording.notes)
    assert "display timing is unstable" in notes["Practice passed"]
    assert notes["Practice passed"].startswith("For the experimenter:")
    assert notes["Break"] == "" and notes["Done"] == ""  # said once, not on every screen
    assert all(note == "" for title, note in recording.notes
               if title not in ("Practice passed", "Break", "Done"))
