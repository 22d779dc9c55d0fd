"""FAISS at scale: the sharded IVF with on-disk lists (`embed.index.type: ivf_ondisk`), the
GPU/CPU decision (`embed.index.device`), and that stores written before either still read the same."""

from __future__ import annotations

import json
import logging
import shutil

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from lrd import schemas
from lrd.cli import main
from lrd.config.base import build
from lrd.config.embed import EmbedConfig, IndexConfig
from lrd.embed import index as index_mod
from lrd.embed.index import build_index, fill_shard, merge_shards, train_ivf, use_gpu
from lrd.embed.pipeline import embed_items
from lrd.embed.store import EmbeddingStore, store_dir, write_index
from lrd.errors import ConfigError
from lrd.io import sha256_file
from lrd.paths import Paths


def _clustered(n, dim=32, centres=200, seed=0):
    """Unit vectors around `centres` Gaussian centres: what text embeddings look like to an IVF
    (uniform noise has no neighbourhoods, so any IVF's recall on it is low by nature)."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim))
    x = c[rng.integers(0, centres, n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _exact(x, queries, k):
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    return flat.search(queries, k)[1]


def _recall(found, truth):
    return np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(found, truth)])


def _file_store(tmp_path, x, index: IndexConfig, titles=None):
    """A store written by the embed pipeline from a vector file (the `file` backend)."""
    n = len(x)
    np.save(tmp_path / "v.npy", x)
    np.save(tmp_path / "v.ids.npy", np.arange(1, n + 1))
    titles = titles or [f"item {i}" for i in range(1, n + 1)]
    items = pa.table({"item": pa.array(np.arange(1, n + 1), pa.int32()), "raw_id": [str(i) for i in range(1, n + 1)],
                      "title": titles, "text": titles})
    cfg = EmbedConfig(backend="file", path=str(tmp_path / "v.npy"), normalize=False, index=index)
    return items, cfg


def test_ondisk_ivf_recall_and_a_moved_store(tmp_path):
    x = _clustered(20_000)
    items, cfg = _file_store(tmp_path, x, IndexConfig(type="ivf_ondisk", shards=4, nlist=64, nprobe=16))
    manifest = embed_items(items, cfg, tmp_path / "built/store", tmp_path / "cache")
    info = manifest["index"]
    assert info["type"] == "ivf_ondisk" and info["shards"] == 4 and info["data_file"] == "index.ivfdata"
    # The stage renames the folder it built in: the lists must be found beside the index wherever it is.
    shutil.move(tmp_path / "built", tmp_path / "moved")
    assert not list(tmp_path.glob("built*")) and not list((tmp_path / "moved/store").glob("shard-*"))
    store = EmbeddingStore.open(tmp_path / "moved/store")
    ids, _ = store.search(x[:300], 10)
    assert _recall(ids - 1, _exact(x, x[:300], 10)) > 0.95  # rows 0.. are items 1..


def test_ondisk_build_is_reproducible(tmp_path):
    x = _clustered(3000)
    cfg = IndexConfig(type="ivf_ondisk", shards=3, nlist=16)
    for name in ("a", "b"):
        index, _ = build_index(x, cfg, workdir=tmp_path / f"work-{name}")
        write_index(index, tmp_path / name / "index.faiss")
    for file in ("index.faiss", "index.ivfdata"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file


def test_merged_shards_answer_like_one_ivf_in_memory(tmp_path):
    x = _clustered(6000)
    trained = train_ivf(x, nlist=32)
    in_memory = faiss.clone_index(trained)
    in_memory.add(x)
    bounds = [0, 1000, 3500, 6000]  # unequal shards, as workers' Parquet shards would be
    files = [fill_shard(trained, x[lo:hi], lo, tmp_path / f"s{i}.faiss") for i, (lo, hi) in enumerate(zip(bounds, bounds[1:]))]
    merged = merge_shards(trained, files, tmp_path / "index.ivfdata")
    in_memory.nprobe = merged.nprobe = 4
    d_mem, i_mem = in_memory.search(x[::7], 10)
    d_merged, i_merged = merged.search(x[::7], 10)
    assert np.array_equal(i_mem, i_merged) and np.allclose(d_mem, d_merged)

    # Through the store, as `lrd neighbors` and discover ask it: the same ids as the in-memory IVF
    # built from the store's own trained quantizer.
    items, cfg = _file_store(tmp_path, x, IndexConfig(type="ivf_ondisk", shards=3, nlist=32, nprobe=4))
    embed_items(items, cfg, tmp_path / "store", tmp_path / "cache")
    store = EmbeddingStore.open(tmp_path / "store")
    ivf = faiss.extract_index_ivf(store.index)
    quantizer = faiss.IndexFlatIP(x.shape[1])
    quantizer.add(ivf.quantizer.reconstruct_n(0, ivf.nlist))
    reference = faiss.IndexIVFFlat(quantizer, x.shape[1], ivf.nlist, faiss.METRIC_INNER_PRODUCT)
    reference.is_trained = True
    reference.add(x)
    reference.nprobe = 4
    queries = np.arange(1, 6001, 11)
    ids, scores = store.neighbors(queries, 5)
    rows = reference.search(x[queries - 1], 6)[1]
    expected = np.array([[r + 1 for r in row if r + 1 != q][:5] for q, row in zip(queries, rows)])
    assert np.array_equal(ids, expected)


def test_lrd_neighbors_reads_an_ondisk_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    titles = ["Alien", "Aliens", "Heat", "Toy Story", "Toy Story 2", "Ronin"]
    x = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0, 1], [0.05, 0, 1], [0.1, 0.95, 0]], np.float32)
    items, cfg = _file_store(tmp_path, x, IndexConfig(type="ivf_ondisk", shards=2, nlist=2, nprobe=2), titles)
    params = {"datasets": {"tiny": {"format": "recbole", "source": {"kind": "path", "path": "x"}}},
              "embed": {"backend": "file", "path": cfg.path, "normalize": False, "index": {"type": "ivf_ondisk", "shards": 2, "nlist": 2, "nprobe": 2}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    paths = Paths("tiny")
    paths.processed.mkdir(parents=True)
    pq.write_table(items.cast(schemas.ITEM_COLUMNS), paths.table("items"))
    embed_items(items, EmbedConfig.from_params(params), store_dir(paths, EmbedConfig.from_params(params)), tmp_path / "cache")
    result = CliRunner().invoke(main, ["neighbors", "Toy Story 2", "--k", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("nearest to 5 'Toy Story 2'")
    assert [line.split()[1] for line in lines[1:]] == ["4", "1"]


def test_missing_or_truncated_lists_are_rebuilt(tmp_path, caplog):
    x = _clustered(2000)
    items, cfg = _file_store(tmp_path, x, IndexConfig(type="ivf_ondisk", shards=2, nlist=8, nprobe=8))
    embed_items(items, cfg, tmp_path / "store", tmp_path / "cache")
    before = EmbeddingStore.open(tmp_path / "store").neighbors([1, 2, 3], 5)[0]
    data = tmp_path / "store/index.ivfdata"
    data.write_bytes(data.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING):
        after = EmbeddingStore.open(tmp_path / "store").neighbors([1, 2, 3], 5)[0]
    assert "corrupt" in caplog.text
    assert np.array_equal(before, after)  # nprobe = nlist: exact, whatever the rebuilt centroids
    manifest = json.loads((tmp_path / "store/manifest.json").read_text())
    assert manifest["index"]["data_bytes"] == data.stat().st_size


def test_existing_store_layout_and_flat_index_unchanged(tmp_path):
    """A store as the embed stage wrote it before ivf_ondisk and the GPU path (flat index, no
    `device`/`shards` in its manifest) opens and answers as then; the default index for a small
    catalog is still byte for byte the exact index faiss writes for these vectors."""
    rng = np.random.default_rng(3)
    x = _clustered(500)
    ids = rng.permutation(np.arange(1, 501)).astype(np.int32)  # store rows in another order than ids
    old = tmp_path / "old"
    old.mkdir()
    np.save(old / "ids.npy", ids)
    np.save(old / "vectors.npy", x)
    flat = faiss.IndexFlatIP(32)
    flat.add(x)
    faiss.write_index(flat, str(old / "index.faiss"))
    index_info = {"type": "flat", "file": "index.faiss", "bytes": (old / "index.faiss").stat().st_size, "sha256": sha256_file(old / "index.faiss")}
    old_config = {"type": "auto", "hnsw_m": 32, "ef_construction": 80, "ef_search": 128, "nlist": None, "pq_m": None, "nprobe": 32, "refine": 4}
    (old / "manifest.json").write_text(json.dumps({"model": "m", "dim": 32, "items": 500, "index": index_info, "config": {"index": old_config}}))

    store = EmbeddingStore.open(old)
    assert isinstance(store.vectors, np.memmap) and np.array_equal(store.vectors, x)
    matrix = store.matrix(500)
    assert np.array_equal(matrix[0], np.zeros(32)) and np.array_equal(matrix[ids], x)
    got_ids, got_scores = store.neighbors(ids[:50], 5)
    sims = x[:50] @ x.T
    sims[np.arange(50), np.arange(50)] = -np.inf
    order = np.argsort(-sims, axis=1, kind="stable")[:, :5]
    assert np.array_equal(got_ids, ids[order]) and np.allclose(got_scores, np.take_along_axis(sims, order, 1), atol=1e-6)

    index, info = build_index(x, IndexConfig())
    written = write_index(index, tmp_path / "new/index.faiss")
    assert info == {"type": "flat"} and set(written) == {"file", "bytes", "sha256"}
    assert (tmp_path / "new/index.faiss").read_bytes() == (old / "index.faiss").read_bytes()

    items, cfg = _file_store(tmp_path, x, IndexConfig())
    embed_items(items, cfg, tmp_path / "store", tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["ids.npy", "index.faiss", "manifest.json", "texts.parquet", "vectors.npy"]


@pytest.mark.parametrize("settings,n,message", [
    ({"type": "ivf_ondisk", "shards": 0}, 100, r"`embed.index.shards` is 0; it must be >= 1"),
    ({"type": "ivf_ondisk", "shards": -2}, 100, r"`embed.index.shards` is -2; it must be >= 1"),
    ({"type": "hnsw", "shards": 4}, 100, r"shards apply to `embed.index.type: ivf_ondisk` only \(type is hnsw\)"),
    ({"shards": 4}, 100, r"shards apply to `embed.index.type: ivf_ondisk` only \(type is auto\)"),
    ({"type": "ivf_ondisk", "shards": 101}, 100, r"`embed.index.shards` is 101, more than the 100 items"),
    ({"type": "ivf_ondisk", "nlist": 200}, 100, r"`embed.index.nlist` is 200, more than the 100 items"),
    ({"type": "ivf_ondisk", "device": "cuda"}, 100, r"`embed.index.device` is 'cuda'; choose one of 'auto', 'cpu', 'gpu'"),
    ({"type": "ivf_disk"}, 100, r"`embed.index.type` is 'ivf_disk'; choose one of"),
])
def test_bad_index_settings_are_one_config_error(settings, n, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        cfg = build(IndexConfig, settings, "embed.index")
        build_index(_clustered(n, dim=8), cfg, workdir=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written before the error


def test_gpu_decision_falls_back_to_the_cpu_with_a_log_line(monkeypatch, caplog, tmp_path):
    """Here (faiss-cpu) every setting builds on the CPU; `gpu` says so as a warning. With a GPU
    faiss that sees a GPU, auto and gpu choose it; an index faiss cannot move (HNSW, or a GPU
    error) is built on the CPU all the same."""
    with caplog.at_level(logging.INFO, logger="lrd.embed.index"):
        assert use_gpu("cpu") is False and not caplog.records
        assert use_gpu("auto") is False
        assert use_gpu("gpu") is False
    assert [(r.levelname, "faiss-cpu" in r.getMessage()) for r in caplog.records] == [("INFO", True), ("WARNING", True)]

    monkeypatch.setattr(faiss, "StandardGpuResources", lambda: None, raising=False)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)
    with caplog.at_level(logging.INFO, logger="lrd.embed.index"):
        assert use_gpu("auto") is False and "faiss sees no GPU" in caplog.text
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    assert use_gpu("auto") is True and use_gpu("gpu") is True and use_gpu("cpu") is False

    def no_gpu_version(res, device, index):
        raise RuntimeError("Error in faiss::Index* faiss::gpu::ToGpuCloner::clone_Index: This index type is not implemented on GPU.")

    monkeypatch.setattr(faiss, "index_cpu_to_gpu", no_gpu_version, raising=False)
    x = _clustered(3000)
    for device in ("gpu", "cpu"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="lrd.embed.index"):
            index, _ = build_index(x, IndexConfig(type="ivf_ondisk", shards=2, nlist=16, device=device), workdir=tmp_path / device)
            write_index(index, tmp_path / device / "out/index.faiss")
        assert ("IndexIVFFlat stays on the CPU" in caplog.text) == (device == "gpu")
    for file in ("index.faiss", "index.ivfdata"):  # the GPU attempt changed nothing
        assert (tmp_path / "gpu/out" / file).read_bytes() == (tmp_path / "cpu/out" / file).read_bytes()
    flat, _ = build_index(x, IndexConfig())
    assert index_mod.for_search(flat, {"type": "flat"}, "auto") is flat  # searches fall back the same way


def test_default_pq_m_for_wide_llm_vectors():
    from lrd.embed.index import _default_pq_m

    assert [_default_pq_m(d) for d in (32, 384, 100, 768, 896, 4096)] == [4, 48, 25, 64, 64, 64]
