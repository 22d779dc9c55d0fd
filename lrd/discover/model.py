"""Standalone latent relation discovery: the LRD module with its own item and relation
embeddings, plus a DistMult loss on the predefined triples so that their relation embeddings
mean what the predefined types mean and the K latent types learn the rest."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from lrd.config.train import DiscoverConfig
from lrd.graph import RelationGraph
from lrd.keys import KeySet
from lrd.models.base import relation_losses
from lrd.models.batch import Batch
from lrd.models.blocks import init_normal
from lrd.models.lrd import LatentRelationDiscovery
from lrd.train.batches import TrainingData
from lrd.train.loop import Loop, LoopState, fit, optimizer_for
from lrd.train.stopping import Patience


class DiscoveryModel(nn.Module):
    def __init__(self, graph: RelationGraph, d: int, lrd: LatentRelationDiscovery, kg_weight: float, pairs: KeySet | None = None):
        """pairs: keys head * (n_items + 1) + tail of the (history item, target) pairs that take part
        in the LRD loss (discover.train_min_pmi); None: every pair."""
        super().__init__()
        self.entities = nn.Embedding(graph.n_entities, d)
        self.relations = nn.Embedding(graph.n_relations, d)
        init_normal(self)
        self.lrd, self.kg_weight = lrd, kg_weight
        self.pairs, self.base = pairs, graph.n_items + 1

    def focus(self, batch: Batch) -> Batch:
        """The batch with history positions outside `pairs` turned into padding, so that the LRD
        terms (which average over real positions) leave them out."""
        if self.pairs is None:
            return batch
        keys = batch.history.numpy().astype(np.int64) * self.base + batch.candidates[:, :1].numpy()
        history = torch.where(torch.from_numpy(self.pairs.contains(keys)), batch.history, torch.zeros_like(batch.history))
        return dataclasses.replace(batch, history=history)

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        batch = self.focus(batch)
        terms = relation_losses(batch, self.entities, self.relations.weight, bool(self.kg_weight), self.lrd, order=("lrd", "kg"))
        loss = terms["lrd"] + self.kg_weight * terms["kg"] if "kg" in terms else terms["lrd"]
        return {"loss": loss, **terms}

    @torch.no_grad()
    def holdout_metrics(self, batches: list[Batch]) -> dict[str, float]:
        """The LRD loss and its parts on held-out pairs, weighted by batch size."""
        self.eval()
        sums, n = {}, 0
        for b in map(self.focus, batches):
            loss, parts = self.lrd.loss(b.history, b.lrd_negatives, b.candidates[:, 0], b.mask, self.entities, self.relations.weight)
            w = len(b.users)
            for k, v in {"lrd": loss, **parts}.items():
                sums[k] = sums.get(k, 0.0) + float(v) * w
            n += w
        return {k: v / n for k, v in sums.items()}


@dataclasses.dataclass
class DiscoveryResult:
    curve: list[dict]
    best_epoch: int
    holdout: dict[str, float]


def train_discovery(model: DiscoveryModel, data: TrainingData, cfg: DiscoverConfig) -> DiscoveryResult:
    """Fit on (history item, next item) pairs; stop on the held-out pairs' LRD loss."""
    rng = np.random.default_rng(cfg.seed)
    positions = data.train_positions[rng.permutation(data.n_train)]
    n_hold = max(1, int(len(positions) * cfg.holdout))
    hold, fit_pos = np.sort(positions[:n_hold]), positions[n_hold:]
    # The held-out pairs and their negatives are drawn once, so epochs compare like with like.
    hold_batches = list(data.epoch(np.random.default_rng(cfg.seed + 1), 4096, False, True, positions=hold))
    loop = Loop(
        batches=lambda r: data.epoch(r, cfg.batch_size, True, True, positions=fit_pos),
        n_batches=-(-len(fit_pos) // cfg.batch_size),
        evaluate=lambda: {f"holdout_{k}": v for k, v in model.holdout_metrics(hold_batches).items()},
        monitor="holdout_lrd",
        max_epochs=cfg.max_epochs,
        label="discover",
        loss_prefix="train_",
    )
    stopper = Patience(patience=cfg.patience, min_delta=cfg.min_delta, maximize=False)  # the loss can be negative: relative to |best|
    state = fit(model, optimizer_for(model, cfg.lr, cfg.l2), loop, LoopState(rng=rng, stopper=stopper))
    return DiscoveryResult(state.curve, stopper.best_epoch, model.holdout_metrics(hold_batches))
