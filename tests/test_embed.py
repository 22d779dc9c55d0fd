"""The embed stage's parts: real encoders (packaged MiniLM, a tiny random Llama), the cache,
the store and FAISS indexes, and what happens on bad input."""

import dataclasses
import logging
import shutil

import numpy as np
import pyarrow as pa
import pytest
import torch

from lrd.config.embed import EmbedConfig, IndexConfig
from lrd.embed import encoders
from lrd.embed.encoders import CausalLMEncoder, encode, pool_hidden, resolve_model_path
from lrd.embed.index import build_index
from lrd.embed.pipeline import embed_items
from lrd.embed.store import EmbeddingStore
from lrd.errors import DataError, ModelError
from tests.conftest import make_tiny_llama

TEXTS = ["Toy Story (1995). Genres: Animation, Comedy", "GoldenEye (1995). Genres: Action, Thriller",
         "Toy Story 2 (1999). Genres: Animation, Comedy", "Heat (1995). Genres: Crime, Drama"]


def items_table(texts=TEXTS):
    return pa.table({"item": pa.array(np.arange(1, len(texts) + 1), pa.int32()), "title": texts, "text": texts})


def test_packaged_minilm_encodes_offline():
    cfg = EmbedConfig()
    vecs, dim = encode(cfg, resolve_model_path(cfg.model), TEXTS, ["cpu"])
    assert vecs.shape == (4, 384) and dim == 384
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    sims = vecs @ vecs.T
    assert sims[0, 2] > sims[0, 1] and sims[0, 2] > sims[0, 3]  # the sequel is the nearest


def test_unknown_model_says_how_to_supply_it():
    with pytest.raises(ModelError, match="hf download"):
        resolve_model_path("someone/not-a-cached-model")


def _hand_pooled(path, texts, mode):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    out = []
    with torch.no_grad():
        for t in texts:  # one at a time: no padding at all
            hidden = model(**tok(t, return_tensors="pt")).last_hidden_state[0]
            v = hidden.mean(0) if mode == "mean" else hidden[-1]
            out.append((v / v.norm()).numpy())
    return np.stack(out)


@pytest.mark.parametrize("mode", ["mean", "last"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_causal_pooling_matches_hand_computation(tiny_llama, mode, side):
    cfg = EmbedConfig(backend="hf-causal", model=str(tiny_llama), pooling=mode, batch_size=3)
    enc = CausalLMEncoder(cfg, tiny_llama, "cpu", torch.float32)
    enc.tokenizer.padding_side = side
    vecs = enc.encode(TEXTS, progress=False)
    assert np.allclose(vecs, _hand_pooled(tiny_llama, TEXTS, mode), atol=1e-5)


def test_pool_hidden_uses_the_mask():
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)
    mask = torch.tensor([[0, 1, 1], [1, 1, 0]])  # left- and right-padded rows
    assert pool_hidden(hidden, mask, "last").tolist() == [[4.0, 5.0], [8.0, 9.0]]
    assert pool_hidden(hidden, mask, "mean").tolist() == [[3.0, 4.0], [7.0, 8.0]]


def test_several_devices_give_the_same_vectors(tiny_llama):
    cfg = EmbedConfig(backend="hf-causal", model=str(tiny_llama), pooling="last", batch_size=2)
    one, _ = encode(cfg, tiny_llama, TEXTS * 2, ["cpu"])
    two, _ = encode(cfg, tiny_llama, TEXTS * 2, ["cpu", "cpu"])
    assert np.allclose(one, two, atol=1e-5)


def test_store_cache_and_incremental_updates(tmp_path):
    cfg = EmbedConfig()
    cache = tmp_path / "cache"
    first = embed_items(items_table(), cfg, tmp_path / "s1", cache_root=cache)
    assert first["encoded"] == 4 and first["dim"] == 384
    again = embed_items(items_table(), cfg, tmp_path / "s2", cache_root=cache)
    assert again["encoded"] == 0 and again["from_cache"] == 4
    a, b = EmbeddingStore.open(tmp_path / "s1"), EmbeddingStore.open(tmp_path / "s2")
    assert np.array_equal(a.vectors, b.vectors)
    changed = TEXTS[:3] + ["Heat (1995). Genres: Crime, Drama, Thriller"]
    third = embed_items(items_table(changed), cfg, tmp_path / "s3", cache_root=cache)
    assert third["encoded"] == 1
    store = EmbeddingStore.open(tmp_path / "s3")
    ids, scores = store.neighbors([1], 2)
    assert ids[0, 0] == 3 and 1 not in ids[0]
    assert np.allclose(store.vectors_for([1, 2, 3]), a.vectors_for([1, 2, 3]))


def test_index_is_reused_when_vectors_are_unchanged(tmp_path, caplog):
    cfg = EmbedConfig()
    embed_items(items_table(), cfg, tmp_path / "s1", cache_root=tmp_path / "c")
    with caplog.at_level(logging.INFO):
        embed_items(items_table(), cfg, tmp_path / "s2", cache_root=tmp_path / "c", previous=tmp_path / "s1")
    assert "reusing the index" in caplog.text
    assert (tmp_path / "s1/index.faiss").read_bytes() == (tmp_path / "s2/index.faiss").read_bytes()


def test_model_that_changes_shape_is_never_mixed_with_its_cache(tmp_path):
    path = make_tiny_llama(tmp_path / "model", hidden=32)
    cfg = EmbedConfig(backend="hf-causal", model=str(path), pooling="mean")
    first = embed_items(items_table(), cfg, tmp_path / "s1", cache_root=tmp_path / "c")
    shutil.rmtree(path)
    make_tiny_llama(path, hidden=48)  # same folder, another model
    second = embed_items(items_table(), cfg, tmp_path / "s2", cache_root=tmp_path / "c")
    assert (first["dim"], second["dim"]) == (32, 48)
    assert second["encoded"] == 4
    assert EmbeddingStore.open(tmp_path / "s2").vectors.shape == (4, 48)


def test_cache_with_another_dimension_is_rebuilt(tmp_path, monkeypatch):
    """Even under the same identity, vectors of another size are dropped, never mixed."""
    from lrd.embed.cache import VectorCache, text_keys

    cfg = EmbedConfig()
    ident = encoders.identity(cfg, resolve_model_path(cfg.model))
    cache = VectorCache(tmp_path / "c", ident, encoders.identity_hash(ident))
    cache.add(text_keys(TEXTS[:2]), np.ones((2, 5), np.float32))  # a stale 5-d cache
    manifest = embed_items(items_table(), cfg, tmp_path / "s", cache_root=tmp_path / "c")
    assert manifest["dim"] == 384 and manifest["encoded"] == 4


def test_corrupt_index_is_detected_and_rebuilt(tmp_path, caplog):
    embed_items(items_table(), EmbedConfig(), tmp_path / "s", cache_root=tmp_path / "c")
    index_file = tmp_path / "s/index.faiss"
    index_file.write_bytes(index_file.read_bytes()[:100])  # truncated
    store = EmbeddingStore.open(tmp_path / "s")
    with caplog.at_level(logging.WARNING):
        ids, _ = store.neighbors([1], 1)
    assert "corrupt" in caplog.text
    assert ids[0, 0] == 3
    assert EmbeddingStore.open(tmp_path / "s").manifest["index"]["bytes"] == index_file.stat().st_size


def test_nan_vectors_are_an_error(tmp_path, monkeypatch):
    def broken(cfg, path, texts, devices):
        out = np.zeros((len(texts), 8), np.float32)
        out[1] = np.nan
        return out, 8

    monkeypatch.setattr(encoders, "encode", broken)
    with pytest.raises(ModelError, match=r"NaN/inf vectors for 1 item\(s\) \(ids \[2\]\)"):
        embed_items(items_table(), EmbedConfig(), tmp_path / "s", cache_root=tmp_path / "c")


def test_empty_text_is_an_error(tmp_path):
    table = items_table(TEXTS[:3] + ["  "])
    with pytest.raises(DataError, match=r"1 item\(s\) have empty text .*\[4\]"):
        embed_items(table, EmbedConfig(), tmp_path / "s", cache_root=tmp_path / "c")


def _clustered(n, dim=32, centres=50, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim))
    x = c[rng.integers(0, centres, n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_index_recall_on_clustered_vectors(kind):
    import faiss

    x = _clustered(20000, centres=1000)
    queries = x[:200]
    exact = faiss.IndexFlatIP(32)
    exact.add(x)
    _, truth = exact.search(queries, 10)
    index, info = build_index(x, IndexConfig(type=kind, nlist=64, pq_m=8, nprobe=16))
    _, found = index.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
    assert info["type"] == kind
    assert recall > (0.999 if kind == "flat" else 0.95)


def test_index_config_auto_by_catalog_size():
    assert [IndexConfig().resolve(n) for n in (1000, 300_000, 6_000_000)] == ["flat", "hnsw", "ivfpq"]
    assert dataclasses.replace(IndexConfig(), type="hnsw").resolve(10) == "hnsw"
