"""RCF and KDA, with or without Latent Relation Discovery (method doc §5).

score(u, c) = <U_u + pool_r(SA^L(ctx_{c,r})), E_c> + b_c, where ctx_{c,r} attends over the
history with key (Rel_r + E_{value(c,r)}) ⊙ E_c; KDA multiplies in a learned decay of the
time gap per relation type. Training: BPR + γ · DistMult KG loss (+ λ · LRD loss).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lrd.graph import RelationGraph
from lrd.models.batch import Batch
from lrd.models.blocks import ChannelSelfAttention, TemporalKernel, init_normal, relational_attention
from lrd.models.lrd import LatentRelationDiscovery, distmult_kg_loss


class RelationalRecommender(nn.Module):
    def __init__(
        self,
        graph: RelationGraph,
        n_users: int,
        d: int = 64,
        layers: int = 5,
        heads: int = 4,
        temporal: bool = False,
        n_dft: int = 64,
        kg_weight: float = 0.0,
        lrd: LatentRelationDiscovery | None = None,
        lrd_weight: float = 10.0,
    ):
        super().__init__()
        self.n_items, self.n_relations = graph.n_items, graph.n_relations
        self.users = nn.Embedding(n_users + 1, d)
        self.entities = nn.Embedding(graph.n_entities, d)
        self.relations = nn.Embedding(graph.n_relations, d)
        self.item_bias = nn.Embedding(graph.n_items + 1, 1)
        self.channels = ChannelSelfAttention(d, heads, layers)
        init_normal(self)
        self.decay = TemporalKernel(graph.n_relations, n_dft) if temporal else None
        self.register_buffer("value_of", torch.from_numpy(np.ascontiguousarray(graph.value_of)), persistent=False)
        self.kg_weight = kg_weight
        self.lrd = lrd  # initialised by its own code (or from the discover checkpoint)
        self.lrd_weight = lrd_weight

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
        scores = self.scores(batch)
        rec = F.softplus(-(scores[:, :1] - scores[:, 1:])).mean()  # BPR, one negative per row
        out = {"rec": rec, "loss": rec}
        if self.kg_weight and batch.kg:
            out["kg"] = distmult_kg_loss(batch.kg, self.entities, self.relations.weight)
            out["loss"] = out["loss"] + self.kg_weight * out["kg"]
        if self.lrd is not None and self.lrd_weight and batch.lrd_negatives is not None:
            lrd_loss, parts = self.lrd.loss(
                batch.history, batch.lrd_negatives, batch.candidates[:, 0], batch.mask, self.entities, self.relations.weight
            )
            out.update(lrd=lrd_loss, **parts)
            out["loss"] = out["loss"] + self.lrd_weight * lrd_loss
        return out
