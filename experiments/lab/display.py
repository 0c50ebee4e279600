"""The lab screen's geometry: a PsychoPy monitor profile (width in cm, viewing distance,
resolution; its gamma calibration is PsychoPy's to apply) and the spec's sizes in degrees of
visual angle, turned into the trial layout and into the facts a methods section reports."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from experiments.errors import InterpsyError
from experiments.lab.layout import TWO, TrialLayout, trial_layout


@dataclass(frozen=True)
class MonitorChoice:
    """What the command line says about the monitor: a saved profile and/or its measures."""

    name: str | None = None
    width_cm: float | None = None
    distance_cm: float | None = None

    def given(self) -> bool:
        return bool(self.name or self.width_cm or self.distance_cm)


def open_monitor(choice: MonitorChoice) -> Any | None:
    """A psychopy.monitors.Monitor for `choice` (None: not given); LabScreen sets its
    resolution to the screen's."""
    if not choice.given():
        return None
    from psychopy import monitors

    if choice.name and choice.name not in monitors.getAllMonitors():
        known = ", ".join(monitors.getAllMonitors()) or "none"
        raise InterpsyError(f"no monitor profile {choice.name!r} in PsychoPy's Monitor Center "
                            f"(profiles: {known}); or give --monitor-width-cm and --distance-cm")
    monitor = monitors.Monitor(choice.name or "interpsy-lab")
    if choice.width_cm:
        monitor.setWidth(choice.width_cm)
    if choice.distance_cm:
        monitor.setDistance(choice.distance_cm)
    if not monitor.getWidth() or not monitor.getDistance():
        raise InterpsyError(f"monitor {monitor.name!r}: its width in cm and viewing distance are "
                            f"needed (--monitor-width-cm, --distance-cm)")
    return monitor


def px_per_degree(monitor: Any) -> float:
    """Pixels per degree of visual angle at the screen's centre."""
    from psychopy.tools.monitorunittools import deg2pix
    return float(deg2pix(1.0, monitor))


def layout_for(display: dict[str, Any], monitor: Any | None, window: tuple[int, int],
               options: tuple[str, ...] = TWO) -> TrialLayout:
    """The trial layout for a window of `window` pixels and a row per answer option: the
    spec's degrees on this monitor, or (no sizes in degrees) the web page's proportions fitted
    to the window."""
    width, height = window
    if not display.get("reference_deg"):
        return trial_layout(width / height, options=options)
    if monitor is None:
        raise InterpsyError("this experiment gives image sizes in degrees of visual angle (its "
                            "[lab] table): name the monitor profile (--monitor NAME) or give "
                            "--monitor-width-cm and --distance-cm")
    units = px_per_degree(monitor) / height  # 'height' units per degree

    def size(key: str) -> float | None:
        return display[key] * units if display.get(key) is not None else None

    return trial_layout(width / height, size("reference_deg"), size("query_deg"),
                        size("gap_deg"), options=options)


def geometry_facts(layout: TrialLayout, monitor: Any | None, window: tuple[int, int],
                   screen: tuple[int, int]) -> dict[str, Any]:
    """What a methods section reports: the monitor, and every size in pixels and degrees."""
    height = window[1]
    px = {"reference": layout.cell * height, "query": layout.query * height,
          "gap": layout.gap * height}
    facts: dict[str, Any] = {f"{k}_px": round(v, 2) for k, v in px.items()}
    facts.update(monitor=None, monitor_width_cm=None, viewing_distance_cm=None, px_per_deg=None,
                 reference_deg=None, query_deg=None, gap_deg=None, gamma=None)
    if monitor is not None:
        ppd = px_per_degree(monitor)
        gamma = monitor.getGamma()
        facts.update(monitor=monitor.name, monitor_width_cm=float(monitor.getWidth()),
                     viewing_distance_cm=float(monitor.getDistance()),
                     monitor_resolution=list(screen), px_per_deg=round(ppd, 3),
                     gamma=None if gamma is None else np.asarray(gamma, float).tolist(),
                     **{f"{k}_deg": round(v / ppd, 3) for k, v in px.items()})
    return facts
