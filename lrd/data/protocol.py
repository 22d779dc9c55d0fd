"""The evaluation protocol of method doc §2, vectorised over whole columns.

5-core filtering, ids 1..n, chronological order and leave-one-out splits (the negatives are
drawn by lrd.data.sampling). Everything here is numpy over arrays of interactions; there are
no per-row loops, so the same code serves 100k and 100M interactions.
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
