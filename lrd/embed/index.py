"""FAISS indexes over item vectors: exact inner product, HNSW, IVF-PQ for huge catalogs, and IVF
with on-disk inverted lists for catalogs beyond one machine's RAM.

Vectors are unit length when `embed.normalize` is on, so inner product is cosine similarity.
Row r of an index is row r of the store's vectors; the store maps rows to item ids.

`embed.index.device` lets the build (and the store's searches) run on a GPU when faiss has GPU
support; what is saved is always a CPU index, so a store opens on any machine.

`ivf_ondisk` is built in three steps, each of which could run elsewhere: train the IVF on a
sample (`train_ivf`), add each shard of rows to a copy of the trained, empty index and write it
(`fill_shard`: RAM for that shard only), merge the shards' lists into one file that is
memory-mapped, not loaded (`merge_shards`). The index file holds the centroids and list offsets;
the lists (ids and raw vectors) live in `index.ivfdata` beside it.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import weakref
from pathlib import Path

import faiss
import numpy as np

from lrd.config.embed import IndexConfig
from lrd.errors import ConfigError

log = logging.getLogger(__name__)

IVFPQ_MIN_ITEMS = 39 * 256  # below this FAISS cannot train the product quantiser well (or at all)
SHARD_ROWS = 1_000_000  # ivf_ondisk default shard: 1M x 384-d float32 = 1.5 GiB of RAM while it fills
DATA_SUFFIX = ".ivfdata"


def build_index(vectors: np.ndarray, cfg: IndexConfig, seed: int = 0, chunk: int = 1 << 18,
                workdir: Path | None = None) -> tuple[faiss.Index, dict]:
    """Build and fill an index; returns it with a description of its settings.

    `vectors` may be memory-mapped: rows are read in chunks. `workdir` is where ivf_ondisk writes
    its shards and lists (default: a temporary folder, removed with the index); `store.write_index`
    moves the lists beside the index file.
    """
    n, dim = vectors.shape
    kind = cfg.resolve(n)
    gpu = use_gpu(cfg.device)
    if kind == "ivf_ondisk":
        return _build_ondisk(vectors, cfg, seed, chunk, gpu, workdir)
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
        nlist = cfg.nlist or _default_nlist(n)
        m = cfg.pq_m or _default_pq_m(dim)
        if dim % m:
            raise ConfigError(f"params.yaml: `embed.index.pq_m` is {m}; it must divide the vector dimension {dim}")
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        # k-means wants ~39-256 points per centroid; more only costs time.
        sample = _sample(vectors, max(nlist * 64, 256 * 64), seed)
        log.info("training IVF-PQ (nlist %d, %d sub-quantisers) on %d vectors", nlist, m, len(sample))
        index = _train(index, sample, gpu)
        index.nprobe = cfg.nprobe
        info = {"type": "ivfpq", "nlist": nlist, "pq_m": m, "nprobe": cfg.nprobe}
        if cfg.refine:
            # PQ codes rank coarsely; re-ranking the top k * factor with exact inner products
            # restores recall at the cost of keeping the raw vectors (4 * dim bytes per item).
            index = faiss.IndexRefineFlat(index)
            index.k_factor = cfg.refine
            info["refine"] = cfg.refine
    index = _fill(index, vectors, chunk, gpu)
    configure_search(index, info)  # a GPU round trip need not carry the search settings
    return index, info


def _default_nlist(n: int) -> int:
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def _default_pq_m(dim: int) -> int:
    for m in (dim // 8, dim // 4, dim // 2, dim):
        if m and dim % m == 0 and m <= 64:
            return m
    # Wide LLM vectors (768, 896, 4096-d): 64 sub-quantisers, not 1 (one byte per item would leave
    # the ranking to the refine step alone).
    return max(m for m in range(1, 65) if dim % m == 0)


def _sample(vectors: np.ndarray, size: int, seed: int) -> np.ndarray:
    """`size` random rows (all when fewer), read in row order so a memory-mapped store reads forward."""
    n = len(vectors)
    rows = np.random.default_rng(seed).choice(n, size=min(n, size), replace=False)
    return np.ascontiguousarray(vectors[np.sort(rows)], dtype=np.float32)


def configure_search(index: faiss.Index, info: dict) -> None:
    """Search-time settings are not all saved with the index; put them back after loading."""
    if info.get("type") == "hnsw":
        faiss.downcast_index(index).hnsw.efSearch = info["ef_search"]
    elif info.get("type") in ("ivfpq", "ivf_ondisk"):
        faiss.extract_index_ivf(index).nprobe = info["nprobe"]
        if info.get("refine"):
            faiss.downcast_index(index).k_factor = info["refine"]


# --- GPU -----------------------------------------------------------------------------------


def gpu_unavailable() -> str | None:
    """Why FAISS cannot use a GPU in this process, or None when it can."""
    if not hasattr(faiss, "StandardGpuResources"):
        return "this faiss build has no GPU support (faiss-cpu)"
    if faiss.get_num_gpus() == 0:
        return "faiss sees no GPU"
    return None


def use_gpu(device: str) -> bool:
    """Whether to build on a GPU: `embed.index.device` allows it and one is there (else logged why not)."""
    if device == "cpu":
        return False
    why = gpu_unavailable()
    if why:
        log.log(logging.WARNING if device == "gpu" else logging.INFO,
                "embed.index.device is %s but %s: the index is built on the CPU", device, why)
    return why is None


def to_gpu(index: faiss.Index) -> faiss.Index | None:
    """A copy of `index` on GPU 0, or None where faiss has no GPU version of it (HNSW, the IVF-PQ
    refine wrapper) or it does not fit: that work then stays on the CPU."""
    try:
        return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    except RuntimeError as exc:
        log.info("%s stays on the CPU: %s", type(index).__name__, str(exc).strip().splitlines()[-1])
        return None


def for_search(index: faiss.Index, info: dict, device: str) -> faiss.Index:
    """The index to search with: a GPU copy when `device` allows it and one is there. On-disk
    lists stay where they are: a GPU copy would load them whole."""
    if device == "cpu" or info.get("type") == "ivf_ondisk" or gpu_unavailable():
        return index
    return to_gpu(index) or index


def _train(index: faiss.Index, sample: np.ndarray, gpu: bool) -> faiss.Index:
    on_gpu = to_gpu(index) if gpu else None
    if on_gpu is None:
        index.train(sample)
        return index
    on_gpu.train(sample)
    return faiss.index_gpu_to_cpu(on_gpu)


def _fill(index: faiss.Index, vectors: np.ndarray, chunk: int, gpu: bool, first_id: int | None = None) -> faiss.Index:
    """Add `vectors` in chunks (so a memory-mapped store is never loaded at once), on the GPU when
    asked and possible; with ids first_id, first_id + 1, ... when given (a shard's global rows)."""
    on_gpu = to_gpu(index) if gpu else None
    target = index if on_gpu is None else on_gpu
    for lo in range(0, len(vectors), chunk):
        x = np.ascontiguousarray(vectors[lo : lo + chunk], dtype=np.float32)
        if first_id is None:
            target.add(x)
        else:
            target.add_with_ids(x, np.arange(first_id + lo, first_id + lo + len(x), dtype=np.int64))
    return index if on_gpu is None else faiss.index_gpu_to_cpu(on_gpu)


# --- IVF with on-disk lists ------------------------------------------------------------------


def _build_ondisk(vectors: np.ndarray, cfg: IndexConfig, seed: int, chunk: int, gpu: bool,
                  workdir: Path | None) -> tuple[faiss.Index, dict]:
    n = len(vectors)
    shards = cfg.shards or math.ceil(n / SHARD_ROWS)
    nlist = cfg.nlist or _default_nlist(n)
    if shards > n:
        raise ConfigError(f"params.yaml: `embed.index.shards` is {shards}, more than the {n} items to index; "
                          f"use at most {n} (null: one shard per {SHARD_ROWS:,} items)")
    if nlist > n:
        raise ConfigError(f"params.yaml: `embed.index.nlist` is {nlist}, more than the {n} items to index; "
                          "each list needs items to train its centroid (null: ~4 sqrt(items))")
    trained = train_ivf(vectors, nlist, seed, gpu)
    folder = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="lrd-ivf-"))
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, n, shards + 1).astype(np.int64)
    log.info("filling IVF (nlist %d) in %d shard(s) of ~%d rows in %s", nlist, shards, math.ceil(n / shards), folder)
    files = [fill_shard(trained, vectors[lo:hi], int(lo), folder / f"shard-{s}.faiss", chunk, gpu)
             for s, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))]
    index = merge_shards(trained, files, folder / f"index{DATA_SUFFIX}")
    for file in files:
        file.unlink()
    if workdir is None:  # the lists' file goes when the index does, unless write_index moved it away
        weakref.finalize(index, shutil.rmtree, folder, True)
    info = {"type": "ivf_ondisk", "nlist": nlist, "nprobe": cfg.nprobe, "shards": shards}
    configure_search(index, info)
    return index, info


def train_ivf(vectors: np.ndarray, nlist: int, seed: int = 0, gpu: bool = False) -> faiss.Index:
    """An empty IVF-Flat (inner product) with its `nlist` centroids trained on a sample of rows:
    the small common part every shard is filled from (nlist x dim floats)."""
    dim = vectors.shape[1]
    sample = _sample(vectors, nlist * 64, seed)  # k-means wants ~39-256 points per centroid
    log.info("training IVF (nlist %d) on %d vectors", nlist, len(sample))
    return _train(faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT), sample, gpu)


def fill_shard(trained: faiss.Index, vectors: np.ndarray, first_row: int, path: Path, chunk: int = 1 << 18,
               gpu: bool = False) -> Path:
    """Add one shard of rows (store rows first_row, first_row + 1, ...) to a copy of the trained,
    empty index and write it to `path`. Needs RAM for this shard only, so shards can be filled
    one after another here, or in parallel by workers that each hold one shard of the vectors."""
    shard = _fill(faiss.clone_index(trained), vectors, chunk, gpu, first_id=first_row)
    faiss.write_index(shard, str(path))
    return Path(path)


def merge_shards(trained: faiss.Index, files: list[Path], data_path: Path) -> faiss.Index:
    """One index over all shards: list j is the shards' lists j in the order given, written to
    `data_path` and memory-mapped. As faiss.contrib.ondisk.merge_ondisk, except that the shards
    are unmapped when done (that one keeps them mapped until the process ends)."""
    shards = [faiss.read_index(str(f), faiss.IO_FLAG_MMAP) for f in files]  # mapped, not loaded
    lists = faiss.InvertedListsPtrVector()
    for shard in shards:
        lists.push_back(faiss.extract_index_ivf(shard).invlists)
    index = faiss.clone_index(trained)
    ivf = faiss.extract_index_ivf(index)
    ondisk = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(data_path))
    ntotal = ondisk.merge_from_multiple(lists.data(), lists.size(), False)
    ivf.replace_invlists(ondisk, True)
    ondisk.this.disown()  # the index owns it now
    index.ntotal = ivf.ntotal = ntotal
    return index


def ondisk_lists(index: faiss.Index) -> faiss.OnDiskInvertedLists | None:
    """The on-disk inverted lists of `index`, or None when its lists (if any) are in RAM."""
    ivf = faiss.try_extract_index_ivf(index)
    lists = faiss.downcast_InvertedLists(ivf.invlists) if ivf is not None else None
    return lists if isinstance(lists, faiss.OnDiskInvertedLists) else None


def read_index(path: Path, info: dict) -> faiss.Index:
    """Load a saved index. On-disk lists are mapped read-only from `info["data_file"]` beside the
    index file: the path written inside it is the build's, and faiss's own same-folder flag
    prints to stdout (where `lrd neighbors` writes its answer)."""
    if "data_file" not in info:
        return faiss.read_index(str(path))
    index = faiss.read_index(str(path), faiss.IO_FLAG_READ_ONLY | faiss.IO_FLAG_SKIP_IVF_DATA)
    lists = ondisk_lists(index)
    lists.filename = str(Path(path).with_name(info["data_file"]))
    lists.do_mmap()
    return index
