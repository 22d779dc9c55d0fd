"""The tensors one step needs; built by lrd.train.batches, consumed by every model."""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass(frozen=True)
class Share:
    """What a batch that is one rank's share of a global batch (DDP) needs to know of the whole:
    its counts, which the losses divide by instead of the share's own, so that the ranks' losses,
    and so their gradients, add up to exactly those of the global batch.

    A rank left without rows (a batch with fewer rows than ranks) must still take its part in
    the step: it runs one row with infinite counts, so that its terms and gradients are 0."""

    rows: float  # an int, or inf
    valid: float  # history positions that are not padding (the LRD terms average over those)


@dataclasses.dataclass
class Batch:
    users: torch.Tensor  # B
    history: torch.Tensor  # B x H item ids, oldest first, left-padded with 0
    gaps: torch.Tensor  # B x H normalised time gaps to the target (KDA)
    candidates: torch.Tensor  # B x C, column 0 is the true next item
    lrd_negatives: torch.Tensor | None = None  # B x H items the user never touched (LRD)
    kg: dict[str, torch.Tensor] | None = None  # sampled triples (h, r, t, v, neg_h, neg_t)
    share: Share | None = None  # None: the batch is the whole global batch (one process)

    @property
    def mask(self) -> torch.Tensor:
        return self.history > 0

    @property
    def global_rows(self) -> float | None:
        """The global batch's size when this batch is one rank's share of it; None otherwise."""
        return self.share.rows if self.share else None

    def to(self, device) -> "Batch":
        move = lambda x: x.to(device, non_blocking=True) if isinstance(x, torch.Tensor) else x  # noqa: E731
        return Batch(
            move(self.users), move(self.history), move(self.gaps), move(self.candidates), move(self.lrd_negatives),
            {k: move(v) for k, v in self.kg.items()} if self.kg else None, self.share,
        )
