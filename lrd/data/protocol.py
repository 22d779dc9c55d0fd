"""The evaluation protocol of method doc §2, vectorised over whole columns.

5-core filtering, ids 1..n, chronological order, leave-one-out splits and uniformly sampled
negatives. Everything here is numpy over arrays of interactions; there are no per-row loops, so
the same code serves 100k and 100M interactions.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TRAIN, DEV, TEST = 0, 1, 2


def encode_ids(raw: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Number the distinct raw ids 1..n in sorted order (numeric when every id is an integer).

    Returns the codes (int32, same length as `raw`) and the raw ids in code order, so that
    `vocab[code - 1]` is the raw id of `code`.
    """
    uniq = pc.unique(raw)
    try:
        keys = pc.cast(uniq, pa.int64()).to_numpy(zero_copy_only=False)
        order = np.argsort(keys, kind="stable")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        order = pc.sort_indices(uniq).to_numpy()
    vocab = uniq.take(pa.array(order))
    codes = pc.index_in(raw, value_set=vocab).to_numpy(zero_copy_only=False)
    return (codes + 1).astype(np.int32), vocab.cast(pa.string())


def dedupe(users: np.ndarray, items: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Mask keeping the first of each group of exactly repeated (user, item, timestamp) rows."""
    order = np.lexsort((timestamps, items, users))
    u, i, t = users[order], items[order], timestamps[order]
    repeat = np.zeros(len(order), dtype=bool)
    repeat[1:] = (u[1:] == u[:-1]) & (i[1:] == i[:-1]) & (t[1:] == t[:-1])
    keep = np.ones(len(order), dtype=bool)
    # lexsort is stable, so within a group the first file row comes first and is kept.
    keep[order[repeat]] = False
    return keep


def kcore_mask(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Rows that survive iterative k-core filtering: every user and item keeps >= k rows."""
    keep = np.ones(len(users), dtype=bool)
    if k <= 1:
        return keep
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    while True:
        user_count = np.bincount(users[keep], minlength=n_users)
        item_count = np.bincount(items[keep], minlength=n_items)
        drop = keep & ((user_count[users] < k) | (item_count[items] < k))
        if not drop.any():
            return keep
        keep &= ~drop


def renumber(codes: np.ndarray, vocab: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Renumber the codes that still occur to 1..m, keeping their relative (sorted) order."""
    present = np.zeros(len(vocab) + 1, dtype=bool)
    present[codes] = True
    present[0] = False
    new_code = np.cumsum(present).astype(np.int32)
    kept = np.flatnonzero(present[1:])
    return new_code[codes], vocab.take(pa.array(kept))


def chronological_order(users: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Permutation sorting by (timestamp, user); ties keep their file order (stable)."""
    return np.lexsort((users, timestamps))


def leave_one_out(users: np.ndarray) -> np.ndarray:
    """Split codes for interactions already in chronological order.

    Each user's last interaction is test and the one before it dev; the rest is train. A
    user's first interaction always stays in train (so a user with two interactions has a
    test row and no dev row).
    """
    n = len(users)
    order = np.argsort(users, kind="stable")  # groups users, keeps time order inside
    grouped = users[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    counts = np.diff(np.r_[starts, n])
    position = np.arange(n) - np.repeat(starts, counts)
    count = np.repeat(counts, counts)
    split_grouped = np.full(n, TRAIN, dtype=np.int8)
    split_grouped[(position == count - 1) & (count >= 2)] = TEST
    split_grouped[(position == count - 2) & (count >= 3)] = DEV
    split = np.empty(n, dtype=np.int8)
    split[order] = split_grouped
    return split


class UserItemSet:
    """Membership test "did user u ever touch item i", over sorted int64 keys."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_items: int):
        self.n_items = int(n_items)
        self.keys = np.unique(users.astype(np.int64) * (self.n_items + 1) + items)
        user_of_key = self.keys // (self.n_items + 1)
        self.counts = np.bincount(user_of_key, minlength=int(users.max()) + 1 if len(users) else 1)

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users.astype(np.int64)[..., None] * (self.n_items + 1) + items if items.ndim > users.ndim else (
            users.astype(np.int64) * (self.n_items + 1) + items
        )
        pos = np.searchsorted(self.keys, keys)
        pos = np.minimum(pos, len(self.keys) - 1)
        return self.keys[pos] == keys

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
