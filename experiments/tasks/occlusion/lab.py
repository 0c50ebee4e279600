"""The occlusion task on the lab screen: the unoccluded base image large on the left, the
maximally activating references right, the two occluded versions as queries a and b."""
from __future__ import annotations

from typing import Any

from experiments.tasks.occlusion import Occlusion, OcclusionStimulus
from experiments.tasks.placement import Placement


def place(stimulus: dict[str, Any]) -> Placement:
    """Where the trial's images go."""
    s = OcclusionStimulus.model_validate(stimulus)
    return Placement(options=Occlusion().option_images(stimulus), right=s.references,
                     left_single=s.base)
