"""The named render schedules' stopping rules and alpha searches (torch-free)."""
from __future__ import annotations

SCHEDULES = ("imi", "cpu")
STOPPING_FIELDS = ("max_steps", "min_steps", "window", "ema", "plateau", "lr")
# The CPU schedule: lucent's 512 steps; IMI's plateau stop scaled down to them.
CPU_STOPPING = {"max_steps": 512, "min_steps": 256, "window": 128, "ema": 0.9}
# Each schedule's diversity-weight search: 10^0..10^max_exponent, then binary bisections.
SEARCH = {"imi": {"max_exponent": 5, "binary_steps": 7},
          "cpu": {"max_exponent": 1, "binary_steps": 1}}


def beats_target(side: str, activations, target: float) -> bool:
    """IMI's rule: every image beats the natural exemplar's activation `target` (the weakest
    above it for max, the strongest below it for min)."""
    return bool(min(activations) > target) if side == "max" else bool(max(activations) < target)
