"""IMI's fair batching of natural references and queries, plus percentile queries. Torch-free.

Per unit and side, the k = n_bins x n_batches most extreme images (IMI: 10 x 20 = 200) are cut
by rank into `n_bins` bins of `n_batches` images; each bin is shuffled with
`numpy.random.RandomState(seed)` (a fresh generator per unit and side, max side first, so a
unit's batches do not depend on the other units); batch b takes the b-th element of every bin:
bins 0..n_bins-2 give the references (rank 0 = from the most extreme bin, shown first) and the
last bin gives the easy query. Percentile queries (p99/p95/p85) take a window of `n_batches`
images around the percentile rank, shuffled the same way; batch b takes the b-th.
"""
from __future__ import annotations

import numpy as np

from experiments.vocabulary import PERCENTILES
from stimuli.errors import StimuliError


def bin_shuffle(n_batches: int, n_bins: int, seed: int) -> np.ndarray:
    """(n_batches, n_bins) ranks: column j holds bin j's ranks, shuffled; row b is batch b."""
    rng = np.random.RandomState(seed)
    columns = []
    for j in range(n_bins):
        ranks = np.arange(j * n_batches, (j + 1) * n_batches)
        rng.shuffle(ranks)
        columns.append(ranks)
    return np.stack(columns, 1)


def available_difficulties(n_valid: int, k: int, n_batches: int,
                           requested: list[str] | None = None) -> list[str]:
    """Percentile difficulties whose query window stays clear of the k reference ranks.

    With `requested` given, an unavailable one raises StimuliError; otherwise (auto) it is
    dropped.
    """
    from stimuli.mining import percentile_rank

    names = list(PERCENTILES) if requested is None else list(requested)
    ok = []
    for name in names:
        if name == "easy":
            continue
        if name not in PERCENTILES:
            raise StimuliError(f"unknown difficulty {name!r}; use easy, p99, p95 or p85")
        rank = percentile_rank(PERCENTILES[name], n_valid)
        lo = rank - n_batches // 2
        clear = lo >= k and rank + n_batches < n_valid - k
        if clear:
            ok.append(name)
        elif requested is not None:
            raise StimuliError(f"difficulty {name}: {n_valid} images are too few; its queries "
                               f"(ranks {lo}..{lo + n_batches - 1}) overlap the {k} reference "
                               f"ranks")
    return ok


def plan_unit(unit_id: str, top: tuple[np.ndarray, np.ndarray],
              bottom: tuple[np.ndarray, np.ndarray], n_batches: int, n_bins: int, seed: int,
              percentile_picks: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] | None = None
              ) -> list[dict]:
    """Image rows (natural) of one unit: references and queries for each of `n_batches` batches.

    `top`/`bottom` are (indices, values) sorted most extreme first, of length >= n_bins*n_batches;
    `percentile_picks` maps difficulty -> side -> (indices, values) of length n_batches.
    """
    need = n_bins * n_batches
    if len(top[0]) < need or len(bottom[0]) < need:
        raise StimuliError(f"unit {unit_id}: {len(top[0])} mined images per side, need "
                           f"{need} ({n_bins} bins x {n_batches} batches)")
    if set(top[0][:need].tolist()) & set(bottom[0][:need].tolist()):
        raise StimuliError(f"unit {unit_id}: too few images; the {need} most and least activating "
                           f"images overlap (need at least {2 * need} images)")
    rows: list[dict] = []
    for side, (indices, values) in (("max", top), ("min", bottom)):
        plan = bin_shuffle(n_batches, n_bins, seed)
        for b in range(n_batches):
            for rank, r in enumerate(plan[b, :-1]):
                rows.append({"unit_id": unit_id, "role": f"reference_{side}", "batch": b,
                             "rank": rank, "image_index": int(indices[r]),
                             "activation": float(values[r]), "difficulty": ""})
            r = plan[b, -1]
            rows.append({"unit_id": unit_id, "role": f"query_{side}", "batch": b, "rank": 0,
                         "image_index": int(indices[r]), "activation": float(values[r]),
                         "difficulty": "easy"})
    for difficulty, sides in (percentile_picks or {}).items():
        for side in ("max", "min"):
            indices, values = sides[side]
            order = np.random.RandomState(seed).permutation(len(indices))
            for b in range(n_batches):
                r = order[b]
                rows.append({"unit_id": unit_id, "role": f"query_{side}", "batch": b, "rank": 0,
                             "image_index": int(indices[r]), "activation": float(values[r]),
                             "difficulty": difficulty})
    return rows
