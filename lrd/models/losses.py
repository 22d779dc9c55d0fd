"""The losses the models share: BPR for recommendation, DistMult for the knowledge graph."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def bpr_loss(scores: torch.Tensor) -> torch.Tensor:
    """scores: B x 2, the positive in column 0 and one sampled negative: mean −log σ(pos − neg)."""
    return F.softplus(-(scores[:, :1] - scores[:, 1:])).mean()


def distmult_kg_loss(kg: dict[str, torch.Tensor], entity_emb: nn.Embedding, rel_emb: torch.Tensor) -> torch.Tensor:
    """−log σ(f(h, r, t, v) − f(h', r, t', v)), f = Σ e_h ⊙ (rel_r + e_v) ⊙ e_t."""
    relv = rel_emb[kg["r"]] + entity_emb(kg["v"])
    pos = (entity_emb(kg["h"]) * relv * entity_emb(kg["t"])).sum(-1)
    neg = (entity_emb(kg["neg_h"]) * relv * entity_emb(kg["neg_t"])).sum(-1)
    return F.softplus(-(pos - neg).float()).mean()
