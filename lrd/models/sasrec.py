"""SASRec (Kang & McAuley, 2018): causal self-attention over the item sequence; the last
position's output scores the candidates by inner product. The non-relational baseline."""

from __future__ import annotations

import torch
from torch import nn

from lrd.config.train import ModelConfig
from lrd.models.base import Catalog, Recommender
from lrd.models.batch import Batch
from lrd.models.losses import bpr_loss


class SASRec(Recommender):
    def __init__(self, cfg: ModelConfig, catalog: Catalog):
        super().__init__()
        d, self.n_items = cfg.dim, catalog.n_items
        self.items = nn.Embedding(catalog.n_items + 1, d, padding_idx=0)
        self.positions = nn.Embedding(cfg.history_max, d)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(d, cfg.heads, dim_feedforward=d, dropout=cfg.dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        causal = torch.triu(torch.full((cfg.history_max, cfg.history_max), float("-inf")), diagonal=1)
        self.register_buffer("causal", causal, persistent=False)
        nn.init.normal_(self.items.weight, 0, 0.02)
        nn.init.normal_(self.positions.weight, 0, 0.02)

    def user_vector(self, batch: Batch) -> torch.Tensor:
        h = batch.history.shape[1]
        x = self.items(batch.history) * self.items.embedding_dim**0.5 + self.positions.weight[-h:]
        x = self.dropout(x) * batch.mask[..., None]
        # Histories are left-padded, so the last position is always the newest real item and
        # the causal mask alone keeps it from seeing the future; padded positions are zero.
        x = self.encoder(x, mask=self.causal[-h:, -h:], is_causal=True)
        return self.norm(x[:, -1])

    def scores(self, batch: Batch) -> torch.Tensor:
        u = self.user_vector(batch)
        return (u[:, None, :] * self.items(batch.candidates)).sum(-1).float()

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        rec = bpr_loss(self.scores(batch), batch.global_rows)
        return {"rec": rec, "loss": rec}
