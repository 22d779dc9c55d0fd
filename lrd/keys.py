"""Membership and lookup over keys (pairs and triples packed into one int64, or text hashes).

Sorted once, then every query is one vectorised binary search: the pipeline's way of asking
"is (user, item) known", "is (head, relation, tail) a true triple", "which cached vector is this".
"""

from __future__ import annotations

import numpy as np


class KeySet:
    def __init__(self, keys: np.ndarray, is_sorted: bool = False):
        keys = np.asarray(keys)
        if keys.dtype.kind in "iu":
            keys = keys.astype(np.int64, copy=False)
        self.order = None if is_sorted else np.argsort(keys, kind="stable")
        self.keys = keys if is_sorted else keys[self.order]

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, queries: np.ndarray) -> np.ndarray:
        """Row of each query in the keys as given (the first of equal ones), or -1 where absent."""
        queries = np.asarray(queries, dtype=self.keys.dtype)
        if len(self.keys) == 0:
            return np.full(queries.shape, -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, queries), len(self.keys) - 1)
        rows = pos if self.order is None else self.order[pos]
        return np.where(self.keys[pos] == queries, rows, -1)

    def contains(self, queries: np.ndarray) -> np.ndarray:
        queries = np.asarray(queries, dtype=self.keys.dtype)
        if len(self.keys) == 0:
            return np.zeros(queries.shape, dtype=bool)
        pos = np.searchsorted(self.keys, queries)
        np.minimum(pos, len(self.keys) - 1, out=pos)  # in place: negative sampling asks about ~10^8 keys at once
        return self.keys[pos] == queries
