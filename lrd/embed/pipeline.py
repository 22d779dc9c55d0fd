"""Items table -> embedding store, encoding only texts the cache has not seen."""

from __future__ import annotations

import hashlib
import logging
import platform
import shutil
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pyarrow as pa

from lrd.config import EmbedConfig
from lrd.embed import encoders
from lrd.embed.cache import VectorCache, text_keys
from lrd.embed.index import build_index
from lrd.embed.store import write_index
from lrd.data.text import render_texts, template_hash
from lrd.errors import DataError, ModelError
from lrd.io import read_json, sha256_file, write_json, write_parquet

log = logging.getLogger(__name__)

CACHE_ROOT = Path("data/embeddings/.cache")


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "sentence-transformers", "faiss-cpu", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _check_texts(items: pa.Table, template: str) -> list[str]:
    texts = render_texts(items, template)
    empty = [i for i, t in enumerate(texts) if t is None or not t.strip()]
    if empty:
        ids = items.column("item").to_pylist()
        raise DataError(
            f"items.parquet: {len(empty)} item(s) have empty text under `embed.text_template` "
            f"(item ids {[ids[i] for i in empty[:5]]}); change the template or fix the item metadata"
        )
    return texts


def embed_items(
    items: pa.Table, cfg: EmbedConfig, out: Path, cache_root: Path = CACHE_ROOT, seed: int = 0, previous: Path | None = None
) -> dict:
    """Write the store for `items` (the ingest items table) into folder `out`; returns the manifest.

    `previous` is the store this one replaces: when its vectors and index settings are the
    same, its (checksum-verified) index is reused instead of rebuilt.
    """
    start = time.perf_counter()
    texts = _check_texts(items, cfg.text_template)
    ids = items.column("item").to_numpy().astype(np.int32)
    path = encoders.resolve_model_path(cfg.model)
    ident = encoders.identity(cfg, path)
    cache = VectorCache(cache_root, ident, encoders.identity_hash(ident))
    keys = text_keys(texts)

    found, cached = cache.lookup(keys)
    devices, encode_seconds, n_encoded = ["cache"], 0.0, 0
    if not found.all():
        devices = encoders.resolve_devices(cfg)
        todo = np.flatnonzero(~found)
        log.info("encoding %d of %d item texts with %s on %s (%d found in the cache)", len(todo), len(texts), cfg.model, ", ".join(devices), int(found.sum()))
        t0 = time.perf_counter()
        fresh, dim = encoders.encode(cfg, path, [texts[i] for i in todo], devices)
        if cached is not None and cached.shape[1] != dim:
            cache.check_dim(dim)  # the model changed shape under the same name: never mix
            found[:] = False
            cached = None
            todo = np.arange(len(texts))
            fresh, dim = encoders.encode(cfg, path, texts, devices)
        encode_seconds = time.perf_counter() - t0
        n_encoded = len(todo)
        _check_finite(fresh, ids[todo], cfg)
        cache.add(keys[todo], fresh)
    else:
        log.info("all %d item texts found in the cache; nothing to encode", len(texts))
        dim = cached.shape[1]

    vectors = np.empty((len(texts), dim), dtype=np.float32)
    if found.any():
        vectors[found] = cached
    if n_encoded:
        vectors[~found] = fresh
    _check_finite(vectors, ids, cfg)

    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "ids.npy", ids)
    np.save(out / "vectors.npy", vectors)
    write_parquet(pa.table({"item": ids, "text": texts}), out / "texts.parquet")  # what the LLM read
    digest = hashlib.sha256(ids.tobytes() + vectors.tobytes()).hexdigest()
    index_info = _reuse_index(previous, digest, cfg, out)
    if index_info is None:
        index, index_info = build_index(vectors, cfg.index, seed=seed)
        index_info.update(write_index(index, out / "index.faiss"))
    manifest = {
        "model": cfg.model,
        "model_path": str(path),
        "backend": cfg.backend,
        "pooling": ident["pooling"],
        "dim": int(dim),
        "normalized": cfg.normalize,
        "instruction": cfg.instruction,
        "max_length": cfg.max_length,
        "text_template": cfg.text_template,
        "text_template_sha256": template_hash(cfg.text_template),
        "items": len(ids),
        "encoded": n_encoded,
        "from_cache": int(len(ids) - n_encoded),
        "device": devices,
        "dtype": cfg.dtype,
        "encode_seconds": round(encode_seconds, 3),
        "items_per_second": round(n_encoded / encode_seconds, 1) if encode_seconds else None,
        "seconds": round(time.perf_counter() - start, 3),
        "vectors_sha256": digest,
        "index": index_info,
        "identity": ident,
        "config": _config_dict(cfg),
        "versions": _versions(),
    }
    write_json(manifest, out / "manifest.json")
    return manifest


def _reuse_index(previous: Path | None, digest: str, cfg: EmbedConfig, out: Path) -> dict | None:
    if previous is None or not (previous / "manifest.json").exists():
        return None
    old = read_json(previous / "manifest.json")
    info = dict(old.get("index", {}))
    file = previous / info.get("file", "index.faiss")
    if old.get("vectors_sha256") != digest or old.get("config", {}).get("index") != _config_dict(cfg)["index"] or not file.exists():
        return None
    if file.stat().st_size != info.get("bytes") or sha256_file(file) != info.get("sha256"):
        log.warning("%s does not match its manifest: rebuilding the index", file)
        return None
    shutil.copyfile(file, out / "index.faiss")
    log.info("vectors unchanged: reusing the index of the previous store")
    return info


def _check_finite(vectors: np.ndarray, ids: np.ndarray, cfg: EmbedConfig) -> None:
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        raise ModelError(
            f"{cfg.model} produced NaN/inf vectors for {int(bad.sum())} item(s) (ids {ids[bad][:5].tolist()}); "
            "with float16 this is usually overflow: set `embed.dtype: float32` or bfloat16"
        )


def _config_dict(cfg: EmbedConfig) -> dict:
    import dataclasses

    d = dataclasses.asdict(cfg)
    d["devices"] = list(cfg.devices) if cfg.devices else None
    return d
