"""SASRec (Kang & McAuley, 2018): causal self-attention over the item sequence; the last
position's output scores the candidates by inner product. The non-relational baseline."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lrd.models.batch import Batch


class SASRec(nn.Module):
    def __init__(self, n_items: int, history_max: int, d: int = 64, layers: int = 2, heads: int = 2, dropout: float = 0.2):
        super().__init__()
        self.items = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.positions = nn.Embedding(history_max, d)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=d, dropout=dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        causal = torch.triu(torch.full((history_max, history_max), float("-inf")), diagonal=1)
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
        scores = self.scores(batch)
        rec = F.softplus(-(scores[:, :1] - scores[:, 1:])).mean()
        return {"rec": rec, "loss": rec}
