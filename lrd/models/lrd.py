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


class LatentRelationDiscovery(nn.Module):
    def __init__(
        self,
        text: torch.Tensor,
        d: int,
        n_relations: int,
        alpha: float = 0.1,
        drop_virtual: bool = True,
        objective: str = "reference",
        balance: float = 1.0,
    ):
        """text: (n_items + 1) x P LLM vectors, row 0 = padding (zeros); frozen."""
        super().__init__()
        if objective not in ("reference", "expectation"):
            raise ValueError(f"LRD objective must be 'reference' or 'expectation', got {objective!r}")
        self.objective = objective
        self.balance = balance
        self.register_buffer("text", text.float(), persistent=False)
        self.project = nn.Linear(text.shape[1], d)
        self.extract = nn.Linear(2 * d, n_relations)
        self.alpha = alpha
        # Mass on the virtual type 0 means "no relation": it is left out of the decoder, so
        # such pairs reconstruct nothing (the reference's leave_one_latent).
        self.drop_virtual = drop_virtual

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
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """history, negatives: B x H item ids (h and h⁻); target: B; mask: B x H; rel_emb: R x d."""
        q = self.relation_probs(history, target[:, None].expand_as(history))  # B x H x R
        e_t = item_emb(target)[:, None, :]  # B x 1 x d
        # <e_t, w_r> is the same for h and h⁻ and cancels in the difference.
        delta = item_emb(history) - item_emb(negatives)  # B x H x d
        rel = rel_emb[1:] if self.drop_virtual else rel_emb
        q_dec = q[..., 1:] if self.drop_virtual else q
        score = ((delta * e_t + delta) @ rel.t()).float()  # B x H x R': s_r(h, t) − s_r(h⁻, t) per unit q
        valid = mask.float()
        n_valid = valid.sum(1).clamp(min=1)
        if self.objective == "reference":
            diff = q_dec * score
            mean_sig = (torch.sigmoid(diff) * valid[..., None]).sum(1) / n_valid[:, None]  # B x R'
            reconstruction = -torch.log(mean_sig.clamp(min=1e-12)).mean()
        else:
            if self.drop_virtual:  # "no relation" reconstructs nothing: σ(0)
                score = torch.cat([torch.zeros_like(score[..., :1]), score], dim=-1)
            diff = q * score
            expected = (q * F.logsigmoid(score)).sum(-1)  # B x H
            reconstruction = -((expected * valid).sum(1) / n_valid).mean()
        plogp = -(q * torch.log(q.clamp(min=1e-12)))
        if self.objective == "reference":
            entropy_per_pos = plogp.mean(-1)  # mean over r, as the reference
            entropy = (entropy_per_pos * valid).sum() / valid.sum().clamp(min=1)
            loss = reconstruction + self.alpha * entropy
        else:
            # Confident per pair, yet spread over types across pairs: the mutual information
            # between pair and type, H(mean q) − mean H(q). Minimising the per-pair entropy
            # alone lets every pair collapse onto one type that the embeddings then fit.
            entropy = (plogp.sum(-1) * valid).sum() / valid.sum().clamp(min=1)
            usage = (q * valid[..., None]).sum((0, 1)) / valid.sum().clamp(min=1)
            spread = -(usage * torch.log(usage.clamp(min=1e-12))).sum()
            loss = reconstruction + self.alpha * (entropy - self.balance * spread)
        with torch.no_grad():
            # A pair "reconstructs" when the q-weighted score prefers h over h⁻.
            correct = ((diff.sum(-1) > 0).float() * valid).sum() / valid.sum().clamp(min=1)
        return loss, {"lrd_reconstruction": reconstruction.detach(), "lrd_entropy": entropy.detach(), "lrd_accuracy": correct}


def distmult_kg_loss(
    kg: dict[str, torch.Tensor], entity_emb: nn.Embedding, rel_emb: torch.Tensor
) -> torch.Tensor:
    """−log σ(f(h, r, t, v) − f(h', r, t', v)), f = Σ e_h ⊙ (rel_r + e_v) ⊙ e_t."""
    relv = rel_emb[kg["r"]] + entity_emb(kg["v"])
    pos = (entity_emb(kg["h"]) * relv * entity_emb(kg["t"])).sum(-1)
    neg = (entity_emb(kg["neg_h"]) * relv * entity_emb(kg["neg_t"])).sum(-1)
    return F.softplus(-(pos - neg).float()).mean()
