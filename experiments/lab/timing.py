"""Frame timing: frame-rate measurement, frame-interval statistics and the timing test."""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class FrameStats:
    """Summary of flip-to-flip intervals (milliseconds)."""

    n: int
    rate_hz: float
    mean_ms: float
    median_ms: float
    sd_ms: float
    min_ms: float
    max_ms: float
    jitter_ms: float  # mean absolute deviation from the median interval
    dropped: int  # intervals longer than 1.5 median intervals

    def lines(self) -> list[str]:
        """Human-readable report lines."""
        return [f"frames measured: {self.n}", f"frame rate: {self.rate_hz:.2f} Hz",
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
    return FrameStats(n=len(ms), rate_hz=1000.0 / mean, mean_ms=mean, median_ms=median,
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
    return frame_stats([b - a for a, b in zip(times, times[1:])])
