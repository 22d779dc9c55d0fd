"""A per-pair strength beside q: how far above a random item pair a labelled pair sits.

q alone does not rank pairs: the entropy term makes it near one-hot by design (99% of ML-100K's
pairs have q >= 0.98), and its logits are additive in the two items (A[h] + B[t] + c,
LatentRelationDiscovery.pair_tables), so even the log-odds behind a saturated q say how
"type-r" each item is, not how well the two go together. The strength reads two things that do
depend on the pair:

- the decoder's mutual reconstruction under the pair's type r: s_r(h, t) - s_r(ē, t), how much
  better h reconstructs t than an average item ē does (the DistMult score of lrd.models.lrd with
  unit weight on r), taken in both directions and the weaker kept, so a pair that only one item
  explains (a popular tail) does not rank high;
- the cosine of the two items' LLM vectors (what the extractor itself reads).

Each is a z-score against the same quantity for random item pairs (per type for the
reconstruction), and the strength is their mean: 0 = a random pair, 1 = one random-pair standard
deviation above it. README "Relation strength" gives the measurements behind this choice.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lrd.discover.coherence import random_pairs

# A "confident" latent pair: q >= discover.min_probability and strength >= this. On the default
# runs it keeps 72% of Office's and 61% of ML-100K's pairs (README "Relation strength").
MIN_STRENGTH = 1.0
BASELINE_PAIRS = 100_000  # random pairs behind the z-scores


@dataclasses.dataclass(frozen=True)
class StrengthScale:
    """What scoring a chunk of pairs needs, computed once per labelling run."""

    unit: np.ndarray  # (n_items + 1) x P unit LLM vectors (row 0 padding)
    entities: np.ndarray  # (n_items + 1) x d item embeddings of the decoder
    relations: np.ndarray  # K x d latent relation embeddings, in latent index order
    mean_entity: np.ndarray  # d: the average item ē
    cos_mean: float
    cos_std: float
    rec_mean: np.ndarray  # K: random pairs' mutual reconstruction per type
    rec_std: np.ndarray


def text_similarity(unit: np.ndarray, heads: np.ndarray, tails: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", unit[heads], unit[tails])


def mutual_reconstruction(entities: np.ndarray, relations: np.ndarray, mean_entity: np.ndarray, heads: np.ndarray, tails: np.ndarray,
                          latent: np.ndarray) -> np.ndarray:
    """min over the two directions of s_r(a, b) - s_r(ē, b) = <(e_a - ē) ⊙ w_r, e_b + 1> (the
    <e_b, w_r> term cancels), r = each pair's latent index."""
    w = relations[latent]

    def gain(a, b):
        return np.einsum("ij,ij->i", (entities[a] - mean_entity) * w, entities[b] + 1)

    return np.minimum(gain(heads, tails), gain(tails, heads))


def strength_scale(text: np.ndarray, entities: np.ndarray, relations: np.ndarray, seed: int = 0) -> StrengthScale:
    """The scale from the frozen LLM vectors (row 0 padding), the decoder's item embeddings and
    its K latent relation embeddings."""
    # float32: the unit vectors are a second copy of the item vectors (millions of items at scale)
    text, entities, relations = (np.asarray(a, np.float32) for a in (text, entities, relations))
    n_items = len(text) - 1
    entities = entities[: n_items + 1]  # attribute value entities follow the items (predefined_types)
    unit = text / np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-12)
    mean_entity = entities[1:].mean(0)
    heads, tails = random_pairs(n_items, BASELINE_PAIRS, seed)
    cos = text_similarity(unit, heads, tails)
    k = len(relations)
    # Every type scored on the same random pairs: K x BASELINE_PAIRS values, one type at a time.
    rec = np.stack([mutual_reconstruction(entities, relations, mean_entity, heads, tails, np.full(len(heads), r)) for r in range(k)]) \
        if k else np.zeros((0, len(heads)))
    return StrengthScale(unit, entities, relations, mean_entity, float(cos.mean()), float(max(cos.std(), 1e-12)),
                         rec.mean(1) if k else np.zeros(0), np.maximum(rec.std(1), 1e-12) if k else np.zeros(0))


def pair_strength(scale: StrengthScale, heads: np.ndarray, tails: np.ndarray, latent: np.ndarray) -> np.ndarray:
    """The strength of pairs labelled with latent index `latent` (float32)."""
    heads, tails, latent = (np.asarray(a, np.int64) for a in (heads, tails, latent))
    z_cos = (text_similarity(scale.unit, heads, tails) - scale.cos_mean) / scale.cos_std
    rec = mutual_reconstruction(scale.entities, scale.relations, scale.mean_entity, heads, tails, latent)
    z_rec = (rec - scale.rec_mean[latent]) / scale.rec_std[latent]
    return ((z_cos + z_rec) / 2).astype(np.float32)


def strength_deciles(strength: np.ndarray, keys: np.ndarray, shared: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Pairs and pairs sharing an attribute per strength decile of one type's pairs, strongest
    decile first (ties by pair key, so the split is deterministic)."""
    order = np.lexsort((keys, -strength))
    edges = np.linspace(0, len(order), bins + 1).round().astype(np.int64)
    hits = np.r_[0, np.cumsum(shared[order])]
    return np.diff(edges), hits[edges[1:]] - hits[edges[:-1]]
