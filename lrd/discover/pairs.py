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
