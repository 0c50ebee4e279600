"""Streaming mining equals brute force: top-k, bottom-k, percentile picks; shards; resume."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stimuli.errors import StimuliError
from stimuli.mining import MiningConfig, merge_shards, mine_shard, percentile_picks, percentile_rank
from stimuli.topk import StreamingTopK
from tests.stimuli.helpers import UNITS


@pytest.mark.parametrize("name", list(UNITS))
def test_mining_equals_brute_force(name, brute, image_files, tmp_path):
    spec, model, units, acts = brute[name]
    k = 6
    # the brute force's arithmetic (default memory format), so that equal ranks are exact
    cfg = MiningConfig(k=k, batch_size=7, workers=0, channels_last=False)
    mine_shard(model, spec, "random", units, image_files, tmp_path, cfg, progress=False)
    result = merge_shards(tmp_path, 1, [u.unit_id for u in units], image_files)
    for u in range(len(units)):
        column = acts[:, u]
        top = np.argsort(-column, kind="stable")[:k]
        bottom = np.argsort(-column, kind="stable")[::-1][:k]  # ties: the last index first
        assert list(result.top_indices[u]) == list(top)
        assert list(result.bottom_indices[u]) == list(bottom)
        np.testing.assert_allclose(result.top_values[u], column[top], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result.bottom_values[u], column[bottom], rtol=1e-5, atol=1e-6)
    # percentile picks: exact ranks of the full sort
    picks = percentile_picks(result, {"p85": 85.0, "p95": 95.0}, window=4)
    for u in range(len(units)):
        column = acts[:, u]
        for name_, q in (("p85", 85.0), ("p95", 95.0)):
            r = percentile_rank(q, len(column))
            lo = max(0, r - 2)
            want_max = np.argsort(-column, kind="stable")[lo: lo + 4]
            want_min = np.argsort(column, kind="stable")[lo: lo + 4]
            assert sorted(picks[name_]["max"][0][u]) == sorted(want_max)
            assert sorted(picks[name_]["min"][0][u]) == sorted(want_min)
            # the picked max values sit at the (100 - q)th fraction from the top
            assert np.all(picks[name_]["max"][1][u] <= column[np.argsort(-column)][max(0, lo - 1)])


def test_sharded_mining_merges_exactly(brute, image_files, tmp_path):
    spec, model, units, _ = brute["tiny-cnn"]
    cfg = MiningConfig(k=5, batch_size=8, workers=0)
    for i in range(3):
        mine_shard(model, spec, "random", units, image_files, tmp_path / "s", cfg, (i, 3),
                   progress=False)
    mine_shard(model, spec, "random", units, image_files, tmp_path / "one", cfg, progress=False)
    sharded = merge_shards(tmp_path / "s", 3, [u.unit_id for u in units], image_files)
    single = merge_shards(tmp_path / "one", 1, [u.unit_id for u in units], image_files)
    assert np.array_equal(sharded.top_indices, single.top_indices)
    assert np.array_equal(sharded.bottom_indices, single.bottom_indices)
    np.testing.assert_allclose(sharded.activation_block(slice(None)),
                               single.activation_block(slice(None)), rtol=1e-6)


def test_mining_resumes_after_interruption(brute, image_files, tmp_path, monkeypatch):
    spec, model, units, acts = brute["tiny-cnn"]
    cfg = MiningConfig(k=5, batch_size=4, workers=0, checkpoint_every=2)
    calls = {"n": 0}
    original = StreamingTopK.update

    def failing(self, values, indices):
        calls["n"] += 1
        if calls["n"] > 9:  # 5th batch (two updates per batch)
            raise KeyboardInterrupt
        return original(self, values, indices)

    monkeypatch.setattr(StreamingTopK, "update", failing)
    with pytest.raises(KeyboardInterrupt):
        mine_shard(model, spec, "random", units, image_files, tmp_path, cfg, progress=False)
    checkpoint = torch.load(tmp_path / "mining" / "shard-0-of-1.ckpt.pt", weights_only=False)
    assert checkpoint["done"] == 16
    monkeypatch.setattr(StreamingTopK, "update", original)
    # a checkpoint carries on only in its own memory format: the rest would round differently
    with pytest.raises(StimuliError, match="mining checkpoint for other settings"):
        mine_shard(model, spec, "random", units, image_files, tmp_path,
                   MiningConfig(k=5, batch_size=4, workers=0, checkpoint_every=2,
                                channels_last=False), progress=False)
    mine_shard(model, spec, "random", units, image_files, tmp_path, cfg, progress=False)
    result = merge_shards(tmp_path, 1, [u.unit_id for u in units], image_files)
    for u in range(len(units)):
        assert list(result.top_indices[u]) == list(np.argsort(-acts[:, u], kind="stable")[:5])
    np.testing.assert_allclose(result.activation_block(slice(None)), acts, rtol=1e-5, atol=1e-6)
