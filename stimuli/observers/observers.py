"""Machine observers: each answers a trial from its stimulus description, as a person would
through the task type's answer model (torch-free; the embeddings come computed).

The choice observers answer choice types (IMI's 2-AFC, the occlusion task, the 3-AFC: any
ChoiceTask whose stimulus holds the fields its rule reads): each gives each option's evidence,
the probabilities are softmax(alpha * evidence) (for two options sigmoid(alpha * difference),
the MIS rule), the answer is the likeliest image with a confidence from how sure the rule is,
and `p_correct` the probability of the right one. The classifier observer answers
categorisation trials from an ImageNet classifier's class probabilities.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from experiments.tasks.base import TaskType
from experiments.tasks.choice import ChoiceTask
from experiments.tasks.occlusion import baseline_pick
from stimuli.errors import StimuliError
from stimuli.imagenet16 import category_probabilities
from stimuli.observers.rules import choice_probabilities, set_similarity

Embeddings = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class MachineAnswer:
    """One answer in the task type's answer model, whether it is right, and how likely."""

    answer: dict[str, Any]
    correct: bool
    p_correct: float


class Observer(ABC):
    """Answers the trials of the choice types whose stimulus holds one of `reads`' field sets."""

    name: str
    title: str
    reads: ClassVar[tuple[tuple[str, ...], ...]] = ((),)  # alternatives of fields the rule reads
    max_options: ClassVar[int | None] = None
    hard: ClassVar[bool] = False  # a 0/1 rule: alpha does not apply
    needs_embeddings: bool = True
    needs_unit_values: bool = False  # one value per image for the trial's unit (proxies)
    backbone_output: ClassVar[str] = "features"  # or "probabilities": a classifier's

    def shown(self, task: TaskType, stimulus: Mapping[str, Any]) -> list[str]:
        """The images of a trial the observer looks at (their embeddings are computed)."""
        return task.image_ids(stimulus)

    def refusal(self, task: TaskType) -> str | None:
        """Why this observer cannot answer `task`'s trials (None: it can)."""
        fields = set(task.Stimulus.model_fields)
        if not isinstance(task, ChoiceTask):
            return f"task type {task.name} is not answered by choosing an image"
        if self.max_options is not None and len(task.options) > self.max_options:
            return f"task type {task.name} has {len(task.options)} options (at most " \
                   f"{self.max_options})"
        if not any(set(needed) <= fields for needed in self.reads):
            wanted = " or ".join("+".join(needed) for needed in self.reads)
            return f"task type {task.name}'s trials hold none of the fields it reads ({wanted})"
        return None

    @abstractmethod
    def evidence(self, task: ChoiceTask, stimulus: Mapping[str, Any], embeddings: Embeddings
                 ) -> dict[str, float]:
        """Option -> the rule's evidence that it is the image the unit responds to more."""

    def answer(self, task: ChoiceTask, stimulus: Mapping[str, Any], key: str,
               embeddings: Embeddings, alpha: float | None, rng: np.random.Generator
               ) -> MachineAnswer:
        """The observer's answer to one trial whose answer key is `key`."""
        why = self.refusal(task)
        if why:
            raise StimuliError(f"observer {self.name} cannot answer: {why}")
        evidence = self.evidence(task, stimulus, embeddings)
        options = list(task.options)
        p = choice_probabilities(np.array([evidence[o] for o in options]),
                                 None if self.hard else alpha)
        likeliest = np.flatnonzero(p == p.max())
        choice = options[int(likeliest[0] if len(likeliest) == 1 else rng.choice(likeliest))]
        certainty = (p.max() - 1 / len(options)) / (1 - 1 / len(options))
        confidence = 1 + min(2, int(certainty * 3))  # in thirds of the range above chance
        answer = task.parse_answer({"choice": choice, "confidence": confidence})
        return MachineAnswer(answer.model_dump(), task.score(answer, key),
                             float(p[options.index(key)]))


def _vectors(embeddings: Embeddings, ids: list[str]) -> np.ndarray:
    return np.stack([embeddings[i] for i in ids]) if ids else np.zeros((0, 1))


class SimilarityObserver(Observer):
    """The MIS rule: the query more similar to the maximally activating explanations (and less
    to the minimally activating ones) is the one the unit responds to more."""

    name = "mis"
    title = ("Machine Interpretability Score (Zimmermann, Klindt & Brendel 2024): "
             "sigmoid(alpha * similarity difference)")
    reads = (("references_max", "references_min"), ("references", "base"))

    def evidence(self, task: ChoiceTask, stimulus: Mapping[str, Any], embeddings: Embeddings
                 ) -> dict[str, float]:
        queries = {o: embeddings[i] for o, i in task.option_images(stimulus).items()}
        if "references_max" in stimulus:  # s(q, E+) - s(q, E-)
            high = _vectors(embeddings, stimulus["references_max"])
            low = _vectors(embeddings, stimulus["references_min"])
            return {o: set_similarity(q, high) - set_similarity(q, low)
                    for o, q in queries.items()}
        # occlusion: the occluded image closer to the references (to the base image, without)
        shown = _vectors(embeddings, stimulus["references"] or [stimulus["base"]])
        return {o: set_similarity(q, shown) for o, q in queries.items()}


class OcclusionBaseline(Observer):
    """One of the occlusion paper's simple baselines, from the occluders the trial records."""

    reads = (("occluder_a", "occluder_b"),)
    max_options = 2
    hard = True
    needs_embeddings = False

    def __init__(self, name: str, title: str):
        self.name, self.title = name, title

    def evidence(self, task: ChoiceTask, stimulus: Mapping[str, Any], embeddings: Embeddings
                 ) -> dict[str, float]:
        pick = baseline_pick(self.name, stimulus.get("occluder_a"), stimulus.get("occluder_b"))
        return {"a": float(pick == "a"), "b": float(pick == "b")}


class ProxyObserver(Observer):
    """A simplified proxy of the unit (`interpsy stimuli proxies`) in the participant's place:
    the image the proxy responds to more is the one it picks. Its values arrive as one-number
    'embeddings' per image id, the proxy's activation for the trial's unit."""

    name = "proxy"
    title = ("Simplified proxy of the unit (Friedman et al. 2024): the query the proxy "
             "responds to more")
    hard = True
    needs_embeddings = False
    needs_unit_values = True

    def evidence(self, task: ChoiceTask, stimulus: Mapping[str, Any], embeddings: Embeddings
                 ) -> dict[str, float]:
        return {o: float(embeddings[i][0]) for o, i in task.option_images(stimulus).items()}


class ClassifierObserver(Observer):
    """An ImageNet classifier categorises the trial's image: each offered category's
    probability is the mean of its ImageNet classes' (stimuli.imagenet16, the model-vs-human
    benchmark's mapping), the answer the likeliest category, `p_correct` the right one's share
    of the offered categories' probabilities."""

    name = "classifier"
    title = ("ImageNet classifier, 1,000 classes mapped to the categories by the mean over "
             "each category's classes (Geirhos et al. 2018, 2021)")
    reads = (("image", "categories"),)
    hard = True
    backbone_output = "probabilities"

    def refusal(self, task: TaskType) -> str | None:
        if not {"image", "categories"} <= set(task.Stimulus.model_fields):
            return (f"task type {task.name} is not a categorisation of one image (its trials "
                    f"hold no image and categories)")
        return None

    def shown(self, task: TaskType, stimulus: Mapping[str, Any]) -> list[str]:
        return [stimulus["image"]]

    def evidence(self, task: TaskType, stimulus: Mapping[str, Any], embeddings: Embeddings
                 ) -> dict[str, float]:
        categories = tuple(stimulus["categories"])
        try:
            mapped = category_probabilities(embeddings[stimulus["image"]][None, :], categories)
        except ValueError as exc:
            raise StimuliError(f"observer {self.name}: {exc}") from None
        return dict(zip(categories, mapped[0] / mapped[0].sum(), strict=True))

    def answer(self, task: TaskType, stimulus: Mapping[str, Any], key: str,
               embeddings: Embeddings, alpha: float | None, rng: np.random.Generator
               ) -> MachineAnswer:
        p = self.evidence(task, stimulus, embeddings)
        best = max(p.values())
        likeliest = [c for c, v in p.items() if v == best]
        choice = likeliest[0] if len(likeliest) == 1 else str(rng.choice(likeliest))
        return MachineAnswer({"choice": choice}, choice == key, float(p[key]))


OBSERVERS: dict[str, Observer] = {o.name: o for o in (
    SimilarityObserver(),
    ClassifierObserver(),
    OcclusionBaseline("centre", "Occlusion baseline: the occluder farther from the image centre"),
    OcclusionBaseline("variance", "Occlusion baseline: the occluder over the calmer patch"),
    ProxyObserver(),
)}


def get_observer(name: str) -> Observer:
    """The registered observer `name`; a clear error listing the known ones."""
    if name not in OBSERVERS:
        raise StimuliError(f"unknown observer {name!r}; known: {', '.join(OBSERVERS)}")
    return OBSERVERS[name]
