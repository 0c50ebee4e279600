"""Machine observers: each answers a trial from its stimulus description, as a person would
through the task type's answer model (torch-free; the embeddings come computed).

Every observer here answers two-choice types (IMI's 2-AFC, the occlusion task): it gives the
probability of choosing the upper image `a`; the answer is the likelier image with a confidence
from how sure the rule is, and `p_correct` the probability of the right one.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from experiments.tasks.base import TaskType
from experiments.tasks.occlusion import baseline_pick
from stimuli.errors import StimuliError
from stimuli.observers.rules import mis_delta, p_choose, set_similarity

Embeddings = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class MachineAnswer:
    """One answer in the task type's answer model, whether it is right, and how likely."""

    answer: dict[str, Any]
    correct: bool
    p_correct: float


class Observer(ABC):
    """Answers trials of the task types it names."""

    name: str
    title: str
    tasks: tuple[str, ...]
    needs_embeddings: bool = True
    needs_unit_values: bool = False  # one value per image for the trial's unit (proxies)

    @abstractmethod
    def p_upper(self, task: TaskType, stimulus: Mapping[str, Any], embeddings: Embeddings,
                alpha: float | None) -> float:
        """P(choosing the upper image `a`)."""

    def answer(self, task: TaskType, stimulus: Mapping[str, Any], key: str,
               embeddings: Embeddings, alpha: float | None, rng: np.random.Generator
               ) -> MachineAnswer:
        """The observer's answer to one trial whose answer key is `key`."""
        if task.name not in self.tasks:
            raise StimuliError(f"observer {self.name} answers task types "
                               f"{', '.join(self.tasks)}, not {task.name}")
        p_a = self.p_upper(task, stimulus, embeddings, alpha)
        choice = "a" if p_a > 0.5 else "b" if p_a < 0.5 else str(rng.choice(["a", "b"]))
        confidence = 1 + min(2, int(abs(p_a - 0.5) * 6))  # |p - 0.5| in thirds of its range
        answer = task.parse_answer({"choice": choice, "confidence": confidence})
        return MachineAnswer(answer.model_dump(), task.score(answer, key),
                             p_a if key == "a" else 1.0 - p_a)


def _vectors(embeddings: Embeddings, ids: list[str]) -> np.ndarray:
    return np.stack([embeddings[i] for i in ids]) if ids else np.zeros((0, 1))


class SimilarityObserver(Observer):
    """The MIS rule: the query more similar to the maximally activating explanations (and less
    to the minimally activating ones) is the one the unit responds to more."""

    name = "mis"
    title = ("Machine Interpretability Score (Zimmermann, Klindt & Brendel 2024): "
             "sigmoid(alpha * similarity difference)")
    tasks = ("imi_2afc", "occlusion")

    def delta_upper(self, task: TaskType, stimulus: Mapping[str, Any],
                    embeddings: Embeddings) -> float:
        """The rule's evidence for the upper image `a`."""
        a, b = embeddings[stimulus["query_a"]], embeddings[stimulus["query_b"]]
        if task.name == "imi_2afc":
            return mis_delta(a, b, _vectors(embeddings, stimulus["references_max"]),
                             _vectors(embeddings, stimulus["references_min"]))
        # occlusion: the occluded image closer to the references (to the base image, without)
        shown = stimulus["references"] or [stimulus["base"]]
        references = _vectors(embeddings, shown)
        return set_similarity(a, references) - set_similarity(b, references)

    def p_upper(self, task: TaskType, stimulus: Mapping[str, Any], embeddings: Embeddings,
                alpha: float | None) -> float:
        return float(p_choose(self.delta_upper(task, stimulus, embeddings), alpha))


class OcclusionBaseline(Observer):
    """One of the occlusion paper's simple baselines, from the occluders the trial records."""

    tasks = ("occlusion",)
    needs_embeddings = False

    def __init__(self, name: str, title: str):
        self.name, self.title = name, title

    def p_upper(self, task: TaskType, stimulus: Mapping[str, Any], embeddings: Embeddings,
                alpha: float | None) -> float:
        pick = baseline_pick(self.name, stimulus.get("occluder_a"), stimulus.get("occluder_b"))
        return {"a": 1.0, "b": 0.0, "tie": 0.5}[pick]


class ProxyObserver(Observer):
    """A simplified proxy of the unit (`interpsy stimuli proxies`) in the participant's place:
    the image the proxy responds to more is the one it picks. Its values arrive as one-number
    'embeddings' per image id, the proxy's activation for the trial's unit."""

    name = "proxy"
    title = ("Simplified proxy of the unit (Friedman et al. 2024): the query the proxy "
             "responds to more")
    tasks = ("imi_2afc", "occlusion")
    needs_embeddings = False
    needs_unit_values = True

    def p_upper(self, task: TaskType, stimulus: Mapping[str, Any], embeddings: Embeddings,
                alpha: float | None) -> float:
        a = float(embeddings[stimulus["query_a"]][0])
        b = float(embeddings[stimulus["query_b"]][0])
        return 1.0 if a > b else 0.0 if a < b else 0.5


OBSERVERS: dict[str, Observer] = {o.name: o for o in (
    SimilarityObserver(),
    OcclusionBaseline("centre", "Occlusion baseline: the occluder farther from the image centre"),
    OcclusionBaseline("variance", "Occlusion baseline: the occluder over the calmer patch"),
    ProxyObserver(),
)}


def get_observer(name: str) -> Observer:
    """The registered observer `name`; a clear error listing the known ones."""
    if name not in OBSERVERS:
        raise StimuliError(f"unknown observer {name!r}; known: {', '.join(OBSERVERS)}")
    return OBSERVERS[name]
