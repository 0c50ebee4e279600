"""Exact streaming top-k / bottom-k per unit, mergeable across shards (torch).

Order is (activation descending, image index ascending) for the top and (activation ascending,
image index descending) for the bottom: the first and the last k of one full stable sort, ties
included, so the two never share an image while 2k <= n (a unit that many images leave at
exactly 0, a colour-opponent unit on greyscale photos, ties them all). Memory: units x k values
and indices per side.
"""
from __future__ import annotations

import torch


class StreamingTopK:
    """Keeps, per unit (row), the k largest values and their global image indices."""

    def __init__(self, n_units: int, k: int, device: torch.device | str = "cpu",
                 largest: bool = True):
        self.k = k
        self.largest = largest
        self.values = torch.empty(n_units, 0, device=device)
        self.indices = torch.empty(n_units, 0, dtype=torch.long, device=device)

    def _keyed(self, values: torch.Tensor) -> torch.Tensor:
        return values if self.largest else -values

    def update(self, values: torch.Tensor, indices: torch.Tensor) -> None:
        """Merge a batch: values (units, B) with image indices (B,) all larger than seen ones."""
        values = values.to(self.values.device, torch.float32)
        indices = indices.to(self.indices.device).expand(values.shape[0], -1)
        if not self.largest:  # ties by index descending: the newest (largest) first
            values, indices = values.flip(1), indices.flip(1)
        self._merge(values, indices, by_index=False)

    def _merge(self, values: torch.Tensor, indices: torch.Tensor, by_index: bool) -> None:
        # the bottom puts the new (larger) indices first, so stable ties run index-descending
        parts = [(self.values, self.indices), (values, indices)]
        if not self.largest:
            parts.reverse()
        all_values = torch.cat([parts[0][0], parts[1][0]], 1)
        all_indices = torch.cat([parts[0][1], parts[1][1]], 1)
        keyed = self._keyed(all_values)
        if by_index:
            # shard merges: order by index first so the stable sort breaks ties by index
            # (a streaming update needs no such pass: kept ties are in index order and every
            # new index lies beyond every kept one)
            order = torch.argsort(all_indices, dim=1, stable=True, descending=not self.largest)
            all_values, all_indices = all_values.gather(1, order), all_indices.gather(1, order)
            keyed = self._keyed(all_values)
        order = torch.sort(keyed, dim=1, descending=True, stable=True).indices[:, : self.k]
        self.values = all_values.gather(1, order)
        self.indices = all_indices.gather(1, order)

    def merge(self, other: StreamingTopK) -> None:
        """Merge another shard's state exactly (image indices may interleave)."""
        self._merge(other.values.to(self.values.device), other.indices.to(self.indices.device),
                    by_index=True)

    def state_dict(self) -> dict:
        return {"k": self.k, "largest": self.largest, "values": self.values.cpu(),
                "indices": self.indices.cpu()}

    @classmethod
    def from_state(cls, state: dict, device: torch.device | str = "cpu") -> StreamingTopK:
        top = cls(state["values"].shape[0], state["k"], device, state["largest"])
        top.values = state["values"].to(device)
        top.indices = state["indices"].to(device)
        return top
