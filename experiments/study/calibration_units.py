"""The calibration model's units and what each is by construction (torch-free; the model is
stimuli.calibration_models, `calibration-net` in the registry)."""
from __future__ import annotations

from dataclasses import dataclass

from experiments.stimulus_set import unit_key

MODEL = "calibration-net"
DETECTORS = ("edge 0 deg", "edge 45 deg", "edge 90 deg", "edge 135 deg", "red-green blob",
             "blue-yellow blob", "centre-surround", "fine texture")
N_CONTROLS = 4
CONTROL_PERIOD = 0.004  # a control's readout period; its pooled response spans about +-2 on photos
MIXING = (0.0, 0.25, 0.5, 0.75, 1.0)  # mixture channel i: max(A, MIXING[i] x B)
MIXED = (0, 4)  # the detectors mixed: A the vertical edge, B the red-green blob
SHORTCUT_GAIN = 4.0  # shortcuts/0 = edge 0 deg + SHORTCUT_GAIN x fine checkerboard
SHORTCUTS = (f"edge 0 deg + {SHORTCUT_GAIN:g} x fine checkerboard (planted shortcut)",
             "edge 0 deg (the same without the shortcut)")


@dataclass(frozen=True)
class CalibrationUnit:
    """What a calibration unit is by construction. `known_order` ranks how well one explanation
    can describe it: 1 for a pure detector, 1 - m/2 for a mixture at knob m, 0 for a random
    control (only the order is meaningful); None for a shortcut unit, whose natural exemplars
    describe it and whose visualizations do not."""

    layer: str
    channel: int
    function: str
    kind: str  # detector | control | mixture | shortcut
    mixing: float | None = None

    @property
    def unit_id(self) -> str:
        return unit_key(MODEL, self.layer, self.channel)

    @property
    def known_order(self) -> float | None:
        if self.kind == "shortcut":
            return None
        if self.kind == "control":
            return 0.0
        return 1.0 - (self.mixing or 0.0) / 2


def calibration_units() -> list[CalibrationUnit]:
    """Every calibration unit with what it is by construction."""
    a, b = (DETECTORS[i] for i in MIXED)
    units = [CalibrationUnit("detectors", c, name, "detector") for c, name in enumerate(DETECTORS)]
    units += [CalibrationUnit("controls", i, "random weights (seeded), read out modulo a fine "
                              "period", "control") for i in range(N_CONTROLS)]
    units += [CalibrationUnit("checker", 0, "fine checkerboard", "detector")]
    units += [CalibrationUnit("mixtures", i, f"max({a}, {m:g} x {b})", "mixture", m)
              for i, m in enumerate(MIXING)]
    units += [CalibrationUnit("shortcuts", i, name, "shortcut" if i == 0 else "detector")
              for i, name in enumerate(SHORTCUTS)]
    return units
