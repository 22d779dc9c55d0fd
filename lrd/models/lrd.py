"""Latent Relation Discovery (method doc §4; reference-implementation §3).

A discrete-state VAE over item pairs (h, t):
- relation extractor q(r | h, t) = softmax(W_q [W_p x_h ; W_p x_t]) from frozen LLM vectors x;
- item reconstructor: DistMult-style s_r(h, t) = <e_h ⊙ w_r, e_t> + <e_h, w_r> + <e_t, w_r>,
  w_r = q(r | h, t) · rel_r, with item embeddings e and relation embeddings rel that belong to
  whoever uses the module (its own in `discover`, the recommender's in joint training);
- loss = −mean_{b,r} log mean_{h valid} σ(s_r(h, t) − s_r(h⁻, t)) + α · mean(−q log q).

That reconstruction term ("reference", as the paper's code) averages the relation channels
uniformly, q only scaling each channel. Unless the item embeddings are held in check by a
recommender, it is minimised by making every channel score high with q left near uniform, so
standalone discovery uses the "expectation" form instead: the reconstruction expected under q,
−mean_{b,h} Σ_r q_r log σ(s_r(h, t) − s_r(h⁻, t)) with s_0 = 0 for "no relation", which sends
each pair's mass to the types that explain it (a discrete-state VAE's E_q[log p]).

The module owns only the projection W_p, the extractor W_q and the frozen text vectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lrd.models.batch import Share
from lrd.models.losses import batch_mean


class LatentRelationDiscovery(nn.Module):
    OBJECTIVES = {"reference": "_reference_terms", "expectation": "_expectation_terms"}  # the reconstruction terms

    def __init__(
        self,
        text: torch.Tensor,
        d: int,
        n_relations: int,
        alpha: float = 0.1,
        drop_virtual: bool = True,
        objective: str = "reference",
        reconstruction: bool = True,
    ):
        """text: (n_items + 1) x P LLM vectors, row 0 = padding (zeros); frozen."""
        super().__init__()
        if objective not in self.OBJECTIVES:
            raise ValueError(f"LRD objective must be one of {', '.join(self.OBJECTIVES)}, got {objective!r}")
        self.objective = objective
        self.register_buffer("text", text.float(), persistent=False)
        self.project = nn.Linear(text.shape[1], d)
        self.extract = nn.Linear(2 * d, n_relations)
        self.alpha = alpha
        # Mass on the virtual type 0 means "no relation": it is left out of the decoder, so
        # such pairs reconstruct nothing (the reference's leave_one_latent).
        self.drop_virtual = drop_virtual
        # False (an ablation): the entropy term alone trains the extractor; the reconstruction
        # is still computed and logged, but takes no part in the loss.
        self.reconstruction = reconstruction

    def logits(self, heads: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
        """Any shape of item ids -> that shape x R."""
        if heads.numel() > self.text.shape[0]:  # cheaper to project every item once
            a, b, c = self.pair_tables()
            return a[heads] + b[tails] + c
        e_h = self.project(self.text[heads])
        e_t = self.project(self.text[tails])
        return self.extract(torch.cat([e_h, e_t], dim=-1))

    def relation_probs(self, heads: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(heads, tails).float(), dim=-1)

    def pair_tables(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-item halves of the extractor: logits(h, t) = A[h] + B[t] + c.

        Scoring millions of pairs then costs one addition per relation type and pair.
        """
        proj = self.project(self.text)  # (n_items + 1) x d
        d = proj.shape[1]
        w = self.extract.weight
        return proj @ w[:, :d].t(), proj @ w[:, d:].t(), self.extract.bias

    def loss(
        self,
        history: torch.Tensor,
        negatives: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor,
        item_emb: nn.Embedding,
        rel_emb: torch.Tensor,
        share: Share | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """history, negatives: B x H item ids (h and h⁻); target: B; mask: B x H; rel_emb: R x d;
        share: the global batch's counts when this is one rank's share of it (DDP)."""
        q = self.relation_probs(history, target[:, None].expand_as(history))  # B x H x R
        e_t = item_emb(target)[:, None, :]  # B x 1 x d
        # <e_t, w_r> is the same for h and h⁻ and cancels in the difference.
        delta = item_emb(history) - item_emb(negatives)  # B x H x d
        rel = rel_emb[1:] if self.drop_virtual else rel_emb
        score = ((delta * e_t + delta) @ rel.t()).float()  # B x H x R': s_r(h, t) − s_r(h⁻, t) per unit q
        valid = mask.float()
        reconstruction, entropy, regulariser, diff = getattr(self, self.OBJECTIVES[self.objective])(q, score, valid, share)
        with torch.no_grad():
            # A pair "reconstructs" when the q-weighted score prefers h over h⁻.
            correct = ((diff.sum(-1) > 0).float() * valid).sum() / _n_valid(valid, share)
        loss = (reconstruction if self.reconstruction else 0.0) + self.alpha * regulariser
        return loss, {"lrd_reconstruction": reconstruction.detach(), "lrd_entropy": entropy.detach(), "lrd_accuracy": correct}

    def _reference_terms(self, q, score, valid, share):
        """The paper code's: −mean_{b,r} log mean_h σ(q_r · Δs_r), plus the entropy averaged over r."""
        q_dec = q[..., 1:] if self.drop_virtual else q
        diff = q_dec * score
        n_valid = valid.sum(1).clamp(min=1)
        mean_sig = (torch.sigmoid(diff) * valid[..., None]).sum(1) / n_valid[:, None]  # B x R'
        reconstruction = -batch_mean(torch.log(mean_sig.clamp(min=1e-12)), None if share is None else share.rows * mean_sig.shape[1])
        entropy = (_plogp(q).mean(-1) * valid).sum() / _n_valid(valid, share)  # mean over r, as the reference
        return reconstruction, entropy, entropy, diff

    def _expectation_terms(self, q, score, valid, share):
        """E_q[log σ(Δs_r)] with s_0 = 0 for "no relation", plus mean H(q) − H(mean q)."""
        if share is not None:  # H(mean q) is not a sum over rows: the ranks' parts would not add up
            raise ValueError("the expectation objective needs the whole batch; it cannot be split over DDP ranks")
        if self.drop_virtual:  # "no relation" reconstructs nothing: σ(0)
            score = torch.cat([torch.zeros_like(score[..., :1]), score], dim=-1)
        diff = q * score
        n_valid = valid.sum(1).clamp(min=1)
        expected = (q * F.logsigmoid(score)).sum(-1)  # B x H
        reconstruction = -((expected * valid).sum(1) / n_valid).mean()
        # Confident per pair, yet spread over types across pairs: the mutual information
        # between pair and type, H(mean q) − mean H(q). Minimising the per-pair entropy
        # alone lets every pair collapse onto one type that the embeddings then fit.
        entropy = (_plogp(q).sum(-1) * valid).sum() / valid.sum().clamp(min=1)
        usage = (q * valid[..., None]).sum((0, 1)) / valid.sum().clamp(min=1)
        spread = -(usage * torch.log(usage.clamp(min=1e-12))).sum()
        return reconstruction, entropy, entropy - spread, diff

    @staticmethod  # reads only `tables`: labelling workers need them, not the module
    @torch.no_grad()
    def label(heads: torch.Tensor, tails: torch.Tensor, tables, types: slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For each pair: the most probable relation among `types` (index within them), its q, and the entropy of q.

        `tables` are `pair_tables()` computed once for many calls.
        """
        a, b, c = tables
        q = torch.softmax(a[heads] + b[tails] + c, dim=-1)
        prob, idx = q[:, types].max(dim=1)
        entropy = -(q * torch.log(q.clamp(min=1e-12))).sum(1)
        return idx, prob, entropy


def _n_valid(valid: torch.Tensor, share: Share | None):
    """What the per-position terms divide by: the valid history positions of the (global) batch."""
    return valid.sum().clamp(min=1) if share is None else max(share.valid, 1)


def _plogp(q: torch.Tensor) -> torch.Tensor:
    """−q log q per type (0 where q underflows to 0)."""
    return -(q * torch.log(q.clamp(min=1e-12)))
