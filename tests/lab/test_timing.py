"""The timing check's verdict: rate against the expected one, dropped frames, flip jitter."""
from __future__ import annotations

from experiments.lab.timing import frame_stats, judge


def _intervals(hz: float, n: int = 300, drops: int = 0, jitter_s: float = 0.0) -> list[float]:
    period = 1.0 / hz
    out = [period + (jitter_s if k % 2 else -jitter_s) for k in range(n)]
    for k in range(drops):
        out[10 + 20 * k] = 2 * period
    return out


def test_a_steady_60_hz_screen_is_stable():
    verdict = judge(frame_stats(_intervals(60.0)), 60.0)
    assert verdict.stable and verdict.line().startswith("verdict: stable")
    assert verdict.as_dict()["timing_verdict"] == "stable"


def test_the_wrong_rate_dropped_frames_and_jitter_are_each_named():
    assert "expected 120 Hz" in judge(frame_stats(_intervals(60.0)), 120.0).line()
    dropped = judge(frame_stats(_intervals(60.0, drops=6)), 60.0)
    assert not dropped.stable and "6 of 300 frames dropped" in dropped.line()
    shaky = judge(frame_stats(_intervals(60.0, jitter_s=0.002)), 60.0)
    assert not shaky.stable and "jitter" in shaky.line()


def test_without_an_expected_rate_the_verdict_says_what_to_give():
    verdict = judge(frame_stats(_intervals(60.0)), None)
    assert not verdict.stable and "--expected-hz" in verdict.line()


def test_the_stats_line_and_the_verdict_give_the_same_frame_rate():
    """The timing test printed 37.90 Hz (from the mean interval, long drops included) above a
    verdict of 61.66 Hz (the median): both now come from the median interval."""
    stats = frame_stats(_intervals(60.0, drops=12) + [0.5] * 3)
    verdict = judge(stats, 60.0)
    assert f"frame rate: {verdict.measured_hz:.2f} Hz" in stats.lines()[1]
    assert abs(stats.rate_hz - 60.0) < 0.01
