"""Candidate item pairs to label: co-occurring in training sequences, and FAISS neighbours."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lrd.embed.store import EmbeddingStore
from lrd.keys import KeySet
from lrd.sequences import Sequences


def train_occurrences(seqs: Sequences) -> np.ndarray:
    """Positions of the train interactions ordered (stably) by item: every item's occurrences,
    so that the co-occurrence pairs whose heads lie in an item range come from one slice."""
    positions = np.flatnonzero(seqs.split == 0)
    return positions[np.argsort(seqs.items[positions], kind="stable")]


def cooccur_keys_at(items: np.ndarray, users: np.ndarray, split: np.ndarray, occurrences: np.ndarray, history_max: int,
                    n_items: int) -> np.ndarray:
    """Sorted unique keys of the co-occurrence pairs whose head is the item at one of `occurrences`
    (train positions of the flat sequences): it is in the history of every train target of the same
    user at most `history_max` positions later (a user's train interactions come before the others)."""
    ahead = occurrences[:, None] + np.arange(1, history_max + 1)
    inside = ahead < len(items)
    ahead = np.where(inside, ahead, 0)
    heads = np.broadcast_to(items[occurrences][:, None], ahead.shape)
    tails = items[ahead]
    ok = inside & (users[ahead] == users[occurrences][:, None]) & (split[ahead] == 0) & (tails != heads)
    return np.unique(heads[ok].astype(np.int64) * (n_items + 1) + tails[ok])


def cooccur_keys(seqs: Sequences, history_max: int, chunk: int = 1 << 16) -> np.ndarray:
    """Sorted unique keys head * (n_items + 1) + tail of (history item, train target) pairs."""
    occurrences = np.flatnonzero(seqs.split == 0)
    parts = [cooccur_keys_at(seqs.items, seqs.users, seqs.split, occurrences[lo : lo + chunk], history_max, seqs.n_items)
             for lo in range(0, len(occurrences), chunk)]
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)


def knn_keys_at(store: EmbeddingStore, heads: np.ndarray, k: int, n_items: int) -> tuple[np.ndarray, int]:
    """Sorted unique keys of (head, one of its k nearest other items) for ascending `heads`, and how many pairs were found."""
    tails = store.neighbors(heads, k)[0].reshape(-1).astype(np.int64)
    heads = np.repeat(heads.astype(np.int64), k)
    ok = tails > 0
    return np.unique(heads[ok] * (n_items + 1) + tails[ok]), int(ok.sum())


def knn_keys(store: EmbeddingStore, n_items: int, k: int) -> tuple[np.ndarray, int]:
    """Sorted unique keys of (item, one of its k nearest other items) by the LLM vectors, and how many pairs were found."""
    item_ids = np.arange(1, n_items + 1)
    k = min(k, n_items - 1)
    # Chunks of ascending heads: their sorted keys simply follow one another.
    parts = [knn_keys_at(store, chunk, k, n_items) for chunk in np.array_split(item_ids, max(1, len(item_ids) // 65536))]
    return np.concatenate([keys for keys, _ in parts]), sum(n for _, n in parts)


def labelled_groups(cooccur: np.ndarray, knn: np.ndarray, chunk: int):
    """(keys, source) chunks of every candidate pair once: kNN pairs ("both" when they also
    co-occur), then co-occurring pairs that are not neighbours."""
    in_cooccur, in_knn = KeySet(cooccur, is_sorted=True), KeySet(knn, is_sorted=True)
    only_cooccur = cooccur[~in_knn.contains(cooccur)]
    for keys, source in ((knn, lambda k: np.where(in_cooccur.contains(k), "both", "knn")), (only_cooccur, lambda k: np.full(len(k), "cooccur"))):
        for lo in range(0, len(keys), chunk):
            k = keys[lo : lo + chunk]
            yield k, pa.array(source(k)).dictionary_encode()


def predefined_pairs(relations: pa.Table, n_items: int) -> tuple[KeySet, np.ndarray, np.ndarray, np.ndarray]:
    """Predefined item-item pairs for the readout.

    Returns the pair keys, a type code per key (the lowest relation id when a pair has
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
    return KeySet(keys[first], is_sorted=True), codes, types, ~has


# --------------------------------------------------------------------------------------------
# Co-occurrence beyond popularity: PMI of (history item, train target) pairs

def cooccur_counts(seqs: Sequences, history_max: int, chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys of the co-occurrence pairs (as cooccur_keys) and how often each occurs:
    the number of (history position, train target) rows of the training data that hold it."""
    occurrences = np.flatnonzero(seqs.split == 0)
    parts = []
    for lo in range(0, len(occurrences), chunk):
        occ = occurrences[lo : lo + chunk]
        ahead = occ[:, None] + np.arange(1, history_max + 1)
        inside = ahead < len(seqs.items)
        ahead = np.where(inside, ahead, 0)
        heads = np.broadcast_to(seqs.items[occ][:, None], ahead.shape)
        tails = seqs.items[ahead]
        ok = inside & (seqs.users[ahead] == seqs.users[occ][:, None]) & (seqs.split[ahead] == 0) & (tails != heads)
        parts.append(np.unique(heads[ok].astype(np.int64) * (seqs.n_items + 1) + tails[ok], return_counts=True))
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    keys, counts = np.concatenate([k for k, _ in parts]), np.concatenate([c for _, c in parts])
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    first = np.r_[True, keys[1:] != keys[:-1]]
    return keys[first], np.add.reduceat(counts, np.flatnonzero(first))


def cooccur_pmi(keys: np.ndarray, counts: np.ndarray, n_items: int) -> np.ndarray:
    """Pointwise mutual information log(c(h, t) N / (c(h, ·) c(·, t))) of each pair: how much more
    often the pair co-occurs than the two items' popularity predicts (0: as often as chance)."""
    base = n_items + 1
    heads, tails = keys // base, keys % base
    by_head = np.bincount(heads, weights=counts, minlength=base)
    by_tail = np.bincount(tails, weights=counts, minlength=base)
    return np.log(counts * counts.sum() / (by_head[heads] * by_tail[tails]))


def strong_cooccur(keys: np.ndarray, counts: np.ndarray, n_items: int, min_count: int, min_pmi: float | None) -> np.ndarray:
    """The mask of co-occurring pairs that are seen at least `min_count` times and (unless
    `min_pmi` is None) with PMI >= min_pmi."""
    keep = counts >= min_count
    if min_pmi is not None:
        keep &= cooccur_pmi(keys, counts, n_items) >= min_pmi
    return keep


# --------------------------------------------------------------------------------------------
# Neighbours by text and attributes

EXACT_KNN_MAX_ITEMS = 200_000  # attribute-augmented neighbours are searched exactly: n² work


def attribute_vectors(incidence: dict, names: tuple[str, ...], n_items: int) -> np.ndarray:
    """(n_items + 1) x V: per attribute (a csr item x value incidence), the item's values scaled to
    unit length, each attribute weighted alike and the whole to unit length where an item has any."""
    blocks = []
    for name in names:
        m = incidence[name]
        used = np.unique(m.indices)
        dense = m[:, used].toarray().astype(np.float32)
        norm = np.linalg.norm(dense, axis=1, keepdims=True)
        blocks.append(np.divide(dense, norm, out=np.zeros_like(dense), where=norm > 0))
    if not blocks:
        return np.zeros((n_items + 1, 0), np.float32)
    out = np.concatenate(blocks, axis=1)
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norm, out=np.zeros_like(out), where=norm > 0)


def exact_knn_keys(vectors: np.ndarray, k: int, chunk: int = 2048) -> tuple[np.ndarray, int]:
    """Sorted unique keys of (item, one of its k most cosine-similar other items) over rows 1.. of
    `vectors` (row 0 padding), searched exactly; and how many pairs were found."""
    n_items = len(vectors) - 1
    k = min(k, n_items - 1)
    norm = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norm, out=np.zeros_like(vectors), where=norm > 0)[1:]
    parts = []
    for lo in range(0, n_items, chunk):
        sims = unit[lo : lo + chunk] @ unit.T
        sims[np.arange(len(sims)), np.arange(lo, lo + len(sims))] = -np.inf  # never the item itself
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] + 1
        heads = np.repeat(np.arange(lo + 1, lo + len(sims) + 1, dtype=np.int64), k)
        parts.append(heads * (n_items + 1) + top.reshape(-1))
    keys = np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)
    return keys, len(keys)
