"""Frame timing: frame-rate measurement, frame-interval statistics and the timing test."""
from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class FrameStats:
    """Summary of flip-to-flip intervals (milliseconds)."""

    n: int
    rate_hz: float  # from the median interval, as the verdict judges it
    mean_ms: float
    median_ms: float
    sd_ms: float
    min_ms: float
    max_ms: float
    jitter_ms: float  # mean absolute deviation from the median interval
    dropped: int  # intervals longer than 1.5 median intervals

    def lines(self) -> list[str]:
        """Human-readable report lines."""
        return [f"frames measured: {self.n}",
                f"frame rate: {self.rate_hz:.2f} Hz (median interval; the mean, long frames "
                f"included, gives {1000.0 / self.mean_ms:.2f} Hz)",
                f"interval mean {self.mean_ms:.3f} ms, median {self.median_ms:.3f} ms, "
                f"sd {self.sd_ms:.3f} ms, min {self.min_ms:.3f} ms, max {self.max_ms:.3f} ms",
                f"flip jitter (mean |interval - median|): {self.jitter_ms:.3f} ms",
                f"dropped frames (> 1.5 x median): {self.dropped}"]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def frame_stats(intervals_s: Sequence[float]) -> FrameStats:
    """Statistics of flip intervals given in seconds."""
    ms = [float(x) * 1000.0 for x in intervals_s if x is not None and x > 0]
    if len(ms) < 2:
        raise ValueError("need at least two frame intervals")
    median = statistics.median(ms)
    mean = statistics.fmean(ms)
    return FrameStats(n=len(ms), rate_hz=1000.0 / median, mean_ms=mean, median_ms=median,
                      sd_ms=statistics.stdev(ms), min_ms=min(ms), max_ms=max(ms),
                      jitter_ms=statistics.fmean(abs(x - median) for x in ms),
                      dropped=sum(x > 1.5 * median for x in ms))


def measure_frame_rate(win: Any) -> float | None:
    """The screen's measured frame rate (PsychoPy's getActualFrameRate), None if unstable."""
    rate = win.getActualFrameRate(nIdentical=10, nMaxFrames=120, nWarmUpFrames=10, threshold=1)
    return round(float(rate), 3) if rate else None


def set_drop_threshold(win: Any, rate_hz: float | None) -> None:
    """Count a frame as dropped when its interval exceeds 1.2 nominal frame periods."""
    if rate_hz:
        win.refreshThreshold = 1.2 / rate_hz
    win.recordFrameIntervals = True


def timing_test(win: Any, n_frames: int = 300, draw: Any = None) -> FrameStats:
    """Flip `n_frames` times (drawing `draw` each frame) and summarise the intervals."""
    times = []
    for _ in range(n_frames + 1):
        if draw is not None:
            draw()
        win.flip()
        times.append(win._frameTime)  # set by every flip, waitBlanking or not
    return frame_stats([b - a for a, b in itertools.pairwise(times)])


RATE_TOLERANCE = 0.02  # measured rate within 2 % of the expected one
MAX_DROPPED = 0.01  # at most 1 % of frames dropped
JITTER_SHARE = 0.05  # flip jitter at most 5 % of a frame period (and at least 0.5 ms allowed)


@dataclass(frozen=True)
class TimingVerdict:
    """Whether the display's timing can be trusted, and why not."""

    stable: bool
    expected_hz: float | None
    measured_hz: float
    dropped: int
    n_frames: int
    reasons: tuple[str, ...]

    def line(self) -> str:
        if self.stable:
            return (f"verdict: stable ({self.measured_hz:.2f} Hz"
                    + (f", expected {self.expected_hz:g} Hz" if self.expected_hz else "")
                    + f", {self.dropped} of {self.n_frames} frames dropped)")
        return "verdict: UNSTABLE: " + "; ".join(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {"timing_verdict": "stable" if self.stable else
                "unstable: " + "; ".join(self.reasons),
                "timing_expected_hz": self.expected_hz,
                "timing_measured_hz": round(self.measured_hz, 3),
                "timing_dropped": self.dropped, "timing_frames": self.n_frames,
                "timing_reasons": list(self.reasons)}


def judge(stats: FrameStats, expected_hz: float | None) -> TimingVerdict:
    """Stable when the rate matches the expected one, few frames drop and flips do not jitter."""
    reasons = []
    measured = stats.rate_hz
    if expected_hz:
        off = abs(measured - expected_hz) / expected_hz
        if off > RATE_TOLERANCE:
            reasons.append(f"frame rate {measured:.2f} Hz, expected {expected_hz:g} Hz "
                           f"({100 * off:.0f} % off)")
    else:
        reasons.append("no expected frame rate: give --expected-hz (the monitor's refresh rate "
                       "could not be read)")
    if stats.dropped > MAX_DROPPED * stats.n:
        reasons.append(f"{stats.dropped} of {stats.n} frames dropped (at most "
                       f"{100 * MAX_DROPPED:g} % allowed)")
    period_ms = 1000.0 / (expected_hz or measured)
    limit = max(0.5, JITTER_SHARE * period_ms)
    if stats.jitter_ms > limit:
        reasons.append(f"flip jitter {stats.jitter_ms:.2f} ms (at most {limit:.2f} ms)")
    return TimingVerdict(not reasons, expected_hz, measured, stats.dropped, stats.n,
                         tuple(reasons))


def nominal_refresh_hz(win: Any) -> float | None:
    """The refresh rate the operating system reports for the window's screen, if any."""
    try:
        rate = win.winHandle.screen.get_mode().rate
    except Exception:  # noqa: BLE001 - pyglet backends and X servers without mode information
        return None
    return float(rate) if rate else None


def check_display(win: Any, expected_hz: float | None, n_frames: int = 300, draw: Any = None
                  ) -> tuple[FrameStats, TimingVerdict]:
    """Flip the screen `draw` draws and judge its timing against `expected_hz` (or the OS's)."""
    stats = timing_test(win, n_frames, draw)
    return stats, judge(stats, expected_hz or nominal_refresh_hz(win))
