"""Standalone latent relation discovery (the `discover` stage).

The LRD module trains on (history item, target) pairs of the training sequences with its own
item and relation embeddings, plus a DistMult loss on the predefined triples so that their
relation embeddings mean what the predefined types mean and the K latent types learn the rest.
It then labels candidate pairs (co-occurring in train sequences, and FAISS neighbours) with
their most probable latent type, streaming the triplet table in row groups.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch import nn
from tqdm import tqdm

from lrd import schemas
from lrd.config import DiscoverConfig
from lrd.graph import RelationGraph
from lrd.io import atomic_path
from lrd.models.batch import Batch
from lrd.models.blocks import init_normal
from lrd.models.lrd import LatentRelationDiscovery, distmult_kg_loss
from lrd.sequences import Sequences
from lrd.train.data import TrainingData
from lrd.train.trainer import optimizer_for

log = logging.getLogger(__name__)


def latent_names(k: int) -> list[str]:
    return [f"latent_{i}" for i in range(1, k + 1)]


class DiscoveryModel(nn.Module):
    def __init__(self, graph: RelationGraph, d: int, lrd: LatentRelationDiscovery, kg_weight: float):
        super().__init__()
        self.entities = nn.Embedding(graph.n_entities, d)
        self.relations = nn.Embedding(graph.n_relations, d)
        init_normal(self)
        self.lrd, self.kg_weight = lrd, kg_weight

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        lrd_loss, parts = self.lrd.loss(
            batch.history, batch.lrd_negatives, batch.candidates[:, 0], batch.mask, self.entities, self.relations.weight
        )
        out = {"loss": lrd_loss, "lrd": lrd_loss, **parts}
        if self.kg_weight and batch.kg:
            out["kg"] = distmult_kg_loss(batch.kg, self.entities, self.relations.weight)
            out["loss"] = out["loss"] + self.kg_weight * out["kg"]
        return out


def text_matrix(store, n_items: int) -> torch.Tensor:
    """(n_items + 1) x P LLM vectors in item-id order, row 0 zeros; every item must have one."""
    from lrd.errors import MissingUpstreamError

    ids = np.arange(1, n_items + 1)
    covered = np.isin(ids, store.ids)
    if not covered.all():
        raise MissingUpstreamError(
            f"the embedding store {store.path} lacks vectors for {int((~covered).sum())} of {n_items} items "
            f"(e.g. item {int(ids[~covered][0])}): run `dvc repro embed`"
        )
    text = np.zeros((n_items + 1, store.dim), dtype=np.float32)
    text[1:] = store.vectors_for(ids)
    return torch.from_numpy(text)


@dataclasses.dataclass
class DiscoveryResult:
    model: DiscoveryModel
    curve: list[dict]
    best_epoch: int
    holdout: dict[str, float]


def train_discovery(model: DiscoveryModel, data: TrainingData, cfg: DiscoverConfig) -> DiscoveryResult:
    rng = np.random.default_rng(cfg.seed)
    positions = data.train_positions[rng.permutation(data.n_train)]
    n_hold = max(1, int(len(positions) * cfg.holdout))
    hold, fit_pos = np.sort(positions[:n_hold]), positions[n_hold:]
    # The held-out pairs and their negatives are drawn once, so epochs compare like with like.
    hold_batches = list(data.epoch(np.random.default_rng(cfg.seed + 1), 4096, False, True, positions=hold))
    opt = optimizer_for(model, cfg.lr, cfg.l2)
    best, best_epoch, best_state, curve = np.inf, 0, None, []
    n_batches = -(-len(fit_pos) // cfg.batch_size)
    for epoch in range(1, cfg.max_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        total = 0.0
        for batch in tqdm(data.epoch(rng, cfg.batch_size, True, True, positions=fit_pos), total=n_batches, desc=f"discover epoch {epoch}", leave=False, disable=None):
            loss = model.losses(batch)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        held = holdout_metrics(model, hold_batches)
        row = {"epoch": epoch, "train_loss": total / n_batches, **{f"holdout_{k}": v for k, v in held.items()}, "seconds": round(time.perf_counter() - t0, 2)}
        curve.append(row)
        improved = best_state is None or best - held["lrd"] > cfg.min_delta * abs(best)  # the loss can be negative
        log.info("discover epoch %d: train loss %.4f | held-out LRD loss %.4f, reconstruction accuracy %.4f%s [%.1f s]",
                 epoch, row["train_loss"], held["lrd"], held["lrd_accuracy"], " *" if improved else "", row["seconds"])
        if improved:
            best, best_epoch = held["lrd"], epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= cfg.patience:
            log.info("held-out loss has not improved for %d epochs; stopping (best epoch %d)", cfg.patience, best_epoch)
            break
    model.load_state_dict(best_state)
    return DiscoveryResult(model, curve, best_epoch, holdout_metrics(model, hold_batches))


@torch.no_grad()
def holdout_metrics(model: DiscoveryModel, batches: list[Batch]) -> dict[str, float]:
    model.eval()
    sums, n = {}, 0
    for b in batches:
        loss, parts = model.lrd.loss(b.history, b.lrd_negatives, b.candidates[:, 0], b.mask, model.entities, model.relations.weight)
        w = len(b.users)
        for k, v in {"lrd": loss, **parts}.items():
            sums[k] = sums.get(k, 0.0) + float(v) * w
        n += w
    return {k: v / n for k, v in sums.items()}


# ---------------------------------------------------------------------------------------------
# candidate pairs and the triplet table


def cooccur_keys(seqs: Sequences, history_max: int, chunk: int = 1 << 16) -> np.ndarray:
    """Sorted unique keys head * (n_items + 1) + tail of (history item, train target) pairs."""
    positions = seqs.train_positions()
    base = seqs.n_items + 1
    parts = []
    for lo in range(0, len(positions), chunk):
        pos = positions[lo : lo + chunk]
        hist, _ = seqs.history(pos, history_max)
        tail = np.broadcast_to(seqs.items[pos][:, None], hist.shape)
        ok = (hist > 0) & (hist != tail)
        parts.append(np.unique(hist[ok].astype(np.int64) * base + tail[ok]))
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)


@dataclasses.dataclass
class Readout:
    """Streaming accumulators for the quality metrics."""

    n_items: int
    n_latent: int
    n_predefined: int
    min_probability: float
    usage: np.ndarray = None
    confident_usage: np.ndarray = None
    contingency: np.ndarray = None
    confident_items: np.ndarray = None
    entropy_sum: float = 0.0
    pairs: int = 0

    def __post_init__(self):
        self.usage = np.zeros(self.n_latent, np.int64)
        self.confident_usage = np.zeros(self.n_latent, np.int64)
        self.contingency = np.zeros((self.n_predefined + 1, self.n_latent), np.int64)
        self.confident_items = np.zeros(self.n_items + 1, bool)


def label_pairs(
    lrd: LatentRelationDiscovery,
    graph: RelationGraph,
    heads: np.ndarray,
    tails: np.ndarray,
    tables: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(global latent relation id, its probability, entropy of q) for each pair."""
    a, b, c = tables
    with torch.no_grad():
        q = torch.softmax(a[torch.from_numpy(heads)] + b[torch.from_numpy(tails)] + c, dim=-1)
        latent = q[:, latent_slice(graph)]
        prob, idx = latent.max(dim=1)
        entropy = -(q * torch.log(q.clamp(min=1e-12))).sum(1)
    first = latent_slice(graph).start
    global_ids = np.asarray(graph.global_ids)[first + idx.numpy()]
    return global_ids.astype(np.int16), prob.numpy().astype(np.float32), entropy.numpy()


def latent_slice(graph: RelationGraph) -> slice:
    first = graph.kinds.index("latent")
    return slice(first, graph.n_relations)


def write_triplets(
    path: Path,
    lrd: LatentRelationDiscovery,
    graph: RelationGraph,
    cooccur: np.ndarray,
    knn_heads: np.ndarray,
    knn_tails: np.ndarray,
    predefined: tuple[np.ndarray, np.ndarray],
    readout: Readout,
    row_group_size: int,
) -> int:
    """Label and write every candidate pair, one row group at a time. Returns the row count."""
    base = graph.n_items + 1
    pre_keys, pre_types = predefined
    lrd.eval()
    with torch.no_grad():
        tables = tuple(t.detach() for t in lrd.pair_tables())
    knn_keys = np.unique(knn_heads.astype(np.int64) * base + knn_tails)
    only_cooccur = cooccur[~_member(knn_keys, cooccur)]
    # knn pairs (labelled "both" when they also co-occur), then co-occurring pairs not among them.
    groups = [(knn_keys, lambda k: np.where(_member(cooccur, k), "both", "knn")), (only_cooccur, lambda k: np.full(len(k), "cooccur"))]
    rows = 0
    first_latent = latent_slice(graph).start
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schemas.LATENT_RELATIONS, compression="zstd") as writer:
        for keys, sources in groups:
            for lo in range(0, len(keys), row_group_size):
                k = keys[lo : lo + row_group_size]
                h, t = k // base, k % base
                rel, prob, ent = label_pairs(lrd, graph, h, t, tables)
                _accumulate(readout, k, h, t, rel - graph.global_ids[first_latent], prob, ent, pre_keys, pre_types)
                writer.write_table(pa.table(
                    {"head": h.astype(np.int32), "tail": t.astype(np.int32), "relation": rel, "probability": prob,
                     "source": pa.array(sources(k)).dictionary_encode()},
                    schema=schemas.LATENT_RELATIONS,
                ))
                rows += len(k)
    return rows


def _member(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    if len(sorted_keys) == 0:
        return np.zeros(len(queries), bool)
    pos = np.minimum(np.searchsorted(sorted_keys, queries), len(sorted_keys) - 1)
    return sorted_keys[pos] == queries


def _accumulate(r: Readout, keys, heads, tails, latent_idx, prob, entropy, pre_keys, pre_types) -> None:
    r.pairs += len(keys)
    r.entropy_sum += float(entropy.sum())
    r.usage += np.bincount(latent_idx, minlength=r.n_latent)
    conf = prob >= r.min_probability
    r.confident_usage += np.bincount(latent_idx[conf], minlength=r.n_latent)
    r.confident_items[heads[conf]] = True
    r.confident_items[tails[conf]] = True
    if len(pre_keys):
        pos = np.minimum(np.searchsorted(pre_keys, keys), len(pre_keys) - 1)
        hit = pre_keys[pos] == keys
        np.add.at(r.contingency, (pre_types[pos[hit]], latent_idx[hit]), 1)


def predefined_pairs(relations: pa.Table, n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Predefined item-item pairs for the readout.

    Returns sorted pair keys, a type code per key (the lowest relation id when a pair has
    several), the relation id of each code, and the mask of items that are in no such triple.
    """
    tails = pc.fill_null(relations.column("tail"), 0).to_numpy().astype(np.int64)
    sel = tails > 0
    heads = relations.column("head").to_numpy().astype(np.int64)[sel]
    rels = relations.column("relation").to_numpy().astype(np.int64)[sel]
    tails = tails[sel]
    keys = heads * (n_items + 1) + tails
    order = np.lexsort((rels, keys))
    keys, rels = keys[order], rels[order]
    first = np.r_[True, keys[1:] != keys[:-1]] if len(keys) else np.empty(0, bool)
    types, codes = np.unique(rels[first], return_inverse=True)
    has = np.zeros(n_items + 1, bool)
    has[heads] = True
    has[tails] = True
    return keys[first], codes, types, ~has


def normalized_mutual_information(contingency: np.ndarray) -> float | None:
    """NMI (arithmetic-mean normalisation) of a contingency table; None without data."""
    n = contingency.sum()
    if n == 0:
        return None
    p = contingency / n
    pr, pc = p.sum(1), p.sum(0)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / (pr[:, None] * pc[None, :])[nz])).sum())
    hr = -float((pr[pr > 0] * np.log(pr[pr > 0])).sum())
    hc = -float((pc[pc > 0] * np.log(pc[pc > 0])).sum())
    return mi / ((hr + hc) / 2) if hr + hc > 0 else 0.0
