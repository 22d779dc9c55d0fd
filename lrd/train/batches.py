"""Everything a training run reads, and the batches it feeds the models.

Per epoch, every random draw is made up front with numpy over whole arrays (training
negatives, LRD negative history items, KG triples and their corruptions); batches are then
slices of those arrays gathered into tensors. Under DDP every rank makes the same draws and
takes its share of each batch, so the ranks together train on exactly the one-process batches.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterator

import numpy as np
import pyarrow as pa
import torch

from lrd.data.sampling import sample_negatives
from lrd.graph import RelationGraph
from lrd.models.batch import Batch, Share
from lrd.sequences import Sequences
from lrd.temporal import log_time_gaps


@dataclasses.dataclass
class EvalSet:
    users: np.ndarray  # int32
    positions: np.ndarray  # position of the held-out interaction in Sequences
    candidates: np.ndarray  # N x C, column 0 the held-out item


class TrainingData:
    def __init__(self, seqs: Sequences, candidates: pa.Table, history_max: int, graph: RelationGraph | None = None):
        self.seqs, self.history_max, self.graph = seqs, history_max, graph
        self.train_positions = seqs.train_positions()
        self.eval = {name: self._eval_set(candidates, name, code) for name, code in (("dev", 1), ("test", 2))}

    def _eval_set(self, candidates: pa.Table, name: str, code: int) -> EvalSet:
        rows = candidates.filter(pa.compute.equal(candidates.column("split"), name))
        users = rows.column("user").to_numpy().astype(np.int64)
        targets = rows.column("target").to_numpy().astype(np.int64)
        negatives = rows.column("negatives").combine_chunks().flatten().to_numpy().astype(np.int64)
        negatives = negatives.reshape(len(users), -1) if len(users) else np.empty((0, 0), np.int64)
        positions = self.seqs.positions_of(users, code) if len(users) else np.empty(0, np.int64)
        if len(users) and not np.array_equal(self.seqs.items[positions], targets):
            raise ValueError(f"candidates.parquet: {name} targets differ from the {name} interactions; re-run ingest")
        return EvalSet(users.astype(np.int32), positions, np.concatenate([targets[:, None], negatives], axis=1))

    @property
    def n_train(self) -> int:
        return len(self.train_positions)

    def epoch(
        self, rng: np.random.Generator, batch_size: int, with_kg: bool, with_lrd: bool, positions: np.ndarray | None = None,
        part: tuple[int, int] = (0, 1),
    ) -> Iterator[Batch]:
        """Shuffled training batches for one epoch (all random draws made here, seeded).

        part = (rank, world size): this rank's contiguous share of each batch of `batch_size`
        rows (shares differ by one row at most), with the whole batch's counts in `share`.
        """
        positions = self.train_positions if positions is None else positions
        pos = positions[rng.permutation(len(positions))]
        users = self.seqs.users[pos]
        negatives = sample_negatives(rng, users, self.seqs.seen, 1)[:, 0]
        lrd_neg = sample_negatives(rng, users, self.seqs.seen, self.history_max) if with_lrd else None
        kg = self.graph.sample_kg(rng, len(pos)) if with_kg and self.graph is not None and self.graph.n_triples else None
        rank, world = part
        for lo in range(0, len(pos), batch_size):
            n = min(batch_size, len(pos) - lo)
            sl = slice(lo + n * rank // world, lo + n * (rank + 1) // world)
            share = None
            if world > 1:
                whole = pos[lo : lo + n]
                share = Share(n, int(np.minimum(whole - self.seqs.start[whole], self.history_max).sum()))
                if sl.start == sl.stop:  # fewer rows than ranks: see Share
                    sl, share = slice(lo, lo + 1), Share(math.inf, math.inf)
            cands = np.stack([self.seqs.items[pos[sl]], negatives[sl]], axis=1)
            batch = self._batch(pos[sl], cands)
            if lrd_neg is not None:
                batch.lrd_negatives = torch.from_numpy(lrd_neg[sl].astype(np.int64))
            if kg is not None:
                batch.kg = {k: torch.from_numpy(v[sl]) for k, v in kg.items()}
            batch.share = share
            yield batch

    def eval_batches(self, split: str, users_per_batch: int, part: tuple[int, int] = (0, 1)) -> Iterator[tuple[Batch, slice]]:
        """Batches of held-out users; part = (rank, world size): every world-th batch from the
        rank-th, the very batches one process scores (so the same scores, bit for bit)."""
        ev = self.eval[split]
        rank, world = part
        for lo in range(rank * users_per_batch, len(ev.users), world * users_per_batch):
            sl = slice(lo, lo + users_per_batch)
            yield self._batch(ev.positions[sl], ev.candidates[sl]), sl

    def _batch(self, positions: np.ndarray, candidates: np.ndarray) -> Batch:
        hist, hist_times = self.seqs.history(positions, self.history_max)
        gaps = log_time_gaps(self.seqs.times[positions], hist_times)
        return Batch(
            users=torch.from_numpy(self.seqs.users[positions].astype(np.int64)),
            history=torch.from_numpy(hist),
            gaps=torch.from_numpy(gaps),
            candidates=torch.from_numpy(np.ascontiguousarray(candidates, dtype=np.int64)),
        )
