"""Ranks of the held-out items: among their stored candidates, or among all items."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from lrd.evaluate import ranks_from_scores
from lrd.models.base import Recommender
from lrd.train.batches import TrainingData
from lrd.train.device import autocast
from lrd.train.distributed import Ranks


# Channel tokens (users x candidates x relation channels) per evaluation call: enough to keep
# the per-call overhead small, few enough that a call's activations stay near a core's L2 cache.
# Measured on Office, compiled, 1 thread (docs/performance.md): KDA+LRD (13 channels) ranks dev
# in 31.1 / 29.5 / 25.1 / 32.6 s at 1 / 2 / 4 / 8 users per call; KDA (5) in 8.7 s at 1, 7.1 s at 4.
CALL_TOKENS = 5200


def users_per_call(candidates: int, channels: int) -> int:
    return max(1, CALL_TOKENS // max(candidates * channels, 1))


@dataclasses.dataclass(frozen=True)
class Scoring:
    users_per_call: int  # users scored at once (x candidates): bounds memory
    amp: torch.dtype | None = None
    device: torch.device = torch.device("cpu")
    ranks: Ranks = Ranks()  # several processes: each scores its batches, the ranks are gathered


@torch.inference_mode()
def candidate_ranks(model: Recommender, data: TrainingData, split: str, s: Scoring) -> np.ndarray:
    """1-based rank of each held-out item among its stored candidates (ties count against it)."""
    model.eval()
    ranks = np.zeros(len(data.eval[split].users), dtype=np.int32)
    with autocast(s.device, s.amp):
        for batch, sl in data.eval_batches(split, s.users_per_call, s.ranks.part):
            ranks[sl] = ranks_from_scores(model.scores(batch.to(s.device))).cpu().numpy()
    return s.ranks.gather(ranks)


@torch.inference_mode()
def full_ranks(model: Recommender, data: TrainingData, split: str, s: Scoring) -> np.ndarray:
    """Rank of each held-out item among all items, leaving out those the user had before it.

    The second protocol beside the 100 stored candidates; ties count against the held-out item.
    """
    model.eval()
    seqs, n_items = data.seqs, data.seqs.n_items
    ev = data.eval[split]
    ranks = np.zeros(len(ev.users), dtype=np.int64)
    with autocast(s.device, s.amp):
        for batch, sl in data.eval_batches(split, s.users_per_call, s.ranks.part):
            batch = batch.to(s.device)
            positions, targets = ev.positions[sl], ev.candidates[sl, 0]
            b = len(positions)
            earlier, _ = seqs.history(positions, int((positions - seqs.start[positions]).max()))
            seen = np.zeros((b, n_items + 1), dtype=bool)  # earlier items of each user, the target, and padding
            seen[np.arange(b)[:, None], earlier] = True
            seen[np.arange(b), targets] = True
            seen[:, 0] = True
            target_score = model.scores(dataclasses.replace(batch, candidates=batch.candidates[:, :1]))
            beaten = (model.scores_all(batch) >= target_score) & ~torch.from_numpy(seen).to(s.device)
            ranks[sl] = (1 + beaten.sum(1)).cpu().numpy()
    return s.ranks.gather(ranks)
