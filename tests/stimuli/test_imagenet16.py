"""The 16-category mapping of ImageNet's classes: 207 disjoint classes whose names belong to
their category, and the mean over each category's classes."""
import numpy as np
import pytest

from experiments.vocabulary import SIXTEEN_CLASSES
from stimuli.imagenet16 import CATEGORY_CLASSES, category_probabilities


def test_the_categories_cover_207_disjoint_imagenet_classes():
    assert tuple(CATEGORY_CLASSES) == SIXTEEN_CLASSES
    every = [i for classes in CATEGORY_CLASSES.values() for i in classes]
    assert len(every) == len(set(every)) == 207
    assert all(0 <= i < 1000 for i in every)
    assert {k: len(v) for k, v in CATEGORY_CLASSES.items() if len(v) > 9} == {"bird": 49,
                                                                              "dog": 109}


def test_the_additions_stay_apart_from_the_benchmarks_classes():
    from stimuli.imagenet16 import ADDED_CATEGORY_CLASSES

    every = [i for classes in CATEGORY_CLASSES.values() for i in classes]
    added = [i for classes in ADDED_CATEGORY_CLASSES.values() for i in classes]
    assert not set(every) & set(added) and not set(ADDED_CATEGORY_CLASSES) & set(CATEGORY_CLASSES)


def test_each_category_holds_classes_of_its_kind():
    from torchvision.models import ResNet50_Weights

    names = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]  # ImageNet's class names, in order
    expected = {"airplane": {"airliner"}, "knife": {"cleaver"}, "oven": {"rotisserie"},
                "elephant": {"Indian elephant", "African elephant"},
                "keyboard": {"computer keyboard", "typewriter keyboard"},
                "clock": {"analog clock", "digital clock", "wall clock"},
                "chair": {"barber chair", "folding chair", "rocking chair", "throne"}}
    for category, members in expected.items():
        assert {names[i] for i in CATEGORY_CLASSES[category]} == members
    assert all("bear" in names[i] for i in CATEGORY_CLASSES["bear"])
    assert {"tabby", "Siamese cat"} <= {names[i] for i in CATEGORY_CLASSES["cat"]}
    assert {"hen", "king penguin"} <= {names[i] for i in CATEGORY_CLASSES["bird"]}
    assert "Chihuahua" not in {names[i] for i in CATEGORY_CLASSES["dog"]}  # removed by hand


def test_a_category_gets_the_mean_of_its_classes():
    p = np.full((2, 1000), 0.0)
    p[0, 294], p[0, 295] = 0.6, 0.2  # two of bear's four classes
    p[1, 404] = 0.5
    out = category_probabilities(p)
    bear, airplane = SIXTEEN_CLASSES.index("bear"), SIXTEEN_CLASSES.index("airplane")
    assert out.shape == (2, 16)
    assert out[0, bear] == pytest.approx(0.2) and out[1, airplane] == pytest.approx(0.5)
    assert category_probabilities(p, ("cat", "dog")).shape == (2, 2)
    assert category_probabilities(p, ("cat", "cup")).shape == (2, 2)  # an addition
    with pytest.raises(ValueError, match="no ImageNet classes for spoon"):
        category_probabilities(p, ("spoon",))
    with pytest.raises(ValueError, match=r"\(n, 1000\)"):
        category_probabilities(p[:, :10])
