"""Streaming top-k equals a full stable sort (ties, shards); IMI fair batching."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stimuli.batching import available_difficulties, bin_shuffle, plan_unit
from stimuli.errors import StimuliError
from stimuli.topk import StreamingTopK


def _brute(values: np.ndarray, k: int, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """The first (largest) or the last k of one stable sort, most extreme first: the two sides
    never share an image."""
    order = np.argsort(-values, axis=1, kind="stable")
    order = (order if largest else order[:, ::-1])[:, :k]
    return np.take_along_axis(values, order, 1), order


@settings(max_examples=40, deadline=None)
@given(n_units=st.integers(1, 4), n_images=st.integers(1, 40), k=st.integers(1, 12),
       batch=st.integers(1, 9), seed=st.integers(0, 10_000), shards=st.integers(1, 3))
def test_streaming_topk_equals_stable_sort(n_units, n_images, k, batch, seed, shards):
    rng = np.random.default_rng(seed)
    values = rng.integers(-3, 4, size=(n_units, n_images)).astype(np.float32)  # many ties
    for largest in (True, False):
        merged = None
        bounds = [n_images * s // shards for s in range(shards + 1)]
        for s in range(shards):
            top = StreamingTopK(n_units, k, largest=largest)
            for start in range(bounds[s], bounds[s + 1], batch):
                stop = min(start + batch, bounds[s + 1])
                top.update(torch.from_numpy(values[:, start:stop]), torch.arange(start, stop))
            if merged is None:
                merged = top
            else:
                merged.merge(top)
        want_values, want_index = _brute(values, k, largest)
        assert np.array_equal(merged.indices.numpy(), want_index)
        assert np.array_equal(merged.values.numpy(), want_values)


def test_bin_shuffle_takes_one_per_bin():
    plan = bin_shuffle(20, 10, seed=42)
    assert plan.shape == (20, 10)
    for j in range(10):
        assert sorted(plan[:, j]) == list(range(20 * j, 20 * (j + 1)))
    assert np.array_equal(plan, bin_shuffle(20, 10, seed=42))
    assert not np.array_equal(plan, bin_shuffle(20, 10, seed=1))


def test_plan_unit_structure():
    k, n_batches = 30, 3
    top = (np.arange(k), np.linspace(10, 1, k))
    bottom = (np.arange(100, 100 + k), np.linspace(-10, -1, k))
    rows = plan_unit("m/l/0", top, bottom, n_batches, 10, 42)
    for b in range(n_batches):
        refs = [r for r in rows if r["batch"] == b and r["role"] == "reference_max"]
        assert [r["rank"] for r in refs] == list(range(9))
        acts = [r["activation"] for r in refs]
        assert acts == sorted(acts, reverse=True)  # most extreme first
        mins = [r["activation"] for r in rows if r["batch"] == b and r["role"] == "reference_min"]
        assert mins == sorted(mins)
        queries = [r for r in rows if r["batch"] == b and r["role"].startswith("query")]
        assert sorted(r["role"] for r in queries) == ["query_max", "query_min"]
        assert all(r["image_index"] in range(27, 30) or r["image_index"] in range(127, 130)
                   for r in queries)  # the last bin (ranks 27..29)
    used = [r["image_index"] for r in rows]
    assert len(used) == len(set(used)) == 2 * k


def test_plan_unit_refuses_overlap_and_too_few():
    with pytest.raises(StimuliError, match="overlap"):
        plan_unit("u", (np.arange(20), np.zeros(20)), (np.arange(19, -1, -1), np.zeros(20)),
                  2, 10, 0)
    with pytest.raises(StimuliError, match="need 20"):
        plan_unit("u", (np.arange(5), np.zeros(5)), (np.arange(5), np.zeros(5)), 2, 10, 0)


def test_available_difficulties():
    assert available_difficulties(1_281_167, 200, 20) == ["p99", "p95", "p85"]
    assert available_difficulties(100, 20, 2) == []
    with pytest.raises(StimuliError, match="too few"):
        available_difficulties(100, 20, 2, ["p99"])
