"""The losses the models share: BPR for recommendation, DistMult for the knowledge graph."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def batch_mean(x: torch.Tensor, total: int | None) -> torch.Tensor:
    """The mean of x; `total`, when x is one rank's share of a global batch (DDP), the element
    count of the global batch's x: the ranks' terms then add up to the global batch's mean."""
    return x.mean() if total is None else x.sum() / total


def bpr_loss(scores: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """scores: B x 2, the positive in column 0 and one sampled negative: mean −log σ(pos − neg).

    `rows`: the global batch's size when this is one rank's share of it (see `batch_mean`)."""
    return batch_mean(F.softplus(-(scores[:, :1] - scores[:, 1:])), rows)


def distmult_kg_loss(kg: dict[str, torch.Tensor], entity_emb: nn.Embedding, rel_emb: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """−log σ(f(h, r, t, v) − f(h', r, t', v)), f = Σ e_h ⊙ (rel_r + e_v) ⊙ e_t; `rows` as in `bpr_loss`."""
    relv = rel_emb[kg["r"]] + entity_emb(kg["v"])
    pos = (entity_emb(kg["h"]) * relv * entity_emb(kg["t"])).sum(-1)
    neg = (entity_emb(kg["neg_h"]) * relv * entity_emb(kg["neg_t"])).sum(-1)
    return batch_mean(F.softplus(-(pos - neg).float()), rows)
