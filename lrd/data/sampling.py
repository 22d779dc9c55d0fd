"""Sampling items a user never touched: the stored evaluation negatives (ingest) and the
training negatives of every epoch (lrd.train.batches), vectorised over whole arrays."""

from __future__ import annotations

import numpy as np

from lrd.keys import KeySet


class UserItemSet:
    """Membership test "did user u ever touch item i", over (user, item) keys."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_items: int):
        self.n_items = int(n_items)
        self.keys = KeySet(np.unique(users.astype(np.int64) * (self.n_items + 1) + items), is_sorted=True)
        user_of_key = self.keys.keys // (self.n_items + 1)
        self.counts = np.bincount(user_of_key, minlength=int(users.max()) + 1 if len(users) else 1)

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        users = users.astype(np.int64)
        return self.keys.contains((users[..., None] if items.ndim > users.ndim else users) * (self.n_items + 1) + items)

    def untouched(self, users: np.ndarray) -> np.ndarray:
        counts = np.zeros(len(users), dtype=np.int64)
        known = users < len(self.counts)
        counts[known] = self.counts[users[known]]
        return self.n_items - counts


def sample_negatives(
    rng: np.random.Generator,
    users: np.ndarray,
    seen: UserItemSet,
    k: int,
    chunk_rows: int = 16384,
) -> np.ndarray:
    """k distinct items per row, uniform among items 1..n the row's user never touched.

    Rejection sampling in bulk: draw a few more candidates than needed per row, drop items the
    user touched and repeats within the row, keep the first k. Rows that come up short are
    redrawn with more candidates; after a few rounds the rest (users who touched nearly every
    item) rank all items by a random key instead, which is exact. Taking the first k distinct
    valid draws is sampling without replacement, so every allowed k-subset is equally likely.

    Raises ValueError listing the row indexes whose user has fewer than k untouched items.
    """
    users = np.asarray(users, dtype=np.int64)
    n_items = seen.n_items
    free = seen.untouched(users)
    short = np.flatnonzero(free < k)
    if len(short):
        raise ValueError(short)
    out = np.empty((len(users), k), dtype=np.int32)
    for lo in range(0, len(users), chunk_rows):
        rows = np.arange(lo, min(lo + chunk_rows, len(users)))
        density = 1.0 - free[rows] / n_items
        width = int(np.ceil(1.25 * k / max(1.0 - np.quantile(density, 0.9), 1e-3))) + 8
        pending = rows
        for _ in range(4):
            if len(pending) == 0:
                break
            width = min(width, 8 * n_items)
            cand = rng.integers(1, n_items + 1, size=(len(pending), width), dtype=np.int64)
            valid = _first_occurrence(cand) & ~seen.contains(users[pending], cand)
            total = np.cumsum(valid, axis=1)
            done = total[:, -1] >= k
            take = valid[done] & (total[done] <= k)
            out[pending[done]] = cand[done][take].reshape(-1, k)
            pending = pending[~done]
            width *= 2
        if len(pending):
            out[pending] = _exact_negatives(rng, users[pending], seen, k)
    return out


def _first_occurrence(cand: np.ndarray) -> np.ndarray:
    """Mask of entries that are the first occurrence of their value within their row."""
    order = np.argsort(cand, axis=1, kind="stable")
    ordered = np.take_along_axis(cand, order, axis=1)
    later = np.zeros(cand.shape, dtype=bool)
    later[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    first = np.empty(cand.shape, dtype=bool)
    np.put_along_axis(first, order, ~later, axis=1)
    return first


def _exact_negatives(rng: np.random.Generator, users: np.ndarray, seen: UserItemSet, k: int) -> np.ndarray:
    """Rank all items by a random key per row, touched items last; take the top k."""
    n_items = seen.n_items
    out = np.empty((len(users), k), dtype=np.int32)
    step = max(1, (1 << 24) // n_items)
    items = np.arange(1, n_items + 1)
    for lo in range(0, len(users), step):
        u = users[lo : lo + step]
        key = rng.random((len(u), n_items))
        key[seen.contains(u, np.broadcast_to(items, key.shape))] = 2.0
        out[lo : lo + step] = np.argpartition(key, k - 1, axis=1)[:, :k] + 1
    return out
