"""Machine observers: answer the trials people answer (MIS from image similarity, the occlusion
paper's baselines) and write rows in the response schema with client `machine` (torch side)."""
from __future__ import annotations

from stimuli.observers.observers import OBSERVERS, MachineAnswer, Observer, get_observer
from stimuli.observers.rules import DREAMSIM_ALPHA, fit_alpha, mis_delta, p_choose

__all__ = [
           "DREAMSIM_ALPHA",
           "OBSERVERS",
           "MachineAnswer",
           "Observer",
           "fit_alpha",
           "get_observer",
           "mis_delta",
           "p_choose",
]
