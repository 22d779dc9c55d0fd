"""The interface every recommender implements, and what a model is built from.

A Recommender scores given candidates (B x C), scores every item (full ranking), and returns
its training losses for a batch; the trainer and the evaluator never special-case a model.
"""

from __future__ import annotations

import abc
import dataclasses

import numpy as np
import torch
from torch import nn

from lrd.graph import RelationGraph
from lrd.models.batch import Batch
from lrd.models.losses import distmult_kg_loss


@dataclasses.dataclass
class Catalog:
    """What the data says about a model's shapes: ids run 1..n, 0 is padding."""

    n_users: int
    n_items: int
    n_interactions: int
    graph: RelationGraph | None = None  # relation types and triples (relational models)
    text: torch.Tensor | None = None  # (n_items + 1) x P frozen LLM vectors (+LRD models)
    gap_spectra: np.ndarray | None = None  # R x F complex, KDA's kernel initialisation (lrd.temporal)


class Recommender(nn.Module, abc.ABC):
    n_items: int

    @abc.abstractmethod
    def scores(self, batch: Batch) -> torch.Tensor:
        """B x C scores of batch.candidates (higher = more likely next)."""

    @abc.abstractmethod
    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Training losses of a batch (candidates B x 2: positive, sampled negative); "loss" is the one to minimise."""

    def scores_all(self, batch: Batch, item_chunk: int = 2048) -> torch.Tensor:
        """B x (n_items + 1) scores of every item (column 0, padding, is −inf), in chunks of items."""
        b = batch.users.shape[0]
        parts = [torch.full((b, 1), float("-inf"), device=batch.users.device)]
        for lo in range(1, self.n_items + 1, item_chunk):
            items = torch.arange(lo, min(lo + item_chunk, self.n_items + 1), device=batch.users.device)
            parts.append(self.scores(dataclasses.replace(batch, candidates=items.expand(b, -1))).float())
        return torch.cat(parts, dim=1)


def relation_losses(batch: Batch, entities: nn.Embedding, relations: torch.Tensor, kg: bool, lrd: nn.Module | None,
                    order: tuple[str, ...] = ("kg", "lrd")) -> dict[str, torch.Tensor]:
    """The DistMult loss on the batch's sampled triples ("kg") and the LRD loss with its parts ("lrd", ...).

    Shared by the recommenders and standalone discovery; each weighs and adds the terms itself.
    `order` is the order the terms are computed in: it decides the order in which their
    gradients add up in the shared tables, so changing it changes a seed's run in the last bits.
    """
    out = {}
    for term in order:
        if term == "kg" and kg and batch.kg:
            out["kg"] = distmult_kg_loss(batch.kg, entities, relations, batch.global_rows)
        elif term == "lrd" and lrd is not None and batch.lrd_negatives is not None:
            lrd_loss, parts = lrd.loss(batch.history, batch.lrd_negatives, batch.candidates[:, 0], batch.mask, entities, relations,
                                       batch.share)
            out.update(lrd=lrd_loss, **parts)
    return out
