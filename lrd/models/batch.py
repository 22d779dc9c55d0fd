"""The tensors one step needs; built by lrd.train.batches, consumed by every model."""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass
class Batch:
    users: torch.Tensor  # B
    history: torch.Tensor  # B x H item ids, oldest first, left-padded with 0
    gaps: torch.Tensor  # B x H normalised time gaps to the target (KDA)
    candidates: torch.Tensor  # B x C, column 0 is the true next item
    lrd_negatives: torch.Tensor | None = None  # B x H items the user never touched (LRD)
    kg: dict[str, torch.Tensor] | None = None  # sampled triples (h, r, t, v, neg_h, neg_t)

    @property
    def mask(self) -> torch.Tensor:
        return self.history > 0

    def to(self, device) -> "Batch":
        move = lambda x: x.to(device, non_blocking=True) if isinstance(x, torch.Tensor) else x  # noqa: E731
        return Batch(
            move(self.users), move(self.history), move(self.gaps), move(self.candidates), move(self.lrd_negatives),
            {k: move(v) for k, v in self.kg.items()} if self.kg else None,
        )
