"""User sequences as flat arrays, and the tensors a batch needs, gathered without Python loops.

Interactions are grouped by user (train, then dev, then test, each in time order). An
instance is a position in that grouping: its target is the item there and its history the
up to `history_max` items before it, left-padded with item 0.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

from lrd.data.sampling import UserItemSet

@dataclasses.dataclass
class Sequences:
    n_users: int
    n_items: int
    items: np.ndarray  # int32, grouped by user
    times: np.ndarray  # int64 seconds, same order
    users: np.ndarray  # int32 user of each position
    start: np.ndarray  # int64 index where each position's user starts
    split: np.ndarray  # int8 0 train / 1 dev / 2 test
    seen: UserItemSet  # every (user, item) of any split: never sampled as a negative

    @classmethod
    def from_table(cls, interactions: pa.Table, n_users: int, n_items: int) -> "Sequences":
        users = interactions.column("user").to_numpy().astype(np.int32)
        items = interactions.column("item").to_numpy().astype(np.int32)
        times = interactions.column("timestamp").to_numpy().astype(np.int64)
        split_names = interactions.column("split").to_numpy(zero_copy_only=False)
        split = np.zeros(len(users), dtype=np.int8)
        split[split_names == "dev"] = 1
        split[split_names == "test"] = 2
        order = np.lexsort((times, split, users))  # stable: ties keep chronological file order
        users, items, times, split = users[order], items[order], times[order], split[order]
        first = np.r_[True, users[1:] != users[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(len(users)), 0))
        return cls(n_users, n_items, items, times, users, start, split, UserItemSet(users, items, n_items))

    def train_positions(self) -> np.ndarray:
        """Train interactions that have a history (every user's first one has none)."""
        return np.flatnonzero((self.split == 0) & (np.arange(len(self.items)) > self.start))

    def positions_of(self, users: np.ndarray, split: int) -> np.ndarray:
        """Position of each user's (single) dev or test interaction."""
        pos = np.flatnonzero(self.split == split)
        lookup = np.full(self.n_users + 1, -1, dtype=np.int64)
        lookup[self.users[pos]] = pos
        out = lookup[users]
        if (out < 0).any():
            raise ValueError(f"users without a {['train', 'dev', 'test'][split]} interaction: {users[out < 0][:5]}")
        return out

    def history(self, positions: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(items, times) of the `length` interactions before each position, oldest first.

        Left-padded: item 0 and time equal to the target's where there is no earlier one.
        """
        idx = positions[:, None] - length + np.arange(length)[None, :]
        valid = idx >= self.start[positions][:, None]
        idx = np.where(valid, idx, 0)
        hist = np.where(valid, self.items[idx], 0).astype(np.int64)
        times = np.where(valid, self.times[idx], self.times[positions][:, None])
        return hist, times

