"""The embedding store: one folder per (dataset, model) with vectors, ids, a FAISS index and
a manifest. Later stages and the CLI open it through `EmbeddingStore`.

    data/embeddings/<dataset>/<model-slug>/
        ids.npy         int32, item id of each row
        vectors.npy     float32 rows x dim (memory-mapped on open)
        index.faiss     FAISS index over the rows
        index.ivfdata   ivf_ondisk only: the inverted lists (ids and vectors), memory-mapped on search
        manifest.json   model, backend, pooling, dim, normalisation, template hash, counts,
                        library versions, device, timing, index settings and checksum
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from pathlib import Path

import numpy as np

from lrd.config.base import build

from lrd.config.embed import EmbedConfig, IndexConfig
from lrd.errors import DataError, MissingUpstreamError
from lrd.io import atomic_path, read_json, sha256_file, write_json
from lrd.paths import Paths

log = logging.getLogger(__name__)


def store_dir(paths: Paths, cfg: EmbedConfig) -> Path:
    """Where the store of the model `cfg` names lives for this dataset."""
    return paths.store(slug(cfg))


def slug(cfg: EmbedConfig) -> str:
    """Folder name for a model's store: readable, and distinct for distinct local paths."""
    if cfg.backend == "file":
        path = Path(cfg.path).expanduser().resolve()
        base = f"file-{path.stem}-" + hashlib.sha256(str(path).encode()).hexdigest()[:6]
    elif Path(cfg.model).expanduser().exists() and cfg.backend != "openai":
        path = Path(cfg.model).expanduser().resolve()
        base = path.name + "-" + hashlib.sha256(str(path).encode()).hexdigest()[:6]
    else:
        base = cfg.model.split("/")[-1]
    out = re.sub(r"[^a-z0-9.]+", "-", base.lower()).strip("-")
    return f"{out}-{cfg.pooling}" if cfg.backend == "hf-causal" else f"{out}-openai" if cfg.backend == "openai" else out


def open_store(paths: Paths, cfg: EmbedConfig) -> "EmbeddingStore":
    return EmbeddingStore.open(store_dir(paths, cfg))


def write_index(index: "faiss.Index", path: Path) -> dict:
    """Write `index` to `path`; on-disk lists are moved beside it first (`<stem>.ivfdata`)."""
    import faiss

    from lrd.embed.index import DATA_SUFFIX, ondisk_lists

    lists, data = ondisk_lists(index), {}
    if lists is not None:
        dest = path.with_suffix(DATA_SUFFIX)
        if Path(lists.filename).resolve() != dest.resolve():
            with atomic_path(dest) as tmp:
                shutil.move(lists.filename, tmp)  # a rename on one file system; the open mapping stays valid
        # Recorded by name only: the store reads the lists from beside the index wherever the
        # store is moved, and a build writes the same bytes whatever folder it ran in.
        lists.filename = dest.name
        data = {"data_file": dest.name, "data_bytes": dest.stat().st_size}
    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))
    if lists is not None:
        lists.filename = str(dest.resolve())  # where the mapped file is now, should it be written again
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path), **data}


class EmbeddingStore:
    def __init__(self, path: Path, manifest: dict, ids: np.ndarray, vectors: np.ndarray):
        self.path, self.manifest, self.ids, self.vectors = path, manifest, ids, vectors
        self._row = np.full(int(ids.max()) + 1 if len(ids) else 1, -1, dtype=np.int64)
        self._row[ids] = np.arange(len(ids))
        self._index: "faiss.Index | None" = None

    @classmethod
    def open(cls, path: str | Path) -> "EmbeddingStore":
        path = Path(path)
        if not (path / "manifest.json").exists():
            raise MissingUpstreamError(f"no embedding store at {path}: run `dvc repro embed` first")
        manifest = read_json(path / "manifest.json", "re-run `dvc repro -f embed@<dataset>` (the vectors come back from its cache)")
        try:
            ids = np.load(path / "ids.npy")
            vectors = np.load(path / "vectors.npy", mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: the store's vectors are unreadable ({exc}); re-run `dvc repro -f embed`") from None
        if vectors.shape != (len(ids), manifest["dim"]):
            raise DataError(f"{path}: vectors.npy has shape {vectors.shape}, the manifest says {len(ids)} x {manifest['dim']}; re-run `dvc repro -f embed`")
        return cls(path, manifest, ids, vectors)

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    def rows(self, item_ids) -> np.ndarray:
        item_ids = np.asarray(item_ids, dtype=np.int64)
        ok = (item_ids >= 0) & (item_ids < len(self._row))
        rows = np.full(item_ids.shape, -1, dtype=np.int64)
        rows[ok] = self._row[item_ids[ok]]
        if (rows < 0).any():
            missing = item_ids[rows < 0]
            raise DataError(f"{self.path}: no vector for item(s) {missing[:5].tolist()}; re-run `dvc repro embed`")
        return rows

    def vectors_for(self, item_ids) -> np.ndarray:
        return np.asarray(self.vectors[self.rows(item_ids)], dtype=np.float32)

    def matrix(self, n_items: int) -> np.ndarray:
        """(n_items + 1) x dim vectors in item-id order, row 0 (padding) zeros; every item must have one."""
        ids = np.arange(1, n_items + 1)
        covered = np.isin(ids, self.ids)
        if not covered.all():
            raise MissingUpstreamError(
                f"the embedding store {self.path} lacks vectors for {int((~covered).sum())} of {n_items} items "
                f"(e.g. item {int(ids[~covered][0])}): run `dvc repro embed`"
            )
        out = np.zeros((n_items + 1, self.dim), dtype=np.float32)
        out[1:] = self.vectors_for(ids)
        return out

    @property
    def index(self) -> "faiss.Index":
        """The FAISS index, checked against the manifest's checksum; rebuilt when it fails."""
        # FAISS is imported here, not with the module: training reads only the vectors, and
        # runs where no FAISS is installed (scripts/gpu_cells.py).
        from lrd.embed.index import build_index, configure_search, for_search, read_index

        if self._index is None:
            info = self.manifest["index"]
            file = self.path / info["file"]
            if self._intact(info):
                self._index = read_index(file, info)
            else:
                log.warning("%s is missing or corrupt (size/checksum differ from the manifest): rebuilding it", file)
                settings = {k: v for k, v in info.items()
                            if k in ("type", "m", "ef_construction", "ef_search", "nlist", "pq_m", "nprobe", "refine", "shards")}
                cfg = build(IndexConfig, _index_config(settings), "embed.index")
                self._index, _ = build_index(np.asarray(self.vectors), cfg)
                fresh = write_index(self._index, file)
                self.manifest["index"].update(fresh)
                write_json(self.manifest, self.path / "manifest.json")
            configure_search(self._index, info)
            self._index = for_search(self._index, info, self.manifest.get("config", {}).get("index", {}).get("device", "auto"))
        return self._index

    def _intact(self, info: dict) -> bool:
        file = self.path / info["file"]
        if not (file.exists() and file.stat().st_size == info["bytes"] and sha256_file(file) == info["sha256"]):
            return False
        # On-disk lists can be far larger than RAM: their size is checked (the index file, whose
        # hash is, records every list's offset), not their hash, so that opening stays fast.
        data = self.path / info["data_file"] if "data_file" in info else None
        return data is None or (data.exists() and data.stat().st_size == info["data_bytes"])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, scores), each queries x k, best first; id 0 where fewer than k exist."""
        scores, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        ids = np.where(rows >= 0, self.ids[np.maximum(rows, 0)], 0)
        return ids.astype(np.int32), scores

    def neighbors(self, item_ids, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest other items of each item: (ids, scores), len(item_ids) x k."""
        item_ids = np.asarray(item_ids)
        ids, scores = self.search(self.vectors_for(item_ids), k + 1)
        # Drop the item itself (usually first, but not always with approximate indexes or duplicates).
        not_self = ids != item_ids[:, None]
        keep = np.cumsum(not_self, axis=1) <= k
        sel = not_self & keep
        out_ids = np.zeros((len(item_ids), k), dtype=np.int32)
        out_scores = np.full((len(item_ids), k), -np.inf, dtype=np.float32)
        counts = sel.sum(1)
        full = counts == k
        out_ids[full] = ids[full][sel[full]].reshape(-1, k)
        out_scores[full] = scores[full][sel[full]].reshape(-1, k)
        for r in np.flatnonzero(~full):  # only rows with too few results (tiny catalogs)
            out_ids[r, : counts[r]] = ids[r][sel[r]]
            out_scores[r, : counts[r]] = scores[r][sel[r]]
        return out_ids, out_scores


def _index_config(settings: dict) -> dict:
    out = {"type": settings["type"]}
    rename = {"m": "hnsw_m"}
    for k, v in settings.items():
        if k != "type":
            out[rename.get(k, k)] = v
    return out
