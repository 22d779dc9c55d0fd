"""FAISS indexes over item vectors: exact inner product, HNSW, or IVF-PQ for huge catalogs.

Vectors are unit length when `embed.normalize` is on, so inner product is cosine similarity.
Row r of an index is row r of the store's vectors; the store maps rows to item ids.
"""

from __future__ import annotations

import logging
import math

import faiss
import numpy as np

from lrd.config.embed import IndexConfig
from lrd.errors import ConfigError

log = logging.getLogger(__name__)

IVFPQ_MIN_ITEMS = 39 * 256  # below this FAISS cannot train the product quantiser well (or at all)


def build_index(vectors: np.ndarray, cfg: IndexConfig, seed: int = 0, chunk: int = 1 << 18) -> tuple[faiss.Index, dict]:
    """Build and fill an index; returns it with a description of its settings."""
    n, dim = vectors.shape
    kind = cfg.resolve(n)
    if kind == "ivfpq" and n < IVFPQ_MIN_ITEMS:
        log.info("IVF-PQ trains 256 codes per sub-quantiser and wants 39 vectors per code (%d); with %d items exact search is used",
                 IVFPQ_MIN_ITEMS, n)
        kind = "flat"
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
        info = {"type": "flat"}
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.ef_construction
        index.hnsw.efSearch = cfg.ef_search
        info = {"type": "hnsw", "m": cfg.hnsw_m, "ef_construction": cfg.ef_construction, "ef_search": cfg.ef_search}
    else:
        nlist = cfg.nlist or max(1, min(int(4 * math.sqrt(n)), n // 39))
        m = cfg.pq_m or _default_pq_m(dim)
        if dim % m:
            raise ConfigError(f"params.yaml: `embed.index.pq_m` is {m}; it must divide the vector dimension {dim}")
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        # k-means wants ~39-256 points per centroid; more only costs time.
        sample = np.random.default_rng(seed).choice(n, size=min(n, max(nlist * 64, 256 * 64)), replace=False)
        log.info("training IVF-PQ (nlist %d, %d sub-quantisers) on %d vectors", nlist, m, len(sample))
        index.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype=np.float32))
        index.nprobe = cfg.nprobe
        info = {"type": "ivfpq", "nlist": nlist, "pq_m": m, "nprobe": cfg.nprobe}
        if cfg.refine:
            # PQ codes rank coarsely; re-ranking the top k * factor with exact inner products
            # restores recall at the cost of keeping the raw vectors (4 * dim bytes per item).
            index = faiss.IndexRefineFlat(index)
            index.k_factor = cfg.refine
            info["refine"] = cfg.refine
    for lo in range(0, n, chunk):  # chunked so a memory-mapped store never loads at once
        index.add(np.ascontiguousarray(vectors[lo : lo + chunk], dtype=np.float32))
    return index, info


def _default_pq_m(dim: int) -> int:
    for m in (dim // 8, dim // 4, dim // 2, dim):
        if m and dim % m == 0 and m <= 64:
            return m
    return 1


def configure_search(index: faiss.Index, info: dict) -> None:
    """Search-time settings are not all saved with the index; put them back after loading."""
    if info.get("type") == "hnsw":
        faiss.downcast_index(index).hnsw.efSearch = info["ef_search"]
    elif info.get("type") == "ivfpq":
        faiss.extract_index_ivf(index).nprobe = info["nprobe"]
        if info.get("refine"):
            faiss.downcast_index(index).k_factor = info["refine"]
