"""`discover.engine: ray`: the candidate pairs and their latent labels as a Ray Data job, streamed
into the same latent.parquet the local engine writes.

The items are cut into head ranges ("buckets") of about `discover.row_group_size` candidate
pairs each. A pool of actors, each holding the store's FAISS index, the train sequences and the
LRD pair tables (loaded once per actor), turns a bucket into its kNN and co-occurrence pairs,
merges them as the local engine does (pairs.labelled_groups) and labels them. The driver writes
the labelled buckets, in order, into latent.parquet (a row group each) and feeds the readout on
the way: no process ever holds more than a few buckets, whatever the number of pairs.

The rows are the local engine's; their order is by head range (the local engine writes all kNN
pairs first), the same on every run. On a multi-node cluster the embedding store must be on
storage every node mounts at the same path.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa

from lrd.cluster import connect, ray_job
from lrd.config.train import DiscoverConfig
from lrd.discover.labels import LABELLED, Observer, label_chunk, pair_tables, write_labelled
from lrd.discover.strength import StrengthScale
from lrd.discover.pairs import cooccur_keys_at, knn_keys_at, labelled_groups, train_occurrences
from lrd.embed.store import EmbeddingStore
from lrd.graph import RelationGraph
from lrd.keys import KeySet
from lrd.models.lrd import LatentRelationDiscovery
from lrd.sequences import Sequences

log = logging.getLogger(__name__)


def plan_buckets(occurrences_per_item: np.ndarray, k: int, history_max: int, target: int, occurrence_items: np.ndarray) -> list[dict]:
    """Head ranges [lo, hi) holding about `target` candidate pairs each (an item has at most k
    neighbours and history_max tails per occurrence), with their slices of the sorted occurrences."""
    cost = np.cumsum(k + history_max * occurrences_per_item[1:])
    n_items = len(cost)
    cuts = np.searchsorted(cost, np.arange(target, cost[-1] if n_items else 0, target)) + 2  # the item after each crossing
    edges = np.unique(np.r_[1, cuts[cuts <= n_items], n_items + 1])
    starts = np.searchsorted(occurrence_items, edges)
    return [{"lo": int(lo), "hi": int(hi), "first": int(a), "last": int(b)}
            for lo, hi, a, b in zip(edges[:-1], edges[1:], starts[:-1], starts[1:])]


class BucketLabeller:
    """A Ray actor: the candidate pairs of a head range, labelled (LABELLED rows)."""

    def __init__(self, store: str, k: int, sequences: dict, occurrences: np.ndarray, history_max: int, tables: list,
                 latent: tuple[int, int], latent_ids: np.ndarray, threads: int, cooccur_keep: np.ndarray | None = None):
        import faiss
        import torch

        torch.set_num_threads(threads)
        faiss.omp_set_num_threads(threads)
        self.store = EmbeddingStore.open(store) if k else None
        self.k, self.sequences, self.occurrences, self.history_max = k, sequences, occurrences, history_max
        self.n_items = int(tables[0].shape[0]) - 1
        with warnings.catch_warnings():  # the shared, read-only arrays are only read
            warnings.simplefilter("ignore", UserWarning)
            self.tables = tuple(torch.from_numpy(t) for t in tables)
        self.latent, self.latent_ids = slice(*latent), latent_ids
        # discover.cooccur_min_count / cooccur_min_pmi: the co-occurring pairs kept (None: all)
        self.cooccur_keep = None if cooccur_keep is None else KeySet(cooccur_keep, is_sorted=True)

    def candidates(self, lo: int, hi: int, first: int, last: int):
        """(keys, source) of the bucket's pairs, as the local engine groups them (pairs.labelled_groups)."""
        s = self.sequences
        cooccur = cooccur_keys_at(s["items"], s["users"], s["split"], self.occurrences[first:last], self.history_max, self.n_items)
        if self.cooccur_keep is not None:
            cooccur = cooccur[self.cooccur_keep.contains(cooccur)]
        knn = knn_keys_at(self.store, np.arange(lo, hi), self.k, self.n_items)[0] if self.k else np.empty(0, np.int64)
        return labelled_groups(cooccur, knn, max(len(cooccur), len(knn), 1))

    def __call__(self, batch: dict) -> pa.Table:
        parts = [label_chunk(keys, source, self.n_items + 1, self.tables, self.latent, self.latent_ids)
                 for bucket in zip(batch["lo"], batch["hi"], batch["first"], batch["last"])
                 for keys, source in self.candidates(*map(int, bucket))]
        return pa.concat_tables(parts) if parts else LABELLED.empty_table()


def label_candidates(path: Path, lrd: LatentRelationDiscovery, graph: RelationGraph, seqs: Sequences, store: EmbeddingStore,
                     cfg: DiscoverConfig, observe: Observer, scale: StrengthScale, cooccur_keep: np.ndarray | None = None) -> tuple[int, int, int]:
    """Write the labelled candidate pairs to `path` from a Ray job, with their strength under `scale`;
    `cooccur_keep`: the sorted keys of the co-occurring pairs to keep (None: all). Returns (rows,
    co-occurrence pairs, kNN pairs)."""
    ray = connect("discover.engine")
    n_items = graph.n_items
    k = max(0, min(cfg.knn, n_items - 1))
    occurrences = train_occurrences(seqs)
    occurrence_items = seqs.items[occurrences]
    buckets = plan_buckets(np.bincount(occurrence_items, minlength=n_items + 1), k, cfg.history_max, cfg.row_group_size, occurrence_items)
    args = {
        "store": str(Path(store.path).resolve()), "k": k, "history_max": cfg.history_max, "occurrences": occurrences,
        "sequences": {"items": seqs.items, "users": seqs.users, "split": seqs.split},
        "tables": [t.numpy() for t in pair_tables(lrd)], "latent": (graph.latent.start, graph.latent.stop),
        "latent_ids": np.asarray(graph.global_ids)[graph.latent].astype(np.int16), "cooccur_keep": cooccur_keep,
    }
    rows, counts = run_buckets(ray, path, buckets, BucketLabeller, args, n_items + 1, observe, cfg.ray_workers, scale)
    return rows, counts["cooccur"], counts["knn"]


def run_buckets(ray, path: Path, buckets: list[dict], labeller: type, args: dict, base: int, observe: Observer | None,
                workers: int | None, scale: StrengthScale) -> tuple[int, dict[str, int]]:
    """Label `buckets` on a pool of `labeller` actors (constructed with `args` and `threads`) and
    stream them into the triplet table at `path`. Returns (rows, pairs per source incl. "both")."""
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    workers = min(workers or cpus, len(buckets))
    threads = max(1, cpus // workers)
    log.info("labelling the candidate pairs of %d head ranges on %d Ray worker(s)", len(buckets), workers)
    job = ray.data.from_items(buckets, override_num_blocks=len(buckets)).map_batches(
        labeller, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers), fn_constructor_kwargs={**args, "threads": threads},
        num_cpus=threads)
    job.context.execution_options.preserve_order = True  # the same file on every run
    counts = {"cooccur": 0, "knn": 0}

    def labelled():
        for chunk in job.iter_batches(batch_size=None, batch_format="pyarrow"):
            source = chunk.column("source").combine_chunks()
            names = source.dictionary.to_pylist()
            for name in counts:  # "both" counts for each
                counts[name] += int(np.isin(np.asarray(source.indices), [i for i, s in enumerate(names) if s in (name, "both")]).sum())
            yield chunk

    with ray_job("labelling candidate pairs"):
        rows = write_labelled(path, labelled(), base, scale, observe)
    return rows, counts
