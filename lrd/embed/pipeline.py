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

from lrd.config.embed import EmbedConfig
from lrd.embed import encoders, remote, vector_file
from lrd.embed.cache import VectorCache, text_keys
from lrd.embed.index import build_index
from lrd.embed.store import write_index
from lrd.data.text import render_texts, template_hash
from lrd.errors import DataError, ModelError
from lrd.io import read_json, sha256_file, write_json, write_parquet

log = logging.getLogger(__name__)

def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "sentence-transformers", "faiss-cpu", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _check_texts(items: pa.Table, template: str) -> list[str]:
    texts = render_texts(items, template, param="embed.text_template")
    empty = [i for i, t in enumerate(texts) if t is None or not t.strip()]
    if empty:
        ids = items.column("item").to_pylist()
        raise DataError(
            f"items.parquet: {len(empty)} item(s) have empty text under `embed.text_template` "
            f"(item ids {[ids[i] for i in empty[:5]]}); change the template or fix the item metadata"
        )
    return texts


def embed_items(
    items: pa.Table, cfg: EmbedConfig, out: Path, cache_root: Path, seed: int = 0, previous: Path | None = None
) -> dict:
    """Write the store for `items` (the ingest items table) into folder `out`; returns the manifest
    plus how the run went (encoded / from_cache counts, device, timings).

    `previous` is the store this one replaces: when its vectors and index settings are the
    same, its (checksum-verified) index is reused instead of rebuilt.
    """
    start = time.perf_counter()
    texts = _check_texts(items, cfg.text_template)
    ids = items.column("item").to_numpy().astype(np.int32)
    if cfg.backend == "file":
        vectors = vector_file.load_vectors(cfg.path, items, cfg.vector_dim, cfg.normalize, cfg.ids, cfg.feat_dtype)
        ident, source = vector_file.identity(cfg.path, cfg.vector_dim, cfg.normalize, cfg.ids, cfg.feat_dtype), str(Path(cfg.path).resolve())
        run = {"encoded": 0, "from_cache": 0, "device": ["file"], "encode_seconds": 0.0}
        log.info("%d item vectors of dimension %d read from %s", len(ids), vectors.shape[1], cfg.path)
    else:
        vectors, ident, source, run = _encode_with_cache(texts, ids, cfg, cache_root)
    dim = vectors.shape[1]
    _check_finite(vectors, ids, cfg)

    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "ids.npy", ids)
    np.save(out / "vectors.npy", vectors)
    write_parquet(pa.table({"item": ids, "text": texts}), out / "texts.parquet")  # what the LLM read
    digest = hashlib.sha256(ids.tobytes() + vectors.tobytes()).hexdigest()
    index_info = _reuse_index(previous, digest, cfg, out)
    if index_info is None:
        index, index_info = build_index(vectors, cfg.index, seed=seed, workdir=out)  # on-disk lists land in the store
        index_info.update(write_index(index, out / "index.faiss"))
    manifest = {
        "model": cfg.model,
        "model_path": source,
        "backend": cfg.backend,
        "pooling": ident.get("pooling", "model"),
        "dim": int(dim),
        "normalized": cfg.normalize,
        "instruction": cfg.instruction,
        "max_length": cfg.max_length,
        "text_template": cfg.text_template,
        "text_template_sha256": template_hash(cfg.text_template),
        "items": len(ids),
        "dtype": cfg.dtype,
        "vectors_sha256": digest,
        "index": index_info,
        "identity": ident,
        "config": _config_dict(cfg),
        "versions": _versions(),
    }
    # The manifest describes the vectors only, so that re-running on the same inputs writes the
    # same store and nothing downstream goes stale; how this run went is returned beside it.
    write_json(manifest, out / "manifest.json")
    seconds = run["encode_seconds"]
    run.update(encode_seconds=round(seconds, 3), items_per_second=round(run["encoded"] / seconds, 1) if seconds else None,
               seconds=round(time.perf_counter() - start, 3), vectors_identity=vectors_identity(manifest, texts))
    return {**manifest, **run}


def vectors_identity(manifest: dict, texts: list[str]) -> dict:
    """What decides the vectors, without their float bytes: the model (name and weights' hash),
    how it reads (backend, pooling, instruction, length, dtype, normalisation), the template and
    every item's text. The +LRD cells depend on this, not on the vectors, so that re-embedding on
    another CPU (vectors equal within float noise) leaves them done, while another model or other
    text makes them stale."""
    texts_sha256 = hashlib.sha256("\0".join(texts).encode()).hexdigest()
    return {"identity": manifest["identity"], "text_template": manifest["text_template"], "items": manifest["items"],
            "dim": manifest["dim"], "texts_sha256": texts_sha256}


def _encode_with_cache(texts: list[str], ids: np.ndarray, cfg: EmbedConfig, cache_root: Path) -> tuple[np.ndarray, dict, str, dict]:
    """Vectors for `texts`, encoding only those the cache lacks; (vectors, identity, model source, run info)."""
    if cfg.backend == "openai":
        settings = remote.RemoteSettings.from_config(cfg)
        ident, source, path = remote.identity(settings), settings.base_url, None
    else:
        path = encoders.resolve_model_path(cfg.model)
        ident, source = encoders.identity(cfg, path), str(path)
    cache = VectorCache(cache_root, ident, encoders.identity_hash(ident))
    keys = text_keys(texts)
    found, cached = cache.lookup(keys)
    run = {"encoded": 0, "from_cache": int(found.sum()), "device": ["cache"], "encode_seconds": 0.0}
    if found.all():
        log.info("all %d item texts found in the cache; nothing to encode", len(texts))
        return cached, ident, source, run
    todo = np.flatnonzero(~found)
    t0 = time.perf_counter()
    if cfg.backend == "openai":
        run["device"] = [settings.base_url]
        log.info("asking %s for %d of %d item vectors (%d found in the cache)", settings.url, len(todo), len(texts), int(found.sum()))
        fresh, stale = _encode_remote(settings, texts, keys, todo, cache, cached.shape[1] if cached is not None else None)
    else:
        log.info("encoding %d of %d item texts with %s (%d found in the cache)", len(todo), len(texts), cfg.model, int(found.sum()))
        fresh, dim, run["device"] = _encode(cfg, path, [texts[i] for i in todo], cache_root)
        stale = cached is not None and cached.shape[1] != dim
        if not stale:
            _check_finite(fresh, ids[todo], cfg)
            cache.add(keys[todo], fresh)
    if stale:  # the model changed its output size under the same identity: never mix, encode all again
        log.warning("cached vectors of %s have another dimension than the model gives now: encoding every text again", cfg.model)
        cache.check_dim(fresh.shape[1])
        todo, found = np.arange(len(texts)), np.zeros(len(texts), bool)
        if cfg.backend == "openai":
            fresh, _ = _encode_remote(settings, texts, keys, todo, cache, None)
        else:
            fresh, _, _ = _encode(cfg, path, texts, cache_root)
            cache.add(keys, fresh)
    run.update(encoded=len(todo), from_cache=int(len(texts) - len(todo)), encode_seconds=time.perf_counter() - t0)
    vectors = np.empty((len(texts), fresh.shape[1]), dtype=np.float32)
    if found.any():
        vectors[found] = cached
    vectors[~found] = fresh
    return vectors, ident, source, run


def _encode(cfg: EmbedConfig, path: Path, texts: list[str], cache_root: Path) -> tuple[np.ndarray, int, list[str]]:
    """(vectors, dim, devices) from this process's devices, or from a Ray cluster with `embed.engine: ray`."""
    if cfg.engine == "ray":
        from lrd.embed import ray_engine  # imported here only: nothing loads Ray unless an engine is ray

        return ray_engine.encode(cfg, path, texts, cache_root)
    devices = encoders.resolve_devices(cfg)
    log.info("encoding on %s", ", ".join(devices))
    vectors, dim = encoders.encode(cfg, path, texts, devices)
    return vectors, dim, devices


def _encode_remote(settings, texts, keys, todo, cache: VectorCache, cached_dim: int | None, flush_every: int = 4096):
    """Ask the endpoint for `texts[todo]`, writing vectors to the cache as they arrive (every
    `flush_every` texts, and whatever arrived when it stops), so an interrupted or over-budget
    run keeps what it paid for. Returns (vectors, whether the cache holds another dimension)."""
    pending: list[tuple[np.ndarray, np.ndarray]] = []
    stale = False

    def flush() -> None:
        if pending and not stale:
            cache.add(np.concatenate([k for k, _ in pending]), np.concatenate([v for _, v in pending]))
        pending.clear()

    def on_chunk(idx: np.ndarray, vecs: np.ndarray) -> None:
        nonlocal stale
        stale = stale or (cached_dim is not None and vecs.shape[1] != cached_dim)
        pending.append((keys[todo[idx]], vecs))
        if sum(len(k) for k, _ in pending) >= flush_every:
            flush()

    with remote.RemoteEncoder(settings) as encoder:
        try:
            vectors = encoder.encode([texts[i] for i in todo], on_chunk=on_chunk)
        finally:
            flush()
            log.info("endpoint: %d requests, %d tokens%s", encoder.spent["requests"], encoder.spent["tokens"],
                     " (partly estimated)" if encoder.spent["tokens_estimated"] else "")
    return vectors, stale


def _reuse_index(previous: Path | None, digest: str, cfg: EmbedConfig, out: Path) -> dict | None:
    if previous is None or not (previous / "manifest.json").exists():
        return None
    try:
        old = read_json(previous / "manifest.json")
    except DataError:  # a damaged previous store: nothing to reuse from it
        return None
    info = dict(old.get("index", {}))
    file = previous / info.get("file", "index.faiss")
    if old.get("vectors_sha256") != digest or old.get("config", {}).get("index") != _config_dict(cfg)["index"] or not file.exists():
        return None
    if file.stat().st_size != info.get("bytes") or sha256_file(file) != info.get("sha256"):
        log.warning("%s does not match its manifest: rebuilding the index", file)
        return None
    lists = previous / info["data_file"] if "data_file" in info else None
    if lists is not None and (not lists.exists() or lists.stat().st_size != info.get("data_bytes")):
        log.warning("%s is missing or truncated: rebuilding the index", lists)
        return None
    shutil.copyfile(file, out / "index.faiss")
    if lists is not None:
        shutil.copyfile(lists, out / lists.name)
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
    # The engine says where vectors are computed, not what they are: the store is the same either way.
    for key in ("engine", "ray_workers"):
        d.pop(key, None)
    # Index settings added after stores were first written appear only when set, so that a store
    # written before them (and everything built on it) stays as it was.
    for key, unset in (("shards", None), ("device", "auto")):
        if d["index"].get(key) == unset:
            d["index"].pop(key)
    return d
