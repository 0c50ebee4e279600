"""IMI's 2-AFC on the lab screen: min references left, max references right, queries a and b."""
from __future__ import annotations

from typing import Any

from experiments.tasks.imi_2afc import ImiTwoAfc, TwoAfcStimulus
from experiments.tasks.placement import Placement


def place(stimulus: dict[str, Any]) -> Placement:
    """Where the trial's images go."""
    s = TwoAfcStimulus.model_validate(stimulus)
    return Placement(options=ImiTwoAfc().option_images(stimulus), right=s.references_max,
                     left=s.references_min)
