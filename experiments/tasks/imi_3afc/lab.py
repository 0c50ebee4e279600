"""The 3-AFC on the lab screen: min references left, max references right, three query rows."""
from __future__ import annotations

from typing import Any

from experiments.tasks.imi_3afc import ImiThreeAfc, ThreeAfcStimulus
from experiments.tasks.placement import Placement


def place(stimulus: dict[str, Any]) -> Placement:
    """Where the trial's images go."""
    s = ThreeAfcStimulus.model_validate(stimulus)
    return Placement(options=ImiThreeAfc().option_images(stimulus), right=s.references_max,
                     left=s.references_min)
