"""HR@K and NDCG@K over stored candidates (method doc §6).

A negative that scores exactly as high as the positive counts as ranked above it: ties never
help, so a model that scores everything alike ranks last, not first (the argsort pitfall).
"""

from __future__ import annotations

import numpy as np
import torch


def ranks_from_scores(scores: torch.Tensor) -> torch.Tensor:
    """scores: B x C with the positive in column 0 -> 1-based rank of the positive (B)."""
    pos = scores[:, :1]
    return 1 + (scores[:, 1:] >= pos).sum(1)


def ranking_metrics(ranks: np.ndarray, ks=(5, 10, 20)) -> dict[str, float]:
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {}
    for k in ks:
        hit = ranks <= k
        out[f"HR@{k}"] = float(hit.mean()) if len(ranks) else 0.0
        out[f"NDCG@{k}"] = float((hit / np.log2(ranks + 1)).mean()) if len(ranks) else 0.0
    return out
