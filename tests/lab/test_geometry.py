"""Display geometry a methods section reports: a monitor profile, sizes in degrees of visual
angle from the spec, drawn at those sizes and exported per session."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from experiments.db import Database
from experiments.errors import InterpsyError
from experiments.lab.display import MonitorChoice, geometry_facts, layout_for, open_monitor
from experiments.study.build import build_experiment
from experiments.study.export import frames_from_db
from experiments.study.spec import LabSettings
from tests.lab.conftest import FAST_TIMING, lab_spec

ROOT = Path(__file__).resolve().parents[2]
SIZES = {"reference_deg": 2.5, "query_deg": 4.0, "gap_deg": 0.2}
MONITOR = MonitorChoice(width_cm=53.0, distance_cm=57.0)


def _monitor(resolution=(1920, 1080)):
    monitor = open_monitor(MONITOR)
    monitor.setSizePix(list(resolution))
    return monitor


def test_sizes_in_degrees_become_pixels_through_the_monitor_profile():
    monitor = _monitor()
    ppd = 1920 / 53.0 * 57.0 * 0.017455  # cm per degree at 57 cm times px per cm
    layout = layout_for(SIZES, monitor, (1920, 1080))
    assert layout.cell * 1080 == pytest.approx(2.5 * ppd, rel=2e-3)
    assert layout.query * 1080 == pytest.approx(4.0 * ppd, rel=2e-3)
    facts = geometry_facts(layout, monitor, (1920, 1080), (1920, 1080))
    assert facts["reference_deg"] == pytest.approx(2.5, abs=1e-3)
    assert facts["query_deg"] == pytest.approx(4.0, abs=1e-3)
    assert facts["gap_deg"] == pytest.approx(0.2, abs=1e-3)
    assert (facts["monitor_width_cm"], facts["viewing_distance_cm"]) == (53.0, 57.0)


def test_degrees_need_a_monitor_and_must_fit():
    with pytest.raises(InterpsyError, match="monitor"):
        layout_for(SIZES, None, (1920, 1080))
    # degrees become more pixels further away: the advice is a shorter distance
    with pytest.raises(InterpsyError, match="do not fit.*shorter viewing distance"):
        layout_for({"reference_deg": 6.0}, _monitor((1280, 1024)), (1280, 1024))
    with pytest.raises(ValidationError, match="need reference_deg"):
        LabSettings(query_deg=4.0)
    with pytest.raises(InterpsyError, match="no monitor profile 'nope'"):
        open_monitor(MonitorChoice(name="nope"))


def test_without_degrees_the_screen_is_fitted_and_reported_in_pixels():
    layout = layout_for({}, None, (1280, 1024))
    facts = geometry_facts(layout, None, (1280, 1024), (1280, 1024))
    assert facts["reference_px"] == pytest.approx(layout.cell * 1024, abs=0.01)
    assert facts["reference_deg"] is None and facts["monitor"] is None


def _runs(columns: list[bool], min_len: int = 20) -> list[int]:
    """Lengths of runs of image columns."""
    runs, length = [], 0
    for is_image in [*columns, False]:
        if is_image:
            length += 1
        else:
            if length >= min_len:
                runs.append(length)
            length = 0
    return runs


@pytest.mark.lab
@pytest.mark.timeout(120)
def test_a_session_draws_and_exports_the_sizes_in_degrees(xvfb_display, toy_set, tmp_path,
                                                          caplog):
    from PIL import Image

    from experiments.lab.keys import EmulatedKeys, key_for
    from experiments.lab.session import LabOptions, run_lab

    db = Database(f"sqlite:///{tmp_path / 'lab.sqlite3'}")
    db.upgrade()
    settings = {**SIZES, "participant_fields": ["age", "handedness"]}
    key = build_experiment(lab_spec(tmp_path, toy_set, lab=settings), db).key

    def press(context, step):
        return "space" if context == "continue" else key_for()[(step.trial.answer_key, 3)]

    shot = ROOT / "test-artifacts" / "lab" / "trial_degrees_1280x1024.png"
    options = LabOptions(experiment=key, participant="G01", database_url=db.url,
                         data_dir=str(tmp_path / "data"), size=(1280, 1024), monitor=MONITOR,
                         end_wait_s=0.1, screenshot=str(shot), expected_hz=60.0,
                         info={"age": "31", "handedness": "left"})
    keys = EmulatedKeys(press, delay_s=FAST_TIMING["button_lock_ms"] / 1000 + 0.03)
    with caplog.at_level(logging.WARNING, logger="interpsy.lab"):
        result = run_lab(options, keys=keys)
    assert result.status == "completed"
    warned = [r.getMessage() for r in caplog.records if "timing is unstable" in r.getMessage()]

    participant = frames_from_db(db, key)["participants"].iloc[0]
    assert participant.reference_deg == pytest.approx(2.5, abs=1e-3)
    assert participant.query_deg == pytest.approx(4.0, abs=1e-3)
    assert (participant.monitor_width_cm, participant.viewing_distance_cm) == (53.0, 57.0)
    assert json.loads(participant.participant_info) == {"age": "31", "handedness": "left"}
    log_file = result.data_file.with_suffix(".log")  # PsychoPy's log beside the CSV
    text = log_file.read_text()
    assert "ImageStim" in text  # PsychoPy's own record of what was drawn
    # Xvfb has no vertical sync: the check at the start must say so, to the experimenter too
    assert participant.timing_verdict.startswith(("stable", "unstable: "))
    assert bool(warned) == participant.timing_verdict.startswith("unstable")
    assert bool(warned) == ("interpsy: display timing is unstable" in text)
    expected_px = participant.reference_px
    with Image.open(result.screenshot) as image:
        rgb = image.convert("RGB")
        width, height = rgb.size
        background = rgb.getpixel((5, 5))
        # a band through the middle row of the left grid: three references, each as wide as asked
        y = int(height / 2 + 0.01 * height)

        def differs(x: int) -> bool:
            return any(max(abs(a - b) for a, b in zip(rgb.getpixel((x, y + dy)), background,
                                                      strict=True)) > 6
                       for dy in range(-15, 16, 3))

        runs = _runs([differs(x) for x in range(int(width * 0.35))])
    assert len(runs) == 3 and all(abs(r - expected_px) <= 2 for r in runs), (runs, expected_px)
    db.dispose()


@pytest.mark.lab
@pytest.mark.timeout(120)
def test_a_start_that_fails_its_checks_holds_no_task(xvfb_display, toy_set, tmp_path):
    """Sizes in degrees but no monitor profile: the start failed after the session began and
    left it in progress, holding its task. Now the task is free again, and the same command
    with the monitor given runs the session."""
    from sqlalchemy import select

    from experiments.db.models import Session
    from experiments.lab.keys import EmulatedKeys, key_for
    from experiments.lab.session import LabOptions, run_lab

    db = Database(f"sqlite:///{tmp_path / 'lab.sqlite3'}")
    db.upgrade()
    key = build_experiment(lab_spec(tmp_path, toy_set, lab=SIZES), db).key
    options = LabOptions(experiment=key, participant="G02", database_url=db.url,
                         data_dir=str(tmp_path / "data"), size=(1280, 1024), end_wait_s=0.1,
                         expected_hz=60.0)
    def press(context, step):
        return "space" if context == "continue" else key_for()[(step.trial.answer_key, 3)]

    keys = EmulatedKeys(press, delay_s=FAST_TIMING["button_lock_ms"] / 1000 + 0.03)
    with pytest.raises(InterpsyError, match="monitor"):
        run_lab(options, keys=keys)
    with db.read() as session:
        statuses = session.scalars(select(Session.status)).all()
    assert statuses and "in_progress" not in statuses
    result = run_lab(LabOptions(**{**options.__dict__, "monitor": MONITOR}), keys=keys)
    assert result.status == "completed"
    db.dispose()
