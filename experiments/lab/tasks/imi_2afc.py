"""IMI's 2-AFC on the lab screen: min references left, max references right, queries a and b."""
from __future__ import annotations

from typing import Any

from experiments.lab.tasks.placement import Placement
from experiments.tasks.imi_2afc import TwoAfcStimulus


def place(stimulus: dict[str, Any]) -> Placement:
    """Where the trial's images go."""
    s = TwoAfcStimulus.model_validate(stimulus)
    return Placement(a=s.query_a, b=s.query_b, right=s.references_max, left=s.references_min)
