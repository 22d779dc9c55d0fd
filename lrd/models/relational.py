"""RCF and KDA, with or without Latent Relation Discovery (method doc §5).

score(u, c) = <U_u + pool_r(SA^L(ctx_{c,r})), E_c> + b_c, where ctx_{c,r} attends over the
history with key (Rel_r + E_{value(c,r)}) ⊙ E_c; KDA multiplies in a learned decay of the
time gap per relation type. Training: BPR + γ · DistMult KG loss (+ λ · LRD loss).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lrd.config.train import ModelConfig
from lrd.models.base import Catalog, Recommender, relation_losses
from lrd.models.batch import Batch
from lrd.models.blocks import ChannelSelfAttention, TemporalKernel, init_normal, relational_attention
from lrd.models.losses import bpr_loss
from lrd.models.lrd import LatentRelationDiscovery


class RelationalRecommender(Recommender):
    temporal = False

    def __init__(self, cfg: ModelConfig, catalog: Catalog):
        super().__init__()
        graph, d = catalog.graph, cfg.dim
        self.n_items, self.n_relations = graph.n_items, graph.n_relations
        self.users = nn.Embedding(catalog.n_users + 1, d)
        self.entities = nn.Embedding(graph.n_entities, d)
        self.relations = nn.Embedding(graph.n_relations, d)
        self.item_bias = nn.Embedding(graph.n_items + 1, 1)
        self.channels = ChannelSelfAttention(d, cfg.heads, cfg.layers)
        self.decay = TemporalKernel(graph.n_relations, cfg.n_dft, catalog.gap_spectra) if self.temporal else None
        self.lrd = LatentRelationDiscovery(catalog.text, d, graph.n_relations, cfg.alpha, cfg.drop_virtual, cfg.objective,
                                           cfg.reconstruction) if cfg.lrd else None
        init_normal(self)  # every table and linear layer, the LRD module's included, as the reference
        self.register_buffer("value_of", torch.from_numpy(np.ascontiguousarray(graph.value_of)), persistent=False)
        self.kg_weight = graph.kg_weight(cfg.kg_weight, catalog.n_interactions)
        self.lrd_weight = cfg.lrd_weight

    def scores(self, batch: Batch) -> torch.Tensor:
        """B x C scores of the candidates."""
        mask = batch.mask
        hist = self.entities(batch.history)  # B x H x d
        cand = self.entities(batch.candidates)  # B x C x d
        values = self.entities(self.value_of[batch.candidates])  # B x C x R x d
        keys = (self.relations.weight + values) * cand[:, :, None, :]
        decay = self.decay(batch.gaps, mask) if self.decay is not None else None
        ctx = relational_attention(hist, mask, keys, decay)  # B x C x R x d
        b, c, r, d = ctx.shape
        pooled = self.channels(ctx.reshape(b * c, r, d)).mean(1).view(b, c, d)
        user = self.users(batch.users)[:, None, :]
        return ((user + pooled) * cand).sum(-1).float() + self.item_bias(batch.candidates).squeeze(-1).float()

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        rec = bpr_loss(self.scores(batch), batch.global_rows)
        extra = relation_losses(batch, self.entities, self.relations.weight, bool(self.kg_weight), self.lrd if self.lrd_weight else None)
        loss = rec
        if "kg" in extra:
            loss = loss + self.kg_weight * extra["kg"]
        if "lrd" in extra:
            loss = loss + self.lrd_weight * extra["lrd"]
        return {"rec": rec, "loss": loss, **extra}


class RCF(RelationalRecommender):
    """The reference code's RCF: KDA without the temporal kernel."""


class KDA(RelationalRecommender):
    temporal = True
