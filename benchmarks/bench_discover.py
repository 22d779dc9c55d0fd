"""Benchmark the discover stage's labelling + writing of the latent triplet table at scale.

Measures `lrd.discover.labels.write_labelled_pairs` fed as lrd/discover/run.py feeds it: the
candidate pair keys split into (keys, source) chunks by `lrd.discover.pairs.labelled_groups`
(kNN pairs, "both" where they also co-occur, then co-occurring ones), each chunk labelled with
its most probable latent type (LatentRelationDiscovery.pair_tables + label), observed by a
`lrd.discover.readout.Readout` and streamed to Parquet one row group per chunk. Training and the
kNN search are not measured (the search is bench_faiss.py's).

Setup (not timed as part of the target): `--items` random unit text vectors of `--text-dim`
(1M x 384 float32 = 1.5 GB), a randomly initialised LatentRelationDiscovery(text, 64, R), a real
RelationGraph from RelationGraph.from_tables over a tiny relation_types table (virtual + 2
attribute types, no triples) with K = `--latent` latent types (R = 3 + K), and `--knn` random
neighbours per item (never the item itself) as sorted unique pair keys, as
lrd.discover.pairs.knn_keys returns them (a repeated draw leaves a few pairs fewer than
items x knn). `--cooccur` adds that many random co-occurrence keys (default 0: the kNN pairs only).
The Readout has no predefined pairs (the NMI table stays empty).
Target (1,000,000 items x k = 20 = 20M pairs): within 15 minutes and 8 GiB peak RSS.

    python benchmarks/bench_discover.py                 # 1M items, 20M pairs
    python benchmarks/bench_discover.py --items 50_000  # smoke
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import current_rss_mib, peak_rss_mib, report

TARGET_S = 900.0
TARGET_GIB = 8.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--knn", type=int, default=20, help="neighbours per item")
    ap.add_argument("--text-dim", type=int, default=384)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--latent", type=int, default=8, help="K latent types")
    ap.add_argument("--cooccur", type=int, default=0, help="random co-occurrence pair keys to add")
    ap.add_argument("--row-group-size", type=int, default=1_000_000)
    ap.add_argument("--min-probability", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from lrd import schemas
    from lrd.discover.labels import write_labelled_pairs
    from lrd.discover.pairs import labelled_groups
    from lrd.discover.readout import Readout
    from lrd.graph import RelationGraph, latent_names
    from lrd.keys import KeySet
    from lrd.models.lrd import LatentRelationDiscovery

    n, k = args.items, args.knn
    report("items", n)
    report("knn", k)
    report("torch_threads", torch.get_num_threads())
    report("rss_after_imports_mib", current_rss_mib())

    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    text = torch.randn(n + 1, args.text_dim)
    text /= text.norm(dim=1, keepdim=True)
    text[0] = 0.0
    relation_types = pa.table({
        "id": pa.array([0, 1, 2], pa.int16()),
        "name": ["any", "genre=A", "year"],
        "kind": ["virtual", "attribute", "attribute"],
    }, schema=schemas.RELATION_TYPES)
    graph = RelationGraph.from_tables(relation_types, schemas.RELATIONS.empty_table(), n, kinds=("attribute",),
                                      latent=latent_names(args.latent))
    lrd = LatentRelationDiscovery(text, args.dim, graph.n_relations)
    rng = np.random.default_rng(args.seed)
    knn_heads = np.repeat(np.arange(1, n + 1, dtype=np.int64), k)
    knn_tails = rng.integers(1, n, size=len(knn_heads), dtype=np.int64)
    knn_tails += knn_tails >= knn_heads  # uniform over the other items
    base = n + 1
    knn = np.unique(knn_heads * base + knn_tails)  # as knn_keys returns them
    if args.cooccur:
        h = rng.integers(1, n + 1, args.cooccur, dtype=np.int64)
        t = rng.integers(1, n, args.cooccur, dtype=np.int64)
        cooccur = np.unique(h * base + t + (t >= h))
    else:
        cooccur = np.empty(0, np.int64)
    setup_s = time.perf_counter() - t0
    report("setup_seconds", setup_s)
    report("relations_R", graph.n_relations)
    report("text_matrix_bytes", text.numel() * 4)
    report("knn_keys", len(knn))
    report("knn_keys_bytes", knn.nbytes)
    report("cooccur_keys", len(cooccur))
    report("graph_value_of_bytes", graph.value_of.nbytes)

    t0 = time.perf_counter()
    with torch.no_grad():
        tables = lrd.pair_tables()
    report("pair_tables_seconds_alone", time.perf_counter() - t0)
    del tables

    del knn_heads, knn_tails  # the stage keeps only the keys
    no_pairs = np.empty(0, np.int64)
    readout = Readout(n, args.latent, args.min_probability, KeySet(no_pairs, is_sorted=True), no_pairs, 0)
    rss_before, peak_before = current_rss_mib(), peak_rss_mib()
    report("rss_before_write_mib", rss_before)
    report("peak_rss_before_write_mib", peak_before)
    with tempfile.TemporaryDirectory(prefix="bench_discover_") as tmp:
        path = Path(tmp) / "latent.parquet"
        t0 = time.perf_counter()
        rows = write_labelled_pairs(path, lrd, graph, labelled_groups(cooccur, knn, args.row_group_size), readout)
        seconds = time.perf_counter() - t0
        peak = peak_rss_mib()
        meta = pq.ParquetFile(path).metadata
        report("write_seconds", seconds)
        report("rows", rows)
        report("candidate_keys_in", len(knn) + len(cooccur))
        report("rows_per_second", rows / seconds)
        report("output_bytes", path.stat().st_size)
        report("output_bytes_per_row", path.stat().st_size / max(rows, 1))
        report("row_groups", meta.num_row_groups)
        report("readout_pairs", readout.pairs)
        report("readout_usage", " ".join(map(str, readout.usage.tolist())))
        report("peak_rss_mib", peak)
        report("peak_rss_increase_during_write_mib", max(0.0, peak - peak_before))
        report("peak_rss_above_rss_before_write_mib", peak - rss_before)
    report("target_seconds", TARGET_S)
    report("target_peak_gib", TARGET_GIB)
    report("meets_target", seconds < TARGET_S and peak < TARGET_GIB * 1024)


if __name__ == "__main__":
    main()
